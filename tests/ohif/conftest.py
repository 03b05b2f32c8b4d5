"""Fixtures of the OHIF tests: the PACS tests' real Orthanc (with the shared series), a real
API process + job worker configured with it, the OHIF files (`make ohif`; fetched here with npm
when missing) and the web tests' Chromium. Skipped, saying why, only when Orthanc or Chromium
is not installed."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from medseg import ohif
from medseg.store.embedded import EmbeddedRedis
from tests.conftest import KEYS
from tests.live import api_server
from tests.pacs.conftest import ct_folder, ct_series, orthanc, pacs_json  # noqa: F401
from tests.pacs.orthanc import DICOMWEB_PLUGIN, INSTALL_HINT, ORTHANC
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS


def pytest_collection_modifyitems(items):
    missing = []
    if shutil.which(ORTHANC) is None or not Path(DICOMWEB_PLUGIN).exists():
        missing.append(INSTALL_HINT)
    if not CHROMIUM.exists():
        missing.append(f"the OHIF tests need {CHROMIUM} (`make test` installs it: "
                       "apt-get install chromium)")
    if missing:
        for item in items:
            if "tests/ohif/" in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason="; ".join(missing)))


@pytest.fixture(scope="session")
def ohif_dist() -> Path:
    try:
        return ohif.fetch()
    except Exception as exc:  # noqa: BLE001 - said plainly: the tests cannot run without it
        pytest.fail(f"the OHIF viewer is not in {ohif.default_dist()} and could not be "
                    f"fetched (`make ohif`): {exc}")


@pytest.fixture(scope="module")
def ohif_server(orthanc, ohif_dist):  # noqa: F811
    """(base URL, API client as alice) of an API process + worker on its own Redis, with the
    test Orthanc as archive `main` and OHIF at /ohif."""
    with EmbeddedRedis() as redis_url, \
            api_server(redis_url, MEDSEG_PACS=pacs_json(orthanc), MEDSEG_OHIF_DIR=str(ohif_dist),
                       MEDSEG_OHIF_PACS="main") as base_url, \
            httpx.Client(base_url=base_url, headers={"X-API-Key": KEYS["alice"]},
                         timeout=120) as client:
        yield base_url, client


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
