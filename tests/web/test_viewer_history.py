"""The viewer's history and 3D tools in a real browser against a real server (issue 17):
removing one prompt from the history (the Delete key for the prompt shown, the history
panel's ✕ for any interaction), the threshold brush and its undo, archived sessions restored
from the lost-session and open screens, and the NiiVue 3D rendering of the segments (WebGL2
on SwiftShader: Chromium runs with --disable-gpu)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import redis

from medseg.store import archive
from medseg.store.keys import SessionKeys
from tests.conftest import ROOT
from tests.web.test_viewer import api, deepest_point, server_mask
from tests.web.test_viewer_tools import mask_of, set_radius, use_tool
from tests.web.viewer import ViewerPage

NIIVUE = ROOT / "clients" / "web" / "vendor" / "niivue.umd.js"


@pytest.fixture(scope="module")
def archive_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("archive")


@pytest.fixture(scope="module")
def server(redis_url, archive_dir):
    """This module's API process keeps an archive of expired sessions."""
    from tests.live import api_server

    with api_server(redis_url, MEDSEG_ARCHIVE_DIR=str(archive_dir)) as base_url:
        yield base_url


def history_items(viewer: ViewerPage) -> list[dict]:
    viewer.page.wait_for_timeout(400)  # the panel reloads 250 ms after changes settle
    return viewer.page.evaluate("""[...document.querySelectorAll('#history li')].map((li) => ({
        revision: Number(li.dataset.revision), text: li.textContent.replace(/^✕\\s*/, ''),
        removable: Boolean(li.querySelector('.remove-prompt')),
        removed: li.classList.contains('removed')}))""")


def test_remove_a_prompt_from_the_history(viewer, ct_liver):
    session, reference, z = ct_liver
    rows, cols = session["shape"][1:]
    use_tool(viewer, "paint")
    set_radius(viewer, 4)
    viewer.drag("z", [(8, 10), (8, 40)])  # a stroke at the image's top edge, away from the liver
    stroke = mask_of(viewer, session)
    assert stroke[z, 8, 10:41].all() and not (stroke & reference).any()
    use_tool(viewer, "click")
    viewer.click("z", *deepest_point(reference[z]))
    both = mask_of(viewer, session)
    assert (both & reference).sum() > 100
    assert viewer.page.evaluate("window.medseg.app.prompts.shown.length") == 1  # the click

    # Delete: the prompt shown (the click) leaves the history; the stroke is what is left
    viewer.key("Delete")
    assert np.array_equal(mask_of(viewer, session), stroke)
    assert np.array_equal(viewer.overlay("z"), stroke[z])
    items = history_items(viewer)
    assert items[0]["text"].startswith("remove")
    viewer.key("Control+z")  # one undo brings the click back
    assert np.array_equal(mask_of(viewer, session), both)

    # the history panel's ✕ on the stroke: the click is made again without it
    items = history_items(viewer)
    paint = next(i for i in items if i["text"].startswith("paint"))
    assert paint["removable"] and not paint["removed"]
    viewer.page.click(f'#history li[data-revision="{paint["revision"]}"] .remove-prompt')
    viewer.settle()
    without = mask_of(viewer, session)
    assert not without[z, :12].any()  # the stroke is gone
    assert (without & reference).sum() > 0.9 * (both & reference).sum()  # the click's liver stays
    assert np.array_equal(viewer.overlay("z"), without[z])
    assert next(i for i in history_items(viewer) if i["revision"] == paint["revision"])["removed"]
    viewer.key("Control+z")
    assert np.array_equal(mask_of(viewer, session), both)


def test_threshold_brush_paints_within_the_window_and_undoes(viewer, ct_liver):
    session, reference, z = ct_liver
    row = int(np.median(np.nonzero(reference[z])[0]))
    liver_cols = np.nonzero(reference[z, row])[0]
    across = [(row, max(int(liver_cols.min()) - 20, 0)), (row, int(liver_cols.min()) + 20)]
    use_tool(viewer, "paint")
    set_radius(viewer, 6)
    viewer.drag("z", across)
    painted = mask_of(viewer, session)
    viewer.key("Control+z")
    use_tool(viewer, "threshold")
    panel = viewer.page.locator("#edit .threshold")
    assert panel.is_visible() and "HU" in panel.inner_text()
    viewer.page.locator("#edit .low").fill("0")
    viewer.page.locator("#edit .high").fill("200")
    viewer.page.locator("#edit .high").press("Tab")
    viewer.page.wait_for_function("window.medseg.app.tools.threshold.high === 200 && "
                                  "window.medseg.app.tools.threshold.low === 0")
    viewer.drag("z", across)
    windowed = mask_of(viewer, session)
    print(f"threshold 0..200 HU: {int(windowed.sum())} of the {int(painted.sum())} voxels "
          f"the brush covers; {int((windowed & reference).sum())} in the liver")
    assert 0 < windowed.sum() < painted.sum() and not (windowed & ~painted).any()
    assert (windowed & reference).sum() > 0.8 * (painted & reference).sum()  # liver: ~50-70 HU
    assert np.array_equal(viewer.overlay("z"), windowed[z])
    [segment] = viewer.segments()
    with api(viewer.base_url) as client:  # a 2D edit locks its slice
        record = client.get(f"/v1/sessions/{session['id']}/segments/{segment['id']}").json()
    assert z in record["locked_slices"].get("z", [])
    viewer.key("Control+z")
    assert not mask_of(viewer, session).any() and not viewer.overlay("z").any()
    # "= shown" takes the grey window on screen (centre -+ width / 2)
    shown = viewer.page.evaluate("window.medseg.app.views.window")
    viewer.page.click("#edit .from-window")
    assert viewer.page.evaluate("window.medseg.app.tools.threshold") == {
        "low": shown["center"] - shown["width"] // 2, "high": shown["center"] + shown["width"] // 2}


def _expire_into_archive(server: str, redis_url: str, archive_dir, sid: str) -> None:
    """What the worker's sweeper and Redis's TTL do, at once: archive, then the keys go."""
    with redis.Redis.from_url(redis_url) as connection:
        assert archive.archive(connection, sid, archive_dir) is not None
        keys = SessionKeys(sid)
        connection.delete(keys.meta, *keys.data_keys)


def test_restore_an_archived_session(viewer, ct_liver, redis_url, archive_dir):
    session, reference, z = ct_liver
    sid = session["id"]
    viewer.click("z", *deepest_point(reference[z]))
    before = mask_of(viewer, session)
    [segment] = viewer.segments()
    _expire_into_archive(viewer.base_url, redis_url, archive_dir, sid)
    # the next request finds the session gone: the lost screen offers the restore
    viewer.expected_errors.add("Session gone")
    viewer.page.mouse.click(*viewer.screen_point("z", *deepest_point(reference[z])))
    lost = viewer.page.locator("#lost")
    lost.wait_for(state="visible")
    restore = lost.locator("button.restore")
    restore.wait_for(state="visible")
    restore.click()
    lost.wait_for(state="hidden")
    viewer.wait_shown("z")
    assert viewer.page.evaluate("window.medseg.session.id") == sid
    assert np.array_equal(server_mask(viewer.base_url, sid, segment["id"]), before)
    viewer.go_to("z", z)
    assert np.array_equal(viewer.overlay("z"), before[z])

    # expired again: the open screen lists it under Archived sessions, with Restore
    _expire_into_archive(viewer.base_url, redis_url, archive_dir, sid)
    viewer.open()
    item = viewer.page.locator(f'#start .archived li[data-id="{sid}"]')
    item.wait_for(state="visible")
    shape = "×".join(str(n) for n in session["shape"])
    assert "1 segment" in item.inner_text() and shape in item.inner_text()
    item.locator("button.restore").click()
    viewer.page.wait_for_selector("#start", state="hidden")
    viewer.wait_shown("z")
    assert viewer.page.evaluate("window.medseg.session.id") == sid
    assert np.array_equal(server_mask(viewer.base_url, sid, segment["id"]), before)
    with api(viewer.base_url) as client:
        assert client.get("/v1/sessions/archived").json() == []  # live again


_COLOUR_PIXELS_JS = """async (color) => {
  const el = document.querySelector('#render3d');
  const nv = el.niivue;
  const canvas = el.querySelector('canvas');
  nv.drawScene();  // read in the same task as the draw: WebGL keeps no buffer after a frame
  const copy = document.createElement('canvas');
  copy.width = canvas.width; copy.height = canvas.height;
  const ctx = copy.getContext('2d');
  ctx.drawImage(canvas, 0, 0);
  const px = ctx.getImageData(0, 0, copy.width, copy.height).data;
  const want = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
  const norm = Math.hypot(...want);
  let match = 0, lit = 0;
  for (let i = 0; i < px.length; i += 4) {
    const rgb = [px[i], px[i + 1], px[i + 2]];
    const n = Math.hypot(...rgb);
    if (n < 60) continue;  // the background (0.08, 0.08, 0.1) and the darkest shading
    lit++;
    const cos = (rgb[0] * want[0] + rgb[1] * want[1] + rgb[2] * want[2]) / (n * norm);
    if (cos > 0.97) match++;
  }
  return { match, lit, total: px.length / 4 };
}"""


def test_3d_rendering_shows_the_segment_in_its_colour(viewer, ct_liver):
    if not NIIVUE.is_file():
        pytest.fail(f"{NIIVUE} is missing: `make niivue` (and `make test`) fetch it from npm")
    session, reference, z = ct_liver
    use_tool(viewer, "click")
    viewer.page.click('#toolbar [data-dim="3d"]')
    viewer.click("z", *deepest_point(reference[z]))  # a 3D click: the liver in the volume
    assert mask_of(viewer, session).sum() > 1000
    [segment] = viewer.segments()
    viewer.page.click("#segments .view3d")
    panel = viewer.page.locator("#render3d")
    panel.wait_for(state="visible")
    viewer.page.wait_for_function(
        "Number(document.querySelector('#render3d').dataset.rendered) >= 1", timeout=60_000)
    webgl = viewer.page.evaluate("document.querySelector('#render3d').niivue.gl instanceof "
                                 "WebGL2RenderingContext")
    assert webgl
    shown = viewer.page.evaluate(_COLOUR_PIXELS_JS, segment["color"])
    print(f"3D view: {shown['match']} of {shown['total']} pixels in the segment's colour "
          f"{segment['color']} ({shown['lit']} lit)")
    assert shown["match"] > 500 and shown["match"] > 0.8 * shown["lit"]
    # undo empties the segment: the rendering follows
    viewer.key("Control+z")
    assert not mask_of(viewer, session).any()
    deadline = time.monotonic() + 30
    while (left := viewer.page.evaluate(_COLOUR_PIXELS_JS, segment["color"]))["match"]:
        assert time.monotonic() < deadline, f"the 3D view still shows the undone segment: {left}"
        viewer.page.wait_for_timeout(200)
    viewer.key("4")  # the key closes it
    panel.wait_for(state="hidden")
