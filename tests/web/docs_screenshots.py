"""Regenerate the viewer's screenshots in docs/ (viewer.png, viewer-annotators.png,
viewer-hints.png) against a real server on its own embedded Redis, in Debian's Chromium (as the
browser tests):

    PYTHONPATH=services:clients/python:protocol:benchmarks:. \
        python -m tests.web.docs_screenshots [NAME...]

NAME: viewer, annotators, hints (default: all). Needs the shared data (ct_dicom, ct_3mm) and
`make niivue` (the 3D view, for viewer.png)."""

from __future__ import annotations

import sys

import numpy as np
from playwright.sync_api import sync_playwright

from medseg.store.embedded import EmbeddedRedis
from tests.api.test_accuracy_real_data import organ_reference
from tests.conftest import KEYS, ROOT, TOTALSEG
from tests.live import api_server
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.web.test_viewer import deepest_point
from tests.web.test_viewer_tools import set_radius, use_tool
from tests.web.viewer import ViewerPage

DOCS = ROOT / "docs"


def _tab(browser, base_url: str, width: int, height: int) -> ViewerPage:
    context = browser.new_context(viewport={"width": width, "height": height})
    context.add_init_script(f"sessionStorage.setItem('medseg.apiKey', {KEYS['alice']!r})")
    viewer = ViewerPage(context.new_page(), base_url)
    viewer.open()
    return viewer


def _both_organs(viewer: ViewerPage, session: dict, seg_file: str):
    liver = organ_reference(TOTALSEG, seg_file, "liver", session)
    spleen = organ_reference(TOTALSEG, seg_file, "spleen", session)
    z = int(np.argmax(np.minimum(liver.sum(axis=(1, 2)), spleen.sum(axis=(1, 2)))))
    viewer.go_to("z", z)
    return liver, spleen, z


def _clicks(viewer: ViewerPage, organ: np.ndarray, n: int) -> None:
    """`n` clicks, each at the deepest point of what the mask shown still misses."""
    for _ in range(n):
        shown = viewer.overlay("z")
        missed = organ & ~shown
        viewer.click("z", *deepest_point(missed if missed.sum() > 20 else organ))


def _presets(viewer: ViewerPage, liver: np.ndarray, spleen: np.ndarray) -> None:
    viewer.page.locator("#segments select.preset").select_option("liver")
    viewer.page.wait_for_function("window.medseg.segments.length === 1")
    _clicks(viewer, liver, 3)
    viewer.page.locator("#segments select.preset").select_option("spleen")
    viewer.page.wait_for_function("window.medseg.segments.length === 2")
    viewer.page.wait_for_function("window.medseg.activeSegmentId === window.medseg.segments[1].id")
    _clicks(viewer, spleen & ~viewer.overlay("z"), 2)


def viewer_png(browser, base_url: str) -> None:
    """The DICOM CT: liver and spleen in 3D, the 3D view, the threshold brush and its window."""
    viewer = _tab(browser, base_url, 1366, 768)
    session = viewer.upload(*sorted((TOTALSEG / "ct_dicom").iterdir()))
    liver, spleen, z = _both_organs(viewer, session, "ct_dicom_seg.nii.gz")
    _presets(viewer, liver[z], spleen[z])
    for index in range(2):  # each organ propagated from its slice over the volume (a job)
        viewer.page.evaluate(f"window.medseg.app.session.setActiveSegment("
                             f"window.medseg.segments[{index}].id)")
        viewer.key("p")
        viewer.page.wait_for_function("window.medseg.app.session.jobs.size === 0",
                                      timeout=120_000)
        viewer.settle()
    use_tool(viewer, "threshold")
    set_radius(viewer, 8)
    viewer.page.locator("#edit .low").fill("80")
    viewer.page.locator("#edit .high").fill("400")
    viewer.page.locator("#edit .high").press("Tab")
    viewer.page.click("#segments .view3d")
    viewer.page.wait_for_function(
        "Number(document.querySelector('#render3d').dataset.rendered) >= 1", timeout=60_000)
    viewer.page.evaluate("""() => { const nv = document.querySelector('#render3d').niivue;
      nv.setRenderAzimuthElevation(200, 25); nv.volScaleMultiplier = 1.5; nv.drawScene(); }""")
    viewer.page.mouse.move(*viewer.screen_point("z", *deepest_point(liver[z])))
    viewer.settle()
    viewer.page.screenshot(path=str(DOCS / "viewer.png"))
    viewer.page.context.close()


def annotators_png(browser, base_url: str) -> None:
    """ct_3mm at 1366x768: presets with volumes, reviewed, prompts drawn, a locked slice and a
    history with one interaction removed."""
    viewer = _tab(browser, base_url, 1366, 768)
    session = viewer.upload(TOTALSEG / "ct_3mm.nii.gz")
    liver, spleen, z = _both_organs(viewer, session, "ct_3mm_seg.nii.gz")
    _presets(viewer, liver[z], spleen[z])
    rows = np.nonzero(spleen[z])[0]
    use_tool(viewer, "paint")
    set_radius(viewer, 3)
    viewer.drag("z", [(int(rows.max()) + 6, 20), (int(rows.max()) + 6, 40)])  # a stray stroke
    use_tool(viewer, "click")
    viewer.click("z", *deepest_point(spleen[z] & ~viewer.overlay("z")))
    paint = viewer.page.locator("#history li", has_text="paint").first
    viewer.page.wait_for_timeout(400)
    paint.locator(".remove-prompt").click()  # the stray stroke taken out of the history
    viewer.settle()
    viewer.page.locator(".segment .reviewed input").first.check()
    viewer.page.wait_for_timeout(600)
    viewer.page.screenshot(path=str(DOCS / "viewer-annotators.png"))
    viewer.page.context.close()


def hints_png(browser, base_url: str) -> None:
    """ct_3mm at 1366x768: the liver and the left kidney from "Segment organ…" (the organ
    model), then the kidney's hints (J), the views moved to the first one's centre."""
    viewer = _tab(browser, base_url, 1366, 768)
    session = viewer.upload(TOTALSEG / "ct_3mm.nii.gz")
    _both_organs(viewer, session, "ct_3mm_seg.nii.gz")
    for n, organ in enumerate(("liver", "kidney_left"), start=1):
        viewer.page.locator("#segments select.organ-start").select_option(organ)
        viewer.page.wait_for_function(f"window.medseg.segments.length === {n} && "
                                      f"window.medseg.segments[{n - 1}].revision > 0",
                                      timeout=120_000)
        viewer.settle()
    viewer.key("j")
    viewer.page.wait_for_function("window.medseg.app.hints.state === 'shown'", timeout=120_000)
    viewer.page.locator("#hints .hint-list li button").first.click()
    viewer.settle()
    viewer.page.wait_for_timeout(1800)  # the organ start's progress bar goes
    viewer.page.screenshot(path=str(DOCS / "viewer-hints.png"))
    viewer.page.context.close()


SHOTS = {"viewer": viewer_png, "annotators": annotators_png, "hints": hints_png}


def main(names: list[str]) -> None:
    unknown = set(names) - set(SHOTS)
    if unknown:
        raise SystemExit(f"unknown screenshot(s) {sorted(unknown)}: choose from {sorted(SHOTS)}")
    with EmbeddedRedis() as redis_url, api_server(redis_url) as base_url, \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        for name in names or SHOTS:
            SHOTS[name](browser, base_url)
            print(f"wrote docs/{'viewer' if name == 'viewer' else 'viewer-' + name}.png")
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1:])
