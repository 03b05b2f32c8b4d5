"""The OHIF round trip in real Chromium (docs/ohif.md): the study opened from the test Orthanc
in the OHIF viewer served by the service, a session started on the displayed series by the medseg
extension, a click sent on the viewport and painted into OHIF's segmentation, undo and redo, the
segment saved as a DICOM SEG into Orthanc (a pacs-push job), and that SEG opened in OHIF."""

from __future__ import annotations

import os
import time

import highdicom as hd
import numpy as np
import pytest
from dicomweb_client.api import DICOMwebClient
from requests import Session
from scipy import ndimage

from medseg.algorithms.metrics import dice
from medseg_protocol import codec
from tests.api.test_accuracy_real_data import largest_slice, organ_reference
from tests.conftest import KEYS, ROOT
from tests.pacs.orthanc import PASSWORD, USER

pytestmark = pytest.mark.slow
OUTPUT = ROOT / "test-output" / "ohif"
# the screenshots land in test-output/ohif; MEDSEG_UPDATE_DOCS=1 writes docs/ohif*.png instead
DOCS_SHOT = (ROOT / "docs" if os.environ.get("MEDSEG_UPDATE_DOCS") == "1" else OUTPUT) / "ohif.png"


@pytest.fixture
def page(chromium, ohif_server, request):
    base_url, _ = ohif_server
    context = chromium.new_context(viewport={"width": 1400, "height": 900}, base_url=base_url)
    context.add_init_script(f"sessionStorage.setItem('medseg.apiKey', {KEYS['alice']!r})")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"{request.node.name}.png"))
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


def _wait(page, script: str, timeout_s: float, what: str):
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        value = page.evaluate(script)
        if value:
            return value
        page.wait_for_timeout(200)
    status = page.evaluate("() => document.querySelector('#medseg-panel .status')?.textContent")
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (panel: {status!r})")


def _open_study(page, study_uid: str) -> None:
    page.goto(f"/ohif/medseg?StudyInstanceUIDs={study_uid}")
    _wait(page, "() => !!document.querySelector('#medseg-panel')", 60, "the medseg panel")
    _wait(page, """() => { const ds = window.services?.displaySetService.getActiveDisplaySets();
        const vp = window.services?.cornerstoneViewportService.getCornerstoneViewport(
          services.viewportGridService.getActiveViewportId());
        return ds?.length && vp?.getImageIds?.().length && vp.getCurrentImageId(); }""",
          60, "the series in the viewport")
    hide = page.get_by_role("button", name="Confirm and hide")  # OHIF's "investigational use"
    if hide.count():
        hide.click()


def _server_mask(api, sid: str, segment_id: int) -> np.ndarray:
    rle = api.get(f"/v1/sessions/{sid}/segments/{segment_id}/mask").json()
    return codec.decode_mask(rle).astype(bool)


def _drag(page, points: list[tuple[int, int]]) -> None:
    """A mouse drag through voxels (row, col) of the shown slice."""
    where = [page.evaluate(f"() => window.medsegOhif.pagePoint({y}, {x})") for y, x in points]
    page.mouse.move(*where[0])
    page.mouse.down()
    for x, y in where[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def _log(page) -> list[dict]:
    return page.evaluate("() => window.medsegOhif.log")


def test_ohif_round_trip(page, ohif_server, ct_series, orthanc, totalseg):
    _, api = ohif_server
    _open_study(page, ct_series.study_uid)

    # a session on the displayed series, started from the extension's panel
    page.get_by_role("button", name="Start session").click()
    _wait(page, "() => window.medsegOhif.segmentationId", 90, "a session")
    started = _log(page)[-1]
    sid, segment_id = started["session"], started["segment"]
    session = api.get(f"/v1/sessions/{sid}").json()
    assert session["source"]["series_instance_uid"] == ct_series.series_uid

    # a click deep inside the liver on its largest slice, with the mouse on OHIF's viewport
    liver = organ_reference(totalseg, "ct_dicom_seg.nii.gz", "liver", session)
    z = largest_slice(liver)
    depth = ndimage.distance_transform_edt(liver[z])
    y, x = (int(v) for v in np.unravel_index(np.argmax(depth), depth.shape))
    page.evaluate(f"() => window.medsegOhif.show({z})")
    px, py = page.evaluate(f"() => window.medsegOhif.pagePoint({y}, {x})")
    page.mouse.click(px, py)
    _wait(page, "() => window.medsegOhif.log.some(e => e.action === 'click')", 60, "the click")
    click = next(e for e in _log(page) if e["action"] == "click")["request"]
    # the voxel under the mouse is the one aimed at (OHIF's geometry to the session's)
    assert click["clicks"][0]["zyx"] == [z, y, x] and click["clicks"][0]["foreground"]
    assert click["plane"] == {"axis": "z", "index": z}
    mask = _server_mask(api, sid, segment_id)
    assert mask[z].sum() > 0 and mask.sum() == mask[z].sum()  # 2D: that slice only
    assert dice(mask[z], liver[z]) > 0.5, dice(mask[z], liver[z])  # one click
    # what OHIF shows is the server's mask, slice by slice
    painted = page.evaluate("() => window.medsegOhif.paintedPerSlice()")
    assert painted == mask.sum(axis=(1, 2)).tolist()
    DOCS_SHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_SHOT))

    # undo clears the labelmap, redo brings the click back
    page.get_by_role("button", name="Undo").click()
    _wait(page, "() => window.medsegOhif.log.at(-1).action === 'undo'", 30, "the undo")
    assert not _server_mask(api, sid, segment_id).any()
    assert sum(page.evaluate("() => window.medsegOhif.paintedPerSlice()")) == 0
    page.get_by_role("button", name="Redo").click()
    _wait(page, "() => window.medsegOhif.log.at(-1).action === 'redo'", 30, "the redo")
    assert page.evaluate("() => window.medsegOhif.paintedPerSlice()") == painted

    # propagation across the slices, a job followed with its progress, painted when it ends
    page.get_by_role("button", name="Propagate").click()
    _wait(page, "() => window.medsegOhif.log.at(-1).action === 'propagate'", 90, "propagation")
    mask = _server_mask(api, sid, segment_id)
    assert (mask.sum(axis=(1, 2)) > 0).sum() > 1  # more slices than the clicked one
    assert page.evaluate("() => window.medsegOhif.paintedPerSlice()") \
        == mask.sum(axis=(1, 2)).tolist()
    assert page.evaluate("() => window.medsegOhif.progressSeen") > 0

    # a BIFSeg box dragged around the liver on the clicked slice, then fine-tuned (a job)
    rows, cols = np.nonzero(liver[z])
    lo, hi = (int(rows.min()) - 3, int(cols.min()) - 3), (int(rows.max()) + 3, int(cols.max()) + 3)
    page.get_by_role("button", name="Box").click()
    _drag(page, [lo, hi])
    _wait(page, "() => window.medsegOhif.log.at(-1).action === 'box'", 60, "the box")
    box = _log(page)[-1]["request"]
    assert box["box"] == {"lo": [z, *lo], "hi": [z, *hi]} and box["method"] == "bifseg"
    page.get_by_role("button", name="Fine-tune").click()
    _wait(page, "() => window.medsegOhif.log.at(-1).action === 'fine-tune'", 90, "fine-tuning")
    # a background scribble along the liver's middle row on that slice
    page.get_by_role("button", name="Scribble").click()
    page.get_by_role("button", name="Background").click()
    row = int(rows.mean())
    inside = np.nonzero(_server_mask(api, sid, segment_id)[z, row])[0]
    middle = int(inside[len(inside) // 2])
    _drag(page, [(row, middle - 4), (row, middle + 4)])
    _wait(page, "() => window.medsegOhif.log.at(-1).action === 'scribble'", 60, "the scribble")
    scribble = _log(page)[-1]["request"]["scribbles"][0]
    assert not scribble["foreground"] and len(scribble["path"]) > 1
    assert all(p[0] == z and p[1] == row for p in scribble["path"])
    mask = _server_mask(api, sid, segment_id)
    assert page.evaluate("() => window.medsegOhif.paintedPerSlice()") \
        == mask.sum(axis=(1, 2)).tolist()

    # saved as a DICOM SEG into Orthanc through the service (a pacs-push job)
    before = orthanc.instance_count(ct_series.study_uid)
    page.get_by_role("button", name="Save SEG to PACS").click()
    saved = _wait(page, "() => window.medsegOhif.log.find(e => e.action === 'save')", 90,
                  "the SEG push")
    assert orthanc.instance_count(ct_series.study_uid) == before + 1
    http = Session()
    http.auth = (USER, PASSWORD)
    stored = DICOMwebClient(orthanc.dicomweb, session=http).retrieve_instance(
        ct_series.study_uid, saved["series_instance_uid"], saved["sop_instance_uid"])
    seg = hd.seg.Segmentation.from_dataset(stored)
    order = api.get(f"/v1/sessions/{sid}/dicom").json()["source"]["sop_instance_uids"]
    pixels = seg.get_pixels_by_source_instance(order, combine_segments=False)
    np.testing.assert_array_equal(pixels[..., 0] > 0, mask)

    # the SEG opens in OHIF: a fresh viewer lists it in the study; a double click on it shows
    # the segment on its series, voxel for voxel the session's mask
    _open_study(page, ct_series.study_uid)
    seg_set = _wait(page, f"""() => services.displaySetService.getActiveDisplaySets().find(
        d => d.SOPInstanceUID === {saved['sop_instance_uid']!r})?.displaySetInstanceUID""",
                    30, "the SEG in the study browser")
    page.locator("[data-cy^=study-browser-thumbnail]", has_text="SEG").first.dblclick()
    shown = _wait(page, f"""() => {{
        const s = services.segmentationService.getSegmentation({seg_set!r});
        if (!s) return null;
        const counts = window.medsegOhif.labelmapPerInstance({seg_set!r});
        return Object.keys(counts).length ? {{ labels: Object.values(s.segments).map(
          x => x.label), counts }} : null; }}""", 60, "the SEG's segmentation in OHIF")
    assert shown["labels"] == ["medseg"]
    per_slice = [shown["counts"].get(uid, 0) for uid in order]
    assert per_slice == mask.sum(axis=(1, 2)).tolist()
    # OHIF offers to open it on the series ("Yes"): then it is the viewer's segmentation
    page.get_by_role("button", name="Yes").click()
    _wait(page, f"""() => {{ const vp = services.cornerstoneViewportService.getCornerstoneViewport(
        services.viewportGridService.getActiveViewportId());
        return vp?.getImageIds?.().length === {len(order)} && services.segmentationService
          .getSegmentationRepresentations(vp.id).some(r => r.segmentationId === {seg_set!r}); }}""",
          60, "the SEG on its series")
    page.evaluate(f"() => window.medsegOhif.showInstance({order[z]!r})")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(DOCS_SHOT.with_name("ohif-seg.png")))


def test_proxy_and_config(ohif_server, ct_series, orthanc):
    """The archive is read through the service as the caller's tenant, GET only, under
    studies/; the browser never gets the archive's credentials or address."""
    base_url, api = ohif_server
    config = api.get("/ohif/app-config.js")
    assert config.status_code == 200 and "javascript" in config.headers["content-type"]
    assert "/ohif/dicom-web/main" in config.text and "/ohif/medseg/extension.js" in config.text
    for secret in (PASSWORD, orthanc.url, orthanc.dicomweb):
        assert secret not in config.text
    series = api.get(f"/ohif/dicom-web/main/studies/{ct_series.study_uid}/series",
                     headers={"Accept": "application/dicom+json"})
    assert series.status_code == 200, series.text
    assert ct_series.series_uid in series.text
    metadata = api.get(f"/ohif/dicom-web/main/studies/{ct_series.study_uid}/series/"
                       f"{ct_series.series_uid}/metadata")
    assert metadata.status_code == 200 and orthanc.url not in metadata.text
    # no key: 401; bob's tenant has no archive "main": as if absent; not a DICOMweb read: 404
    import httpx

    assert httpx.get(f"{base_url}/ohif/dicom-web/main/studies").status_code == 401
    bobs = httpx.get(f"{base_url}/ohif/dicom-web/main/studies",
                     headers={"X-API-Key": KEYS["bob"]})
    assert bobs.status_code == 422 and bobs.json()["error"] == "unknown_name"
    assert api.get("/ohif/dicom-web/main/instances").status_code == 404
    assert api.get("/ohif/dicom-web/main/studies/%2E%2E/%2E%2E/system").status_code == 404
    # the viewer's own routes answer its index page; a file of the build is served as is
    assert "window.PUBLIC_URL=\"/ohif/\"" in api.get("/ohif/viewer?StudyInstanceUIDs=1").text
    assert api.get("/ohif/medseg/mode.js").status_code == 200
    assert api.get("/ohif/medseg/nothing.js").status_code == 404
