"""The viewer in a real browser on the shared CT: a click inside the liver paints overlay inside
the reference liver, undo removes it, a change made behind the viewer's back is resynced on the
next click (409), 3D clicks paint other slices, and server errors are shown as clear messages."""

from __future__ import annotations

import httpx
import nibabel as nib
import numpy as np
from scipy import ndimage

from medseg_protocol import codec
from tests.api.test_accuracy_real_data import largest_slice, organ_reference
from tests.conftest import KEYS
from tests.web.conftest import OUTPUT


def deepest_point(mask2d: np.ndarray) -> tuple[int, int]:
    """(row, col) farthest from the organ's edge: a click surely inside it."""
    distance = ndimage.distance_transform_edt(mask2d)
    row, col = np.unravel_index(np.argmax(distance), distance.shape)
    return int(row), int(col)


def api(server: str) -> httpx.Client:
    return httpx.Client(base_url=server, headers={"X-API-Key": KEYS["alice"]}, timeout=60)


def server_mask(server: str, session_id: str, segment_id: int) -> np.ndarray:
    with api(server) as client:
        response = client.get(f"/v1/sessions/{session_id}/segments/{segment_id}/mask")
        response.raise_for_status()
        return codec.decode_mask(response.json())


def test_click_in_the_liver_paints_it_and_undo_removes_it(viewer, ct_liver):
    session, reference, z = ct_liver
    assert not viewer.overlay("z").any()
    viewer.click("z", *deepest_point(reference[z]))
    painted = viewer.overlay("z")
    inside = (painted & reference[z]).sum() / max(painted.sum(), 1)
    print(f"overlay pixels {painted.sum()}, inside the reference liver {inside:.3f}")
    assert painted.sum() >= 100 and inside >= 0.9
    [segment] = viewer.segments()
    assert segment["revision"] > 1
    # what is painted is exactly the server's mask on that slice
    assert np.array_equal(painted, server_mask(viewer.base_url, session["id"], segment["id"])[z])
    assert "click→paint" in viewer.page.locator("#status").inner_text()
    viewer.page.screenshot(path=str(OUTPUT / "liver-click.png"))

    history = viewer.page.locator("#history li")
    history.first.wait_for()
    assert "click 2D z=" in history.first.inner_text()

    viewer.key("Control+z")
    assert not viewer.overlay("z").any()
    viewer.page.locator("#history li.undone").wait_for()
    viewer.key("Control+y")
    assert np.array_equal(viewer.overlay("z"), painted)


def test_a_change_made_elsewhere_is_resynced_on_the_next_click(viewer, ct_liver, totalseg):
    session, reference, z = ct_liver
    liver = reference[z]
    viewer.click("z", *deepest_point(liver))
    [segment] = viewer.segments()
    # behind the viewer's back: a foreground click on the spleen of the same segment
    spleen = organ_reference(totalseg, "ct_3mm_seg.nii.gz", "spleen", session)
    zs = largest_slice(spleen)
    row, col = deepest_point(spleen[zs])
    with api(viewer.base_url) as client:
        response = client.post(
            f"/v1/sessions/{session['id']}/segments/{segment['id']}/interactions",
            json={"type": "click", "dim": "2d", "plane": {"axis": "z", "index": zs},
                  "clicks": [{"zyx": [zs, row, col], "foreground": True}]})
        assert response.status_code == 200, response.text
        head = response.json()["revision"]
    # the viewer still holds the old revision: its next click is refused (409) and resyncs
    viewer.expected_errors.add("Conflict")
    viewer.click(
        "z",
        *deepest_point(liver & ~viewer.overlay("z"))
        if (liver & ~viewer.overlay("z")).any()
        else deepest_point(liver),
    )
    assert any("Conflict" in m for m in viewer.messages()), viewer.messages()
    truth = server_mask(viewer.base_url, session["id"], segment["id"])
    assert viewer.segments()[0]["revision"] == head
    assert np.array_equal(viewer.overlay("z"), truth[z])
    viewer.go_to("z", zs)
    assert truth[zs].any() and np.array_equal(viewer.overlay("z"), truth[zs])


def test_returning_to_the_tab_catches_up_with_changes_made_elsewhere(viewer, ct_liver):
    session, reference, z = ct_liver
    viewer.click("z", *deepest_point(reference[z]))
    [segment] = viewer.segments()
    with api(viewer.base_url) as client:
        response = client.post(f"/v1/sessions/{session['id']}/segments/{segment['id']}/undo")
        assert response.status_code == 200, response.text
        head = response.json()["revision"]
        second = client.post(
            f"/v1/sessions/{session['id']}/segments", json={"name": "kidney"}
        ).json()
    viewer.page.evaluate("window.dispatchEvent(new Event('focus'))")
    viewer.page.wait_for_function(
        f"window.medseg.segments.length === 2 && "
        f"window.medseg.masks.revision({segment['id']}) === {head}"
    )
    viewer.settle()
    assert not viewer.overlay("z").any()
    assert [s["name"] for s in viewer.segments()][1] == second["name"] == "kidney"


def test_3d_click_on_the_dicom_series_paints_neighbouring_slices(viewer, totalseg):
    viewer.open()
    session = viewer.upload(*sorted((totalseg / "ct_dicom").iterdir()))
    assert session["shape"] == [20, 512, 512]
    reference = organ_reference(totalseg, "ct_dicom_seg.nii.gz", "liver", session)
    z = largest_slice(reference)
    viewer.go_to("z", z)
    viewer.key("d")  # 3D
    row, col = deepest_point(reference[z])
    viewer.click("z", row, col)
    painted = viewer.overlay("z")
    assert painted.sum() > 1000 and (painted & reference[z]).sum() / painted.sum() >= 0.9
    other = z - 2 if z >= 2 else z + 2
    viewer.go_to("z", other)
    assert viewer.overlay("z").any(), "a 3D click paints other slices too"
    # the coronal view through the click shows the object across several slices
    viewer.go_to("y", row)
    rows = np.nonzero(viewer.overlay("y").any(axis=1))[0]
    assert len(rows) >= 3


def test_scribble_and_box_tools(viewer, ct_liver):
    session, reference, z = ct_liver
    rows, cols = np.nonzero(reference[z])
    r, c = deepest_point(reference[z])
    viewer.key("s")
    viewer.drag("z", [(r - 3, c - 3), (r, c), (r + 3, c + 2)])
    assert (viewer.overlay("z") & reference[z]).sum() >= 50
    viewer.key("n")  # a second segment for the box
    viewer.key("b")
    viewer.drag("z", [(int(rows.min()), int(cols.min())), (int(rows.max()), int(cols.max()))])
    segments = viewer.segments()
    assert len(segments) == 2 and all(s["revision"] > 1 for s in segments)
    box_mask = server_mask(viewer.base_url, session["id"], segments[1]["id"])
    assert (box_mask[z] & reference[z]).sum() / box_mask[z].sum() >= 0.7


def test_segment_panel_renames_recolours_exports_hides_and_deletes(viewer, ct_liver, tmp_path):
    session, reference, z = ct_liver
    viewer.click("z", *deepest_point(reference[z]))
    row = viewer.page.locator(".segment").first
    row.locator(".name").fill("liver")
    row.locator(".name").press("Enter")
    row.locator("input[type=color]").evaluate(
        "(el) => { el.value = '#00ff00'; el.dispatchEvent(new Event('change')); }"
    )
    viewer.settle()
    with api(viewer.base_url) as client:
        [stored] = client.get(f"/v1/sessions/{session['id']}/segments").json()
    assert stored["name"] == "liver" and stored["color"] == "#00ff00"
    assert viewer.overlay("z").any()
    with viewer.page.expect_download() as download:
        viewer.page.locator("#toolbar .export").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.name.endswith(".nii.gz")
    labels = np.asarray(nib.load(path).dataobj).transpose(2, 1, 0)
    mask = server_mask(viewer.base_url, session["id"], stored["id"])
    assert labels.shape == tuple(session["shape"]) and np.array_equal(
        labels == stored["label"], mask
    )
    viewer.page.locator(".segment .visible").first.uncheck()
    viewer.settle()
    assert not viewer.overlay("z").any()
    viewer.page.once("dialog", lambda dialog: dialog.accept())
    viewer.page.locator(".segment .delete").first.click()
    viewer.page.wait_for_function("window.medseg.segments.length === 0")
    with api(viewer.base_url) as client:
        assert client.get(f"/v1/sessions/{session['id']}/segments").json() == []


def test_errors_are_shown_as_clear_messages(browser, server, tmp_path):
    from tests.web.viewer import ViewerPage

    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    viewer = ViewerPage(page, server)
    try:
        page.goto(f"{server}/ui/")
        dialog = page.locator("#key-dialog")
        dialog.wait_for(state="visible")  # 401 on capabilities: the key is asked for
        assert any("API key needed" in m for m in viewer.messages())
        dialog.locator("input").fill("not-a-key")
        dialog.locator("button.primary").click()
        page.wait_for_function("document.querySelectorAll('#messages .note').length >= 2")
        dialog.wait_for(state="visible")
        dialog.locator("input").fill(KEYS["alice"])
        dialog.locator("button.primary").click()
        page.wait_for_selector("#start:not([hidden])")
        assert page.evaluate("sessionStorage.getItem('medseg.apiKey')") == KEYS["alice"]

        (tmp_path / "notes.txt").write_text("not an image")
        page.set_input_files("#start input.files", str(tmp_path / "notes.txt"))
        page.wait_for_function(
            "[...document.querySelectorAll('#messages .note')].some("
            "(n) => n.textContent.includes('Unsupported file'))"
        )

        page.goto(f"{server}/ui/#session={'0' * 32}")
        page.reload()
        page.wait_for_function(
            "[...document.querySelectorAll('#messages .note')].some("
            "(n) => n.textContent.includes('Not found'))"
        )
        OUTPUT.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(OUTPUT / "errors.png"))
    finally:
        context.close()
    assert not viewer.page_errors, viewer.page_errors


def test_an_upload_over_the_limit_is_refused_with_a_clear_message(browser, redis_url, totalseg):
    from tests.live import api_server
    from tests.web.viewer import ViewerPage

    with api_server(redis_url, MEDSEG_MAX_UPLOAD_BYTES="100000") as small_server:
        context = browser.new_context()
        context.add_init_script(f"sessionStorage.setItem('medseg.apiKey', {KEYS['alice']!r})")
        viewer = ViewerPage(context.new_page(), small_server)
        try:
            viewer.open()
            viewer.page.set_input_files("#start input.files", str(totalseg / "ct_3mm.nii.gz"))
            viewer.page.wait_for_function("window.medseg.messages.length > 0")
            [message] = viewer.error_messages()
            assert message["title"] == "Too large" and "100000 bytes" in message["detail"]
            assert viewer.page.evaluate("window.medseg.session") is None
        finally:
            context.close()


def test_what_the_server_changed_in_an_upload_is_shown(viewer, tmp_path):
    """NaN voxels are replaced on upload; the session's warning is shown as a note."""
    from tests.api.test_bad_uploads import disk_volume, nifti_bytes

    path = tmp_path / "with-nan.nii.gz"
    path.write_bytes(nifti_bytes(disk_volume()))
    viewer.open()
    viewer.upload(path)
    viewer.page.wait_for_function(
        "[...document.querySelectorAll('#messages .note.warning')].some("
        "(n) => n.textContent.includes('5 of 20480 voxels'))"
    )


def test_method_parameters_from_capabilities_go_with_the_interaction(viewer, ct_liver):
    session, reference, z = ct_liver
    panel = viewer.page.locator("#params")
    panel.locator("summary").click()
    field = panel.locator("input[name=margin_mm]")
    assert field.input_value() == "60"  # the default /v1/capabilities lists
    field.fill("30")
    field.dispatch_event("change")
    viewer.click("z", *deepest_point(reference[z]))
    [segment] = viewer.segments()
    with api(viewer.base_url) as client:
        history = client.get(
            f"/v1/sessions/{session['id']}/segments/{segment['id']}/history"
        ).json()
    last = history["revisions"][-1]["interaction"]
    assert last["type"] == "click" and last["params"]["margin_mm"] == 30


def test_dropping_an_mr_file_opens_it_with_an_automatic_window(viewer, totalseg):
    import base64

    viewer.open()
    path = totalseg / "mr_3mm.nii.gz"
    viewer.page.evaluate(
        """([name, b64]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name));
        document.querySelector('#start .drop').dispatchEvent(
          new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }""",
        [path.name, base64.b64encode(path.read_bytes()).decode()],
    )
    viewer.page.wait_for_function("window.medseg.session !== null")
    viewer.wait_shown("z")
    assert viewer.page.locator("#start").is_hidden()
    assert viewer.page.evaluate("window.medseg.windowName") == "auto"
    assert viewer.page.locator("#toolbar select.window").input_value() == "auto"
    # the automatic window spreads the MR intensities over the grey range
    greys = viewer.page.evaluate("""() => {
        const v = window.medseg.views.z;
        const context = v.canvas.getContext('2d');
        const px = context.getImageData(0, 0, v.canvas.width, v.canvas.height).data;
        const seen = new Set();
        for (let i = 0; i < px.length; i += 4) seen.add(px[i]);
        return seen.size;
    }""")
    assert greys > 100
    viewer.key("?")
    help_text = viewer.page.locator("#help").inner_text()
    for entry in (
        "undo",
        "2D (this slice) / 3D (the volume)",
        "lock / unlock the slice",
        "Click tool",
    ):
        assert entry in help_text, entry
    viewer.page.screenshot(path=str(OUTPUT / "help.png"))
    viewer.page.keyboard.press("Escape")  # the overlay covers the views
    assert viewer.page.locator("#help").is_hidden()


def test_a_png_photo_is_one_view_and_a_click_segments_the_disk(viewer, tmp_path):
    from PIL import Image

    y, x = np.ogrid[:120, :160]
    disk = (y - 60) ** 2 + (x - 70) ** 2 < 30**2
    pixels = np.where(disk, 200, 40).astype(np.uint8)
    pixels += np.random.default_rng(0).integers(0, 12, pixels.shape, dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "disk.png")
    viewer.open()
    session = viewer.upload(tmp_path / "disk.png")
    assert session["shape"] == [1, 120, 160]
    assert viewer.page.locator('.view[data-axis="y"]').is_hidden()
    viewer.click("z", 60, 70)
    painted = viewer.overlay("z")
    print("PNG disk Dice", 2 * (painted & disk).sum() / (painted.sum() + disk.sum()))
    assert (painted & disk).sum() / painted.sum() >= 0.95 and painted.sum() >= 0.8 * disk.sum()


def test_the_open_screen_lists_reopens_and_deletes_sessions(viewer, totalseg):
    with api(viewer.base_url) as client:
        path = totalseg / "ct_3mm.nii.gz"
        response = client.post(
            "/v1/sessions",
            files=[("files", (path.name, path.read_bytes()))],
            data={"name": "listed"},
        )
        assert response.status_code == 201, response.text
        session = response.json()
    viewer.open()
    entry = viewer.page.locator(f'.sessions button.session[data-id="{session["id"]}"]')
    assert "listed" in entry.inner_text()
    entry.click()
    viewer.wait_shown("z")
    assert viewer.session["id"] == session["id"]
    viewer.key("o")
    viewer.page.once("dialog", lambda dialog: dialog.accept())
    entry.locator("xpath=..").locator("button.delete").click()
    entry.wait_for(state="detached")
    with api(viewer.base_url) as client:
        assert client.get(f"/v1/sessions/{session['id']}").status_code == 404


def test_a_delta_that_skips_the_held_revision_resyncs_instead_of_applying(viewer, ct_liver):
    session, reference, z = ct_liver
    liver = reference[z]
    viewer.click("z", *deepest_point(liver))
    viewer.click("z", *deepest_point(liver & ~viewer.overlay("z")))
    [segment] = viewer.segments()
    held = segment["revision"]
    base = f"/v1/sessions/{session['id']}/segments/{segment['id']}"
    with api(viewer.base_url) as client:
        history = client.get(f"{base}/history").json()["revisions"]
        first_click = history[1]["revision"]
        for _ in range(2):
            assert client.post(f"{base}/undo").status_code == 200
        head = client.get(base).json()["revision"]
        # a delta the viewer never saw the start of: first click -> head
        skipping = client.get(f"{base}/delta", params={"from": first_click, "to": head}).json()
    assert skipping["from_revision"] != held
    viewer.page.evaluate(
        "([id, delta]) => window.medseg.masks.follow(id, delta)", [segment["id"], skipping]
    )
    viewer.settle()
    assert viewer.page.evaluate(f"window.medseg.masks.revision({segment['id']})") == head
    assert np.array_equal(
        viewer.overlay("z"), server_mask(viewer.base_url, session["id"], segment["id"])[z]
    )
    assert not viewer.overlay("z").any()
