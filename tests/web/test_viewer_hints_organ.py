"""Issue 14 in the viewer, in a real browser against a real server: hints (J) are drawn on the
canvas at the boxes the API returns (the pixels the hint layer adds lie on those boxes' outlines
and rank badges, on every view and only on the slices a box covers), listed with their size
and likelihood, an entry jumps to its centre, while the panel is open they follow the segment's
head by themselves (one request in flight, an answer for an older revision never drawn, a
failed refetch said in the panel, none once closed), and an empty segment's 422 is said as a
message; the organ start ("Segment organ…") paints the
liver on the shared CT exactly as the server's mask, with a progress bar while it runs, and
undo clears it."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.api.test_accuracy_real_data import organ_reference
from tests.api.test_editing_api import nifti
from tests.web.conftest import OUTPUT
from tests.web.test_annotators import upload_via_api
from tests.web.test_viewer import api, deepest_point, server_mask
from tests.web.viewer import ViewerPage

AXES = ("z", "y", "x")
KIND_COLORS = {"missing": (0xFF, 0x9F, 0x1A), "extra": (0xFF, 0x40, 0xFF)}  # js/hints.js

# The pixels the hint layer adds to a view: the view drawn without hints and with them, and
# where they differ (CSS px); the view's row and column axes; the colour at given points.
_HINT_PIXELS_JS = """([axis, probes]) => {
  const view = window.medseg.views[axis];
  const hints = window.medseg.app.hints;
  const canvas = view.canvas;
  const dpr = window.devicePixelRatio || 1;
  const grab = (on) => {
    hints.visible = on;
    view.draw();
    return canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  };
  const off = grab(false);
  const on = grab(true);
  const diff = [];
  for (let i = 0; i < on.length; i += 4) {
    if (on[i] !== off[i] || on[i + 1] !== off[i + 1] || on[i + 2] !== off[i + 2]) {
      const p = i / 4;
      diff.push([(p % canvas.width) / dpr, Math.floor(p / canvas.width) / dpr]);
    }
  }
  const colors = probes.map(([x, y]) => {
    const i = (Math.floor(y * dpr) * canvas.width + Math.floor(x * dpr)) * 4;
    return [on[i], on[i + 1], on[i + 2]];
  });
  return { diff, colors, index: view.index };
}"""

AXIS_INDEX = {"z": 0, "y": 1, "x": 2}


def screen_rect(viewer: ViewerPage, axis: str, box: dict, row_axis: str, col_axis: str):
    """(x0, y0, x1, y1) on screen (CSS px) of the edges around a box's voxels on a view."""
    ra, ca = AXIS_INDEX[row_axis], AXIS_INDEX[col_axis]
    r0, c0 = box["lo"][ra], box["lo"][ca]
    r1, c1 = box["hi"][ra] + 1, box["hi"][ca] + 1
    corners = [viewer.page.evaluate(f"window.medseg.views.{axis}.toScreen({r - 0.5}, {c - 0.5})")
               for r, c in ((r0, c0), (r1, c1))]
    (xa, ya), (xb, yb) = corners
    return min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb)


def covers(box: dict, axis: str, index: int) -> bool:
    a = AXIS_INDEX[axis]
    return box["lo"][a] <= index <= box["hi"][a]


def check_hints_drawn(viewer: ViewerPage, axis: str, hints: list[dict]) -> int:
    """The pixels the hints add on `axis`'s view lie on the outlines (and rank badges) of the
    API's boxes that cover the shown slice, and each such outline is drawn along all four
    edges in its kind's colour; none when no box covers the slice. Returns how many boxes."""
    index = viewer.page.evaluate(f"window.medseg.views.{axis}.index")
    layout = viewer.page.evaluate(
        f"[window.medseg.views.{axis}.layout.rowAxis, window.medseg.views.{axis}.layout.colAxis]")
    shown = [(h, screen_rect(viewer, axis, h["box"], *layout)) for h in hints
             if covers(h["box"], axis, index)]
    probes = [[x0 + 3, y0 + 2] for _, (x0, y0, _, _) in shown]  # inside each rank badge
    got = viewer.page.evaluate(_HINT_PIXELS_JS, [axis, probes])
    assert got["index"] == index
    diff = np.asarray(got["diff"], dtype=float).reshape(-1, 2)
    if not shown:
        assert len(diff) == 0, f"hint pixels on {axis}={index}, which no hint box covers"
        return 0
    near = np.zeros(len(diff), dtype=bool)
    for hint, (x0, y0, x1, y1) in shown:
        x, y = diff[:, 0], diff[:, 1]
        inside_band = (x >= x0 - 3) & (x <= x1 + 3) & (y >= y0 - 3) & (y <= y1 + 3)
        on_edge = (np.minimum(np.abs(x - x0), np.abs(x - x1)) <= 3) | \
                  (np.minimum(np.abs(y - y0), np.abs(y - y1)) <= 3)
        badge = (x >= x0 - 1) & (x <= x0 + 15) & (y >= y0 - 1) & (y <= y0 + 15)
        near |= (inside_band & on_edge) | badge
        # all four edges drawn over most of their length (the "extra" outline is dashed 6/3)
        for horizontal, level, lo, hi in ((True, y0, x0, x1), (True, y1, x0, x1),
                                          (False, x0, y0, y1), (False, x1, y0, y1)):
            along, across = (x, y) if horizontal else (y, x)
            hit = np.abs(across - level) <= 2
            positions = set(np.floor(along[hit & (along >= lo) & (along <= hi)]).astype(int))
            length = max(int(hi - lo), 1)
            assert len(positions) >= 0.5 * length, (axis, index, hint["rank"], horizontal, level)
    assert near.all(), f"{int((~near).sum())} hint pixels off the boxes on {axis}={index}"
    for (hint, _), color in zip(shown, got["colors"]):
        want = KIND_COLORS[hint["kind"]]
        assert max(abs(a - b) for a, b in zip(color, want)) <= 8, (hint["rank"], color, want)
    return len(shown)


@pytest.fixture
def spleen_and_kidney(viewer, totalseg):
    """ct_3mm with one segment holding the spleen and the left kidney (the kidney is an error:
    the server's hints flag it as extra, and a missing region at the spleen), open in the
    viewer; returns (session, segment)."""
    session = upload_via_api(viewer.base_url, totalseg / "ct_3mm.nii.gz", "hints")
    spleen = organ_reference(totalseg, "ct_3mm_seg.nii.gz", "spleen", session)
    kidney = organ_reference(totalseg, "ct_3mm_seg.nii.gz", "kidney_left", session)
    with api(viewer.base_url) as client:
        response = client.post(f"/v1/sessions/{session['id']}/segments/import",
                               params={"name": "spleen"},
                               files=[("file", ("m.nii.gz", nifti(spleen | kidney, session),
                                                "application/octet-stream"))])
        assert response.status_code == 201, response.text
        [segment] = response.json()
    viewer.open(session["id"])
    viewer.page.wait_for_function(
        f"window.medseg.masks?.revision({segment['id']}) === {segment['revision']}")
    viewer.page.evaluate("window.medseg.crosshair = false")
    return session, segment


def test_hints_are_drawn_at_the_apis_boxes_listed_and_jumped_to(viewer, spleen_and_kidney):
    session, segment = spleen_and_kidney
    sid, seg = session["id"], segment["id"]
    with api(viewer.base_url) as client:
        response = client.get(f"/v1/sessions/{sid}/segments/{seg}/hints", params={"k": 3})
    assert response.status_code == 200, response.text
    expected = response.json()["hints"]
    assert len(expected) >= 2 and {h["kind"] for h in expected} == {"missing", "extra"}

    viewer.key("j")
    viewer.page.wait_for_function("window.medseg.hints.state === 'shown'", timeout=60_000)
    assert viewer.page.evaluate("window.medseg.hints.result.revision") == segment["revision"]
    # the list: one entry per hint, in rank order, with its size and likelihood
    items = viewer.page.locator("#hints .hint-list li")
    assert items.count() == len(expected)
    for i, hint in enumerate(expected):
        item = items.nth(i)
        assert item.get_attribute("data-rank") == str(hint["rank"]) == str(i + 1)
        text = item.inner_text()
        what = "remove" if hint["kind"] == "extra" else "add"
        ml = hint["volume_ml"]
        size = f"{ml:.1f} mL" if ml < 100 else f"{round(ml)} mL"
        assert text.split() == [str(hint["rank"]), what, "·", *size.split(), "·",
                                str(round(100 * hint["likelihood"])), "%"], text
    viewer.page.screenshot(path=str(OUTPUT / "hints-listed.png"))

    # an entry jumps to its hint's centre, where its box is drawn on all three views
    for i, hint in enumerate(expected):
        items.nth(i).locator("button").click()
        viewer.settle()
        indices = viewer.page.evaluate("['z', 'y', 'x'].map((a) => window.medseg.views[a].index)")
        assert indices == hint["centre"], (hint["rank"], indices)
        for axis in AXES:
            viewer.wait_shown(axis, hint["centre"][AXIS_INDEX[axis]])
            assert check_hints_drawn(viewer, axis, expected) >= 1
        assert "selected" in (items.nth(i).get_attribute("class") or "")
    # J again goes on to the next hint, round
    viewer.key("j")
    first = expected[0]["centre"]
    assert viewer.page.evaluate("window.medseg.views.z.index") == first[0]
    # a slice no box covers has no hint drawn on it
    free = [z for z in range(session["shape"][0])
            if not any(covers(h["box"], "z", z) for h in expected)]
    assert free, "every slice is covered by a hint box: the test needs one that is not"
    viewer.go_to("z", free[0])
    assert check_hints_drawn(viewer, "z", expected) == 0
    viewer.go_to("z", first[0])

    # the segment changes (a click that removes the kidney on this slice) while the panel is
    # open: the hints follow the new head by themselves, one request, no J
    asked = hint_requests(viewer)
    before = server_mask(viewer.base_url, sid, seg)
    viewer.click("z", *inside(before, next(h for h in expected if h["kind"] == "extra")),
                 button="right")
    revision = viewer.page.evaluate(f"window.medseg.masks.revision({seg})")
    assert revision > segment["revision"]
    after = server_mask(viewer.base_url, sid, seg)
    assert (after != before).sum() > 50, "the click did not change the mask"
    wait_shown_for(viewer, revision)
    assert len(asked) == 1 and asked[0] == (sid, seg)
    with api(viewer.base_url) as client:
        now = client.get(f"/v1/sessions/{sid}/segments/{seg}/hints", params={"k": 3}).json()
    assert now["revision"] == revision and now["hints"] != expected
    assert items.count() == len(now["hints"])
    for axis in AXES:
        check_hints_drawn(viewer, axis, now["hints"])

    # an empty segment: the server's 422 (empty_segment) is said as a message, nothing drawn
    viewer.expected_errors.add("Nothing to check")
    viewer.key("n")
    viewer.page.wait_for_function("window.medseg.segments.length === 2")
    viewer.key("j")
    viewer.page.wait_for_function("window.medseg.hints.state === 'empty'", timeout=60_000)
    assert any("Nothing to check" in m and "no voxels" in m for m in viewer.messages())
    assert "empty" in viewer.page.locator("#hints .state").inner_text()
    assert check_hints_drawn(viewer, "z", []) == 0


def hint_requests(viewer: ViewerPage) -> list[tuple[str, int]]:
    """(session, segment) of every hints request the page sends from now on."""
    sent: list[tuple[str, int]] = []

    def seen(request) -> None:
        found = re.search(r"/v1/sessions/([^/]+)/segments/(\d+)/hints\?", request.url)
        if found:
            sent.append((found[1], int(found[2])))

    viewer.page.on("request", seen)
    return sent


def wait_shown_for(viewer: ViewerPage, revision: int) -> None:
    viewer.page.wait_for_function(
        "window.medseg.hints.state === 'shown' && "
        f"window.medseg.hints.result.revision === {revision}", timeout=60_000)


def inside(mask: np.ndarray, hint: dict) -> tuple[int, int]:
    """(row, col) on the z slice of `hint`'s centre, deepest in the mask within its box."""
    lo, hi = hint["box"]["lo"], hint["box"]["hi"]
    plane = np.zeros_like(mask[0])
    plane[lo[1]:hi[1] + 1, lo[2]:hi[2] + 1] = mask[hint["centre"][0], lo[1]:hi[1] + 1,
                                                    lo[2]:hi[2] + 1]
    assert plane.any(), hint
    return deepest_point(plane)


def test_open_hints_follow_the_head_one_request_at_a_time_and_drop_a_late_answer(
        viewer, spleen_and_kidney):
    session, segment = spleen_and_kidney
    sid, seg = session["id"], segment["id"]
    viewer.key("j")
    wait_shown_for(viewer, segment["revision"])
    expected = viewer.page.evaluate("window.medseg.hints.result.hints")
    kidney = next(h for h in expected if h["kind"] == "extra")
    viewer.go_to("z", kidney["centre"][0])
    # every hints state the panel goes through, with the revision of the hints it shows
    viewer.page.evaluate("""() => { const h = window.medseg.hints; window.hintStates = [];
      window.medseg.app.addEventListener('hints', () =>
        window.hintStates.push([h.state, h.result ? h.result.revision : null])); }""")
    asked = hint_requests(viewer)
    held: list = []  # the first request's route and the server's answer to it, answered late

    def hold(route) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)
            held.append(route.fetch())

    viewer.page.route(re.compile(r"/hints\?k="), hold)
    # a click that changes the mask: the refetch for its revision is answered, but held back
    before = server_mask(viewer.base_url, sid, seg)
    viewer.click("z", *inside(before, kidney), button="right")
    first = viewer.page.evaluate(f"window.medseg.masks.revision({seg})")
    assert (server_mask(viewer.base_url, sid, seg) != before).sum() > 50
    for _ in range(600):  # the server answers the held request (events run while we wait)
        if len(held) == 2:
            break
        viewer.page.wait_for_timeout(100)
    assert len(held) == 2 and held[1].json()["revision"] == first
    assert viewer.page.evaluate("window.medseg.hints.state") == "loading"
    assert check_hints_drawn(viewer, "z", []) == 0  # the old hints are gone from the views
    # another change while that one is in flight: no second request until it is answered
    spleen_z = next(h for h in expected if h["kind"] == "missing")["centre"][0]
    viewer.go_to("z", spleen_z)
    row, col = deepest_point(before[spleen_z])
    viewer.click("z", row, col)
    second = viewer.page.evaluate(f"window.medseg.masks.revision({seg})")
    assert second > first
    viewer.page.wait_for_timeout(1000)  # > HINT_REFETCH_MS
    assert len(asked) == 1
    # the late answer (for `first`) arrives: never drawn; the head's hints are asked and shown
    route, answer = held
    route.fulfill(response=answer)
    wait_shown_for(viewer, second)
    assert len(asked) == 2
    shown = [rev for state, rev in viewer.page.evaluate("window.hintStates") if state == "shown"]
    assert shown and set(shown) == {second}, shown
    viewer.page.unroute(re.compile(r"/hints\?k="))

    # a failed refetch: its error in the panel (no message box), and the viewer still works
    viewer.page.route(re.compile(r"/hints\?k="), lambda route: route.fulfill(
        status=503, json={"error": "busy", "message": "hints are busy, try again"}))
    viewer.click("z", row + 1, col)
    viewer.page.wait_for_function("window.medseg.hints.state === 'error'", timeout=60_000)
    assert "hints are busy" in viewer.page.locator("#hints .state").inner_text()
    assert not viewer.error_messages()
    viewer.page.unroute(re.compile(r"/hints\?k="))
    viewer.click("z", row, col + 1)
    wait_shown_for(viewer, viewer.page.evaluate(f"window.medseg.masks.revision({seg})"))

    # closed: changes no longer ask for hints
    viewer.page.locator("#hints button.close").click()
    count = len(asked)
    viewer.click("z", row + 1, col + 1)
    viewer.page.wait_for_timeout(1000)
    assert len(asked) == count
    assert viewer.page.evaluate("window.medseg.hints.state") == "idle"
    assert check_hints_drawn(viewer, "z", []) == 0


def held_voxels(viewer: ViewerPage, segment_id: int) -> np.ndarray:
    """Flat indices of the voxels the viewer holds in segment `segment_id`'s mask."""
    return np.asarray(viewer.page.evaluate(
        f"""(() => {{ const d = window.medseg.masks.get({segment_id}).data; const out = [];
        for (let i = 0; i < d.length; i++) if (d[i]) out.push(i); return out; }})()"""), dtype=int)


def test_organ_start_paints_the_liver_as_the_server_has_it_and_undo_clears_it(viewer, ct_liver):
    session, reference, z = ct_liver
    chooser = viewer.page.locator("#segments select.organ-start")
    options = chooser.locator("option").all_inner_texts()
    with api(viewer.base_url) as client:
        [card] = [m for m in client.get("/v1/models").json()["models"] if m["task"] == "organ"]
    # the organs offered are the organ model's, with its held-out Dice where measured
    assert options[0] == "Segment organ…" and len(options) == 1 + len(card["organs"])
    assert "liver · Dice 0.94" in options and "kidney left · Dice not measured" in options

    chooser.select_option("liver")
    # a progress bar while the organ model runs (the request takes a second or more)
    bar = viewer.page.locator('#toolbar .jobs .progress[data-organ="liver"]')
    assert bar.count() == 1 and "segment liver" in bar.inner_text()
    viewer.settle()  # the start is tracked from the segment's creation to the painted answer
    [segment] = viewer.segments()
    assert segment["name"] == "liver" and segment["color"] == "#dd8265"  # the preset's colour
    mask = server_mask(viewer.base_url, session["id"], segment["id"])
    liver = 2 * (mask & reference).sum() / (mask.sum() + reference.sum())
    print(f"organ start on ct_3mm: {int(mask.sum())} voxels, Dice {liver:.3f} with the reference")
    assert mask.sum() > 1000 and liver >= 0.8
    # the viewer holds the server's mask voxel for voxel, and paints it
    assert np.array_equal(held_voxels(viewer, segment["id"]), np.flatnonzero(mask))
    assert np.array_equal(viewer.overlay("z"), mask[z])
    viewer.go_to("y", int(np.argmax(mask.sum(axis=(0, 2)))))
    assert np.array_equal(viewer.overlay("y"), mask[:, viewer.page.evaluate(
        "window.medseg.views.y.index")])
    viewer.page.locator("#history li.head").wait_for()
    assert "organ 3D liver" in viewer.page.locator("#history li.head").inner_text()
    viewer.page.wait_for_function("[...document.querySelectorAll('#toolbar .jobs .progress')]"
                                  ".every((b) => b.classList.contains('done'))")

    viewer.key("Control+z")
    assert not server_mask(viewer.base_url, session["id"], segment["id"]).any()
    assert len(held_voxels(viewer, segment["id"])) == 0
    assert not viewer.overlay("z").any() and not viewer.overlay("y").any()
