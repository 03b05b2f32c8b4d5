"""The viewer's editing tools and session expiry in a real browser against a real server
(issue 17): the manual brush and eraser (a radius in mm) and fill, each a revision that undoes
like any change; the deep editing tools select and adjust on the liver; the warning shown
before a session expires and the keep-alive it offers."""

from __future__ import annotations

from datetime import datetime

import numpy as np
from scipy import ndimage

from tests.web.test_viewer import api, deepest_point, server_mask
from tests.web.viewer import ViewerPage


def use_tool(viewer: ViewerPage, tool: str) -> None:
    viewer.page.click(f'#toolbar [data-tool="{tool}"]')
    viewer.page.wait_for_function(f"window.medseg.tool?.id === {tool!r}")


def set_radius(viewer: ViewerPage, mm: float) -> None:
    field = viewer.page.locator("#edit .radius-mm")
    field.fill(str(mm))
    field.press("Tab")  # commits: the change event
    viewer.page.wait_for_function(f"window.medseg.app.tools.radiusMm === {mm}")


def mask_of(viewer: ViewerPage, session: dict) -> np.ndarray:
    [segment] = viewer.segments()
    return server_mask(viewer.base_url, session["id"], segment["id"])


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


def test_brush_then_eraser_then_undo(viewer, ct_liver):
    session, _, z = ct_liver
    spacing = session["spacing"]
    rows, cols = session["shape"][1:]
    r, c0, c1 = rows // 2, cols // 2 - 15, cols // 2 + 15
    use_tool(viewer, "paint")
    set_radius(viewer, 6)
    viewer.drag("z", [(r, c0), (r, c1)])
    painted = mask_of(viewer, session)
    # a stroke as wide as the brush on this slice only
    assert painted[z, r, c0:c1 + 1].all()
    assert not painted[:z].any() and not painted[z + 1:].any()
    half = int(6 // spacing[1])
    assert painted[z, r - half, c0 + 5:c1 - 5].all() and painted[z, r + half, c0 + 5:c1 - 5].all()
    assert not painted[z, r - half - 2].any() and not painted[z, r + half + 2].any()
    assert np.array_equal(viewer.overlay("z"), painted[z])
    [segment] = viewer.segments()
    with api(viewer.base_url) as client:  # a 2D edit locks its slice
        record = client.get(f"/v1/sessions/{session['id']}/segments/{segment['id']}").json()
    assert z in record["locked_slices"].get("z", [])

    use_tool(viewer, "erase")
    set_radius(viewer, 3)
    cm = cols // 2
    viewer.drag("z", [(r - 10, cm), (r + 10, cm)])
    erased = mask_of(viewer, session)
    assert not erased[z, r - half:r + half + 1, cm].any()
    assert not (erased & ~painted).any() and erased.sum() < painted.sum()
    assert erased[z, r, c0:c0 + 5].all() and erased[z, r, c1 - 4:c1 + 1].all()
    assert np.array_equal(viewer.overlay("z"), erased[z])

    viewer.key("Control+z")
    assert np.array_equal(mask_of(viewer, session), painted)
    assert np.array_equal(viewer.overlay("z"), painted[z])
    viewer.key("Control+z")
    assert not mask_of(viewer, session).any()
    assert not viewer.overlay("z").any()


def test_fill_a_closed_outline(viewer, ct_liver):
    session, _, z = ct_liver
    rows, cols = session["shape"][1:]
    r0, r1, c0, c1 = rows // 2 - 10, rows // 2 + 10, cols // 2 - 10, cols // 2 + 10
    use_tool(viewer, "paint")
    set_radius(viewer, 3)
    viewer.drag("z", [(r0, c0), (r0, c1), (r1, c1), (r1, c0), (r0, c0)])
    ring = mask_of(viewer, session)[z]
    assert ring[r0, c0:c1 + 1].all() and not ring[rows // 2, cols // 2]
    use_tool(viewer, "fill")
    viewer.click("z", rows // 2, cols // 2)
    filled = mask_of(viewer, session)
    assert np.array_equal(filled[z], ndimage.binary_fill_holes(ring))
    assert filled[z].sum() > ring.sum() + 100
    assert np.array_equal(viewer.overlay("z"), filled[z])
    viewer.key("Control+z")
    assert np.array_equal(mask_of(viewer, session)[z], ring)


def test_select_adds_back_a_region_of_the_liver(viewer, ct_liver):
    session, reference, z = ct_liver
    viewer.click("z", *deepest_point(reference[z]))  # 2D: the liver on this slice
    clicked = mask_of(viewer, session)[z]
    # bite a disc out of the liver mask with the eraser, then select it back in
    ys, xs = np.nonzero(clicked & ndimage.binary_erosion(reference[z], iterations=6))
    at = (int(ys[len(ys) // 3]), int(xs[len(ys) // 3]))
    use_tool(viewer, "erase")
    set_radius(viewer, 15)
    viewer.click("z", *at)
    bitten = mask_of(viewer, session)[z]
    missed = clicked & ~bitten
    assert missed.sum() > 30
    use_tool(viewer, "select")
    viewer.click("z", *at)
    selected = mask_of(viewer, session)[z]
    before, after = dice(bitten, reference[z]), dice(selected, reference[z])
    recovered = (selected & missed).sum() / missed.sum()
    added = selected & ~bitten
    inside = (added & reference[z]).sum() / max(added.sum(), 1)
    print(f"select: Dice to the liver {before:.3f} -> {after:.3f}, clicked mask "
          f"{dice(clicked, reference[z]):.3f}; bite recovered {recovered:.2f}, "
          f"{added.sum()} voxels added, {inside:.2f} inside the liver")
    assert after > before and recovered >= 0.3 and inside >= 0.8
    assert np.array_equal(viewer.overlay("z"), selected)


def test_adjust_grows_and_shrinks_monotonically(viewer, ct_liver):
    session, reference, z = ct_liver
    viewer.click("z", *deepest_point(reference[z]))
    sizes = [mask_of(viewer, session)]
    use_tool(viewer, "select")  # the edit panel shows with an editing tool
    amount = viewer.page.locator("#edit .amount")
    amount.fill("10")
    for button in ("grow", "grow", "shrink"):
        viewer.page.click(f"#edit .{button}")
        viewer.settle()
        sizes.append(mask_of(viewer, session))
    m0, m1, m2, m3 = sizes
    print("adjust areas:", [int(m[z].sum()) for m in sizes])
    assert not (m0 & ~m1).any() and not (m1 & ~m2).any() and not (m3 & ~m2).any()
    assert m0.sum() < m1.sum() < m2.sum() and m3.sum() < m2.sum()
    assert abs(m1.sum() - 1.1 * m0.sum()) <= 0.02 * m0.sum() + 1
    assert np.array_equal(viewer.overlay("z"), m3[z])
    viewer.key("}")  # the key grows too
    assert mask_of(viewer, session).sum() > m3.sum()


def test_expiry_warning_and_keep_alive(viewer, ct_liver):
    session, _, _ = ct_liver
    warning = viewer.page.locator("#expiry")
    viewer.page.evaluate("window.medseg.app.expiry.check()")
    assert warning.is_hidden()  # two hours left: no warning
    # the session is a minute from expiry (as if left idle): the 5 min warning shows
    viewer.page.evaluate("""() => { const e = window.medseg.app.expiry;
      e.expiresAt = Date.now() + 60_000; e.check(); }""")
    warning.wait_for(state="visible")
    assert "expires in 0 min" in warning.inner_text() or "expires in 1 min" in warning.inner_text()
    with viewer.page.expect_request(lambda r: r.url.endswith(f"/{session['id']}/keepalive")):
        warning.locator("button.keep").click()
    warning.wait_for(state="hidden")
    held = viewer.page.evaluate("window.medseg.app.expiry.remainingS()")
    assert held > 3600
    with api(viewer.base_url) as client:
        record = client.get(f"/v1/sessions/{session['id']}").json()
    server_at = datetime.fromisoformat(record["expires_at"].replace("Z", "+00:00")).timestamp()
    viewer_at = viewer.page.evaluate("window.medseg.app.expiry.expiresAt") / 1000
    assert abs(server_at - viewer_at) < 60
