"""The viewer's annotator features in a real browser against a real server (issue 17): segment
volume and slice range against the server's mask, organ presets and the reviewed flag, a lock
mark on every auto-locked slice that unlocks in one click, the prompts drawn until the next
revision, a note for a click outside the image, a clear screen (with a client-side NIfTI of the
held masks) when the session is deleted behind the viewer's back, `#session=` changes followed
in an open tab, units and ranges of method parameters and a layout that fits 1366 x 768, and
study / series descriptions of PACS sessions in the session list."""

from __future__ import annotations

import json
import re

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import KEYS
from tests.web.conftest import OUTPUT
from tests.web.test_viewer import api, deepest_point, server_mask
from tests.web.viewer import ViewerPage

FG_RGB = (0x3C, 0xB4, 0x4B)  # tools/registry.js FG_COLOR: foreground prompts

# The colour on the canvas at the centre of plane pixel (row, col) of a view.
_PIXEL_JS = """([axis, row, col]) => {
  const view = window.medseg.views[axis];
  const dpr = window.devicePixelRatio || 1;
  const [x, y] = view.toScreen(row, col);
  const context = view.canvas.getContext('2d');
  const px = context.getImageData(Math.floor(x * dpr), Math.floor(y * dpr), 1, 1).data;
  return [px[0], px[1], px[2]];
}"""


def pixel(viewer: ViewerPage, axis: str, row: int, col: int) -> tuple[int, int, int]:
    return tuple(viewer.page.evaluate(_PIXEL_JS, [axis, row, col]))


def is_prompt_green(rgb) -> bool:
    return all(abs(a - b) <= 12 for a, b in zip(rgb, FG_RGB))


def flush_stats(viewer: ViewerPage) -> None:
    viewer.page.evaluate("window.medseg.app.session.flushStats()")
    viewer.settle()


def stats_text(viewer: ViewerPage, segment_id: int) -> str:
    return viewer.page.locator(f'.segment[data-id="{segment_id}"] .stats').inner_text()


def shown_ml(text: str) -> float:
    return float(re.match(r"([0-9.]+) mL", text).group(1))


def test_segment_volume_and_slice_range_follow_the_mask(viewer, ct_liver):
    session, reference, z = ct_liver
    spacing = session["spacing"]
    voxel_ml = spacing[0] * spacing[1] * spacing[2] / 1000
    viewer.click("z", *deepest_point(reference[z]))  # 2D: one slice
    [segment] = viewer.segments()
    flush_stats(viewer)
    mask = server_mask(viewer.base_url, session["id"], segment["id"])
    text = stats_text(viewer, segment["id"])
    print("2D click:", text, "server mask", mask.sum(), "voxels")
    assert mask.sum() > 100
    assert abs(shown_ml(text) - mask.sum() * voxel_ml) <= 0.01 * mask.sum() * voxel_ml
    assert f"z {z + 1}–{z + 1}" in text  # slice numbers as in the views' titles (1-based)

    viewer.key("d")  # 3D: the liver over many slices
    viewer.click("z", *deepest_point(reference[z] & ~viewer.overlay("z")) if (
        reference[z] & ~viewer.overlay("z")).sum() > 20 else deepest_point(reference[z]))
    flush_stats(viewer)
    mask = server_mask(viewer.base_url, session["id"], segment["id"])
    zs = np.nonzero(mask.any(axis=(1, 2)))[0]
    text = stats_text(viewer, segment["id"])
    expected_ml = mask.sum() * voxel_ml
    print(f"3D click: {text}; server mask {mask.sum()} voxels = {expected_ml:.2f} mL, "
          f"z {zs.min() + 1}-{zs.max() + 1}")
    assert len(zs) >= 3
    assert abs(shown_ml(text) - expected_ml) <= 0.01 * expected_ml
    assert f"z {zs.min() + 1}–{zs.max() + 1}" in text
    held = viewer.page.evaluate(f"window.medseg.app.session.segmentStats({segment['id']})")
    assert held["voxels"] == mask.sum()
    ys = np.nonzero(mask.any(axis=(0, 2)))[0]
    assert held["range"]["y"] == [ys.min(), ys.max()]

    viewer.key("Control+z")  # undo: the panel follows the mask
    flush_stats(viewer)
    mask = server_mask(viewer.base_url, session["id"], segment["id"])
    assert abs(shown_ml(stats_text(viewer, segment["id"])) - mask.sum() * voxel_ml) <= (
        0.01 * mask.sum() * voxel_ml)
    viewer.page.screenshot(path=str(OUTPUT / "annotator-panel.png"))


def test_organ_presets_name_and_colour_segments_and_reviewed_is_kept(viewer, ct_liver):
    session, reference, z = ct_liver
    viewer.click("z", *deepest_point(reference[z]))
    [first] = viewer.segments()
    name = viewer.page.locator(f'.segment[data-id="{first["id"]}"] .name')
    name.fill("Liver")
    name.press("Enter")
    viewer.page.wait_for_function(
        f"window.medseg.segments.find((s) => s.id === {first['id']}).color === '#dd8265'")
    viewer.page.locator("#segments select.preset").select_option("spleen")
    viewer.page.wait_for_function("window.medseg.segments.length === 2")
    viewer.page.locator(f'.segment[data-id="{first["id"]}"] .reviewed input').check()
    viewer.page.wait_for_function(
        f"window.medseg.segments.find((s) => s.id === {first['id']}).reviewed === true")
    with api(viewer.base_url) as client:
        stored = client.get(f"/v1/sessions/{session['id']}/segments").json()
    assert [(s["name"], s["color"], s["reviewed"]) for s in stored] == [
        ("Liver", "#dd8265", True), ("spleen", "#9d6ca2", False)]
    # kept on the server: a fresh tab shows it
    viewer.page.reload()
    viewer.wait_shown("z")
    viewer.page.wait_for_function("window.medseg.segments.length === 2")
    assert viewer.page.locator(f'.segment[data-id="{first["id"]}"] .reviewed input').is_checked()
    assert not viewer.page.locator(".segment .reviewed input").nth(1).is_checked()


def test_every_auto_locked_slice_shows_a_lock_that_unlocks_in_one_click(viewer, ct_liver):
    session, reference, z = ct_liver
    viewer.click("z", *deepest_point(reference[z]))  # a 2D click locks its slice
    [segment] = viewer.segments()
    title_lock = viewer.page.locator('.view[data-axis="z"] button.lock')
    mark = viewer.page.locator(f'.view[data-axis="z"] .lock-mark[data-index="{z}"]')
    assert title_lock.is_visible() and mark.is_visible()
    other = z - 4
    viewer.click("z", *deepest_point(reference[z]))  # same slice: still one mark
    viewer.go_to("z", other)
    viewer.click("z", *deepest_point(reference[other]))
    marks = viewer.page.locator('.view[data-axis="z"] .lock-mark')
    assert sorted(int(i) for i in marks.evaluate_all("(ms) => ms.map((m) => m.dataset.index)")) \
        == sorted([z, other])
    # a mark takes the view to its slice; the title's lock unlocks it
    mark.click()
    viewer.wait_shown("z", z)
    title_lock.click()
    title_lock.wait_for(state="hidden")
    mark.wait_for(state="detached")
    base = f"/v1/sessions/{session['id']}/segments/{segment['id']}"
    with api(viewer.base_url) as client:
        assert client.get(f"{base}/locks").json()["locked_slices"] == {"z": [other]}


def test_prompts_are_drawn_until_the_next_revision(viewer, ct_liver):
    session, reference, z = ct_liver
    liver = reference[z]
    first = deepest_point(liver)
    assert not is_prompt_green(pixel(viewer, "z", *first))
    viewer.click("z", *first)
    assert is_prompt_green(pixel(viewer, "z", *first)), pixel(viewer, "z", *first)
    viewer.page.screenshot(path=str(OUTPUT / "prompt-click.png"))
    # another prompt is a new revision: the first click's marker goes, the stroke is drawn
    viewer.key("s")
    rows, cols = np.nonzero(liver & ~viewer.overlay("z"))
    assert len(rows) > 0
    r, c = int(np.median(rows)), int(np.median(cols))
    stroke = [(r, c - 4), (r, c), (r, c + 4)]
    viewer.drag("z", stroke)
    assert not is_prompt_green(pixel(viewer, "z", *first))
    assert is_prompt_green(pixel(viewer, "z", r, c)), pixel(viewer, "z", r, c)
    assert viewer.page.evaluate("window.medseg.app.prompts.shown.length") == 1
    # undo is a revision too: nothing is drawn
    viewer.key("Control+z")
    assert viewer.page.evaluate("window.medseg.app.prompts.shown.length") == 0
    assert not is_prompt_green(pixel(viewer, "z", r, c))


def test_a_click_outside_the_image_says_so(viewer, ct_liver):
    box = viewer.page.locator('.view[data-axis="z"] canvas').bounding_box()
    viewer.page.mouse.click(box["x"] + 3, box["y"] + 3)
    viewer.page.wait_for_function(
        "[...document.querySelectorAll('#messages .note')].some("
        "(n) => n.textContent.includes('outside the image'))")
    viewer.settle()
    assert viewer.segments() == []


def test_a_session_deleted_behind_the_viewer_offers_its_masks_and_the_open_screen(
        viewer, ct_liver, tmp_path):
    session, reference, z = ct_liver
    viewer.click("z", *deepest_point(reference[z]))
    [segment] = viewer.segments()
    mask = server_mask(viewer.base_url, session["id"], segment["id"])
    with api(viewer.base_url) as client:
        assert client.delete(f"/v1/sessions/{session['id']}").status_code == 204
    lost = viewer.page.locator("#lost")
    assert lost.is_hidden()
    viewer.page.mouse.click(*viewer.screen_point("z", *deepest_point(reference[z])))
    lost.wait_for(state="visible")
    assert "This session is gone" in lost.inner_text() and "1 segment mask" in lost.inner_text()
    assert viewer.messages() == [] or not any("Not found" in m for m in viewer.messages())
    viewer.page.screenshot(path=str(OUTPUT / "lost-session.png"))

    with viewer.page.expect_download() as download:
        lost.locator("button.save").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.name.endswith(".nii.gz")
    image = nib.load(path)
    labels = np.asarray(image.dataobj).transpose(2, 1, 0)
    assert labels.shape == tuple(session["shape"])
    assert np.array_equal(labels == segment["id"], mask) and set(np.unique(labels)) <= {0, 1}
    assert np.allclose(image.affine, session["affine"], atol=1e-4)
    with viewer.page.expect_download() as download:
        lost.locator("button.segment-list").click()
    listed = json.loads(download.value.path().read_text())
    assert listed["segments"][0]["voxels"] == mask.sum()

    lost.locator("button.reopen").click()
    viewer.page.wait_for_selector("#start:not([hidden])")
    assert lost.is_hidden() and viewer.page.locator("#start button.close").is_hidden()
    assert f'data-id="{session["id"]}"' not in viewer.page.locator("#start .sessions").inner_html()


def upload_via_api(server: str, path, name: str) -> dict:
    with api(server) as client:
        response = client.post("/v1/sessions", files=[("files", (path.name, path.read_bytes()))],
                               data={"name": name})
        assert response.status_code == 201, response.text
        return response.json()


def test_a_session_hash_change_in_an_open_tab_is_followed(viewer, totalseg):
    first = upload_via_api(viewer.base_url, totalseg / "ct_3mm.nii.gz", "first")
    second = upload_via_api(viewer.base_url, totalseg / "mr_3mm.nii.gz", "second")
    viewer.open(first["id"])
    assert viewer.session["id"] == first["id"]
    viewer.page.evaluate(f"location.hash = '#session={second['id']}'")
    viewer.page.wait_for_function(f"window.medseg.session.id === '{second['id']}'")
    viewer.wait_shown("z")
    assert viewer.page.title() == "medseg · second"
    # back in the tab's history: the first one again
    viewer.page.go_back()
    viewer.page.wait_for_function(f"window.medseg.session.id === '{first['id']}'")
    # a session that does not exist: said so, the open one stays (and so does its hash)
    viewer.expected_errors.add("Not found")
    viewer.page.evaluate(f"location.hash = '#session={'0' * 32}'")
    viewer.page.wait_for_function(
        "[...document.querySelectorAll('#messages .note')].some("
        "(n) => n.textContent.includes('Not found'))")
    viewer.page.wait_for_function(f"location.hash === '#session={first['id']}'")
    assert viewer.session["id"] == first["id"] and viewer.page.locator("#lost").is_hidden()


@pytest.fixture
def small_screen(browser, server):
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.add_init_script(f"sessionStorage.setItem('medseg.apiKey', {KEYS['alice']!r})")
    viewer = ViewerPage(context.new_page(), server)
    yield viewer
    context.close()
    assert not viewer.page_errors, viewer.page_errors


def within(box: dict, width: int = 1366, height: int = 768) -> bool:
    return (box is not None and box["x"] >= 0 and box["y"] >= 0
            and box["x"] + box["width"] <= width + 0.5 and box["y"] + box["height"] <= height + 0.5)


def test_parameters_have_units_and_ranges_and_the_layout_fits_1366x768(small_screen, totalseg):
    viewer = small_screen
    viewer.open()
    session = viewer.upload(totalseg / "ct_3mm.nii.gz")
    from tests.api.test_accuracy_real_data import organ_reference

    reference = organ_reference(totalseg, "ct_3mm_seg.nii.gz", "liver", session)
    spleen = organ_reference(totalseg, "ct_3mm_seg.nii.gz", "spleen", session)
    # the slice with the most of both organs
    z = int(np.argmax(np.minimum(reference.sum(axis=(1, 2)), spleen.sum(axis=(1, 2)))))
    assert spleen[z].sum() > 50 and reference[z].sum() > 50
    viewer.go_to("z", z)
    for _ in range(4):  # a history of several entries
        liver = reference[z] & ~viewer.overlay("z")
        viewer.click("z", *deepest_point(liver if liver.sum() > 20 else reference[z]))
    name = viewer.page.locator(".segment .name").first
    name.fill("liver")
    name.press("Enter")
    viewer.page.locator("#segments select.preset").select_option("spleen")
    viewer.page.wait_for_function("window.medseg.segments.length === 2")
    viewer.page.wait_for_function("window.medseg.activeSegmentId === window.medseg.segments[1].id")
    viewer.click("z", *deepest_point(spleen[z]))
    viewer.page.locator(".segment .reviewed input").first.check()
    viewer.page.wait_for_function("window.medseg.segments[0].reviewed === true")
    params = viewer.page.locator("#params")
    params.locator("summary").click()
    margin = params.locator("label.param", has=viewer.page.locator("input[name=margin_mm]"))
    assert margin.locator(".unit").inner_text() == "mm"
    field = margin.locator("input")
    assert (field.get_attribute("min"), field.get_attribute("max")) == ("0", "500")
    assert "region of interest" in margin.get_attribute("title")
    assert params.locator("input[name=smooth_mm]").get_attribute("max") == "10"
    field.fill("900")
    field.dispatch_event("change")
    viewer.page.wait_for_function(
        "window.medseg.methodParams['geodesic-graphcut']?.margin_mm === 500")
    assert any("kept within 0–500 mm" in m for m in viewer.messages())
    viewer.page.locator("#messages .note button").first.click()
    viewer.page.screenshot(path=str(OUTPUT / "layout-1366x768.png"))

    # every panel and the views are on the screen, none below the fold
    for selector in ("#toolbar", "#views", "#status", "aside", "#segments", "#history summary",
                     "#models summary", "#params summary", "#params .reset",
                     '.view[data-axis="z"] canvas', '.view[data-axis="y"] canvas'):
        box = viewer.page.locator(selector).bounding_box()
        assert within(box), (selector, box)
    assert viewer.page.locator("aside").evaluate(
        "(el) => el.scrollHeight <= el.clientHeight"
    ), "the side panels scroll: something is below the fold"
    assert viewer.page.locator("#toolbar").bounding_box()["height"] <= 80

    # the help overlay is whole on the screen, not cut off and not scrolling
    viewer.key("?")
    card = viewer.page.locator("#help .card")
    viewer.page.screenshot(path=str(OUTPUT / "help-1366x768.png"))
    assert within(card.bounding_box()), card.bounding_box()
    assert card.evaluate("(el) => el.scrollHeight <= el.clientHeight + 1")
    assert "Escape" in card.inner_text() and "export the label map" in card.inner_text()


def test_pacs_sessions_are_listed_with_study_and_series_descriptions(
        browser, redis_url, totalseg):
    from tests.live import api_server
    from tests.pacs.conftest import pacs_json
    from tests.pacs.orthanc import prepared_series, running_orthanc

    with running_orthanc() as orthanc:
        series = prepared_series(totalseg / "ct_dicom", name="described", study="study-web")
        for ds in series.datasets:
            ds.StudyDescription = "CT ABDOMEN W CONTRAST"
            ds.SeriesDescription = "Portal venous 3 mm"
            ds.StudyDate = ds.SeriesDate = "20240131"
        orthanc.store(series)
        with api_server(redis_url, MEDSEG_PACS=pacs_json(orthanc)) as server:
            with api(server) as client:
                answer = client.post("/v1/sessions/from-pacs", json={
                    "pacs": "main", "study_uid": series.study_uid,
                    "series_uid": series.series_uid})
                assert answer.status_code == 201, answer.text
                pulled = answer.json()
            assert pulled["source"]["study_description"] == "CT ABDOMEN W CONTRAST"
            assert "patient" not in json.dumps(pulled["source"]).lower()
            context = browser.new_context(viewport={"width": 1366, "height": 768})
            context.add_init_script(
                f"sessionStorage.setItem('medseg.apiKey', {KEYS['alice']!r})")
            viewer = ViewerPage(context.new_page(), server)
            try:
                viewer.open()
                entry = viewer.page.locator(f'.sessions button.session[data-id="{pulled["id"]}"]')
                text = entry.inner_text()
                print("listed as:", text.replace("\n", " / "))
                for part in ("CT ABDOMEN W CONTRAST", "Portal venous 3 mm", "CT",
                             "acquired 2024-01-31", "from main"):
                    assert part in text, part
                for identifier in ("Test^Pacs", "MEDSEG-TEST-0001", "Test"):
                    assert identifier not in text
                viewer.page.screenshot(path=str(OUTPUT / "session-list.png"))
            finally:
                context.close()
            assert not viewer.page_errors, viewer.page_errors
