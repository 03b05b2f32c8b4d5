"""Browser tests of the viewer: Playwright driving Debian's Chromium against a real API process
(real Redis). `make test` installs /usr/bin/chromium when it is missing; Playwright's own
browser downloads are never used."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import KEYS, ROOT
from tests.web.viewer import ViewerPage

CHROMIUM = Path(os.environ.get("MEDSEG_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OUTPUT = ROOT / "test-output" / "web"


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(redis_url):
    from tests.live import api_server

    with api_server(redis_url) as base_url:
        yield base_url


@pytest.fixture
def viewer(browser, server, request):
    """A fresh tab on the viewer with alice's API key already entered for the tab."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_init_script(f"sessionStorage.setItem('medseg.apiKey', {KEYS['alice']!r})")
    page = context.new_page()
    viewer = ViewerPage(page, server)
    yield viewer
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"{request.node.name}.png"))
    unexpected = [m for m in viewer.error_messages() if m["title"] not in viewer.expected_errors]
    context.close()
    assert not viewer.page_errors, f"JavaScript errors in the page: {viewer.page_errors}"
    assert not unexpected, f"the viewer showed errors: {unexpected}"
