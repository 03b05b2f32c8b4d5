"""The OHIF round trip in real Chromium (docs/ohif.md): the study opened from the test Orthanc
in the OHIF viewer served by the service, a session started on the displayed series by the medseg
extension, clicks sent on the viewport and painted into OHIF's segmentation, undo and redo, the
segment saved as a DICOM SEG into Orthanc (a pacs-push job), and that SEG opened in OHIF."""

from __future__ import annotations

import io
import time

import highdicom as hd
import numpy as np
import pydicom
import pytest

from medseg_protocol import codec
from tests.api.test_accuracy_real_data import largest_slice, organ_reference
from tests.conftest import KEYS, ROOT
from tests.polling import poll

pytestmark = pytest.mark.slow
OUTPUT = ROOT / "test-output" / "ohif"


@pytest.fixture
def page(chromium, ohif_server, request):
    base_url, _ = ohif_server
    context = chromium.new_context(viewport={"width": 1400, "height": 900}, base_url=base_url)
    context.add_init_script(f"sessionStorage.setItem('medseg.apiKey', {KEYS['alice']!r})")
    page = context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.errors.append(str(e)))  # type: ignore[attr-defined]
    page.on("console", lambda m: print("console", m.type, m.text[:300]) if m.type in ("error", "warning") else None)
    yield page
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"{request.node.name}.png"))
    context.close()


def _wait(page, script: str, timeout_s: float, what: str):
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        value = page.evaluate(script)
        if value:
            return value
        page.wait_for_timeout(200)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def test_ohif_round_trip(page, ohif_server, ct_series, orthanc, totalseg):
    base_url, api = ohif_server
    start = time.monotonic()
    page.goto(f"/ohif/medseg?StudyInstanceUIDs={ct_series.study_uid}")
    _wait(page, "() => !!document.querySelector('#medseg-panel')", 60, "the medseg panel")
    _wait(page, """() => { const c = document.querySelector('.cornerstone-canvas, canvas');
        return window.services && services.displaySetService.getActiveDisplaySets().length
          && c && c.width > 0; }""", 60, "the series in the viewport")
    print("opened", time.monotonic() - start)
    page.wait_for_timeout(3000)
    page.screenshot(path="/tmp/ohif1.png")
    page.get_by_role("button", name="Start session").click()
    _wait(page, "() => window.medsegOhif.session && window.medsegOhif.segmentationId", 60,
          "a session")
    print("started", time.monotonic() - start)
    page.screenshot(path="/tmp/ohif2.png")
