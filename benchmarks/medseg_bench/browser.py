"""Latency in the browser: `make bench-browser` (or `python -m medseg_bench.browser`).

Starts its own Redis and API process, opens the viewer in headless Chromium (Debian's
/usr/bin/chromium driven by Playwright; a dev dependency), uploads the shared DICOM series
(512x512 slices), and clicks inside the liver N times on its largest slice, undoing after each
click so every click is a first click. Prints a table of the time from the mouse event to the
painted overlay (the viewer's `performance.measure`), and the server time of the same requests
(`Server-Timing`, read from the browser's resource timing). Then N times the next axial
slice (ArrowUp) to the painted image, once prefetched and once with the plane cache cleared.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from medseg.engine.imageio import reorient_to
from medseg_bench.latency import pct, server
from medseg_train.data import data_root, load_nifti

ROOT = Path(__file__).resolve().parents[2]
DATA = data_root()
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

_SERVER_MS = """(part) => performance.getEntriesByType('resource')
  .filter((e) => e.name.includes(part))
  .map((e) => (e.serverTiming.find((t) => t.name === 'app') || {}).duration)"""


def click_targets(session: dict, n: int, seed: int = 0) -> tuple[int, list[tuple[int, int]]]:
    """The largest liver slice (reference segmentation on the session grid) and n points well
    inside the liver on it, (row, col) = (y, x)."""
    labels = json.loads((DATA / "labels.json").read_text())["ct_dicom_seg.nii.gz"]
    label = int(next(k for k, v in labels.items() if v == "liver"))
    seg = load_nifti(DATA / "ct_dicom_seg.nii.gz")
    liver = reorient_to(np.asarray(session["affine"]), tuple(session["shape"]),
                        np.asarray(seg.dataobj).transpose(2, 1, 0) == label, seg.affine)
    z = int(np.argmax(liver.sum(axis=(1, 2))))
    inner = ndimage.distance_transform_edt(liver[z]) > 15
    rows, cols = np.nonzero(inner)
    pick = np.random.default_rng(seed).choice(len(rows), size=n, replace=len(rows) < n)
    return z, [(int(rows[i]), int(cols[i])) for i in pick]


_FRAMES = "new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
_SETTLE = "window.medseg.editor.settled()"


def time_clicks(page, z: int, targets: list[tuple[int, int]]) -> tuple[list[dict], dict]:
    """Click each target on axial slice z and undo it; the viewer's measures and server times."""
    page.evaluate(f"window.medseg.views.z.setIndex({z})")
    page.wait_for_function(f"window.medseg.views.z.shown.index === {z}")
    canvas = page.locator('.view[data-axis="z"] canvas').bounding_box()
    page.evaluate("window.medseg.createSegment('liver')")
    page.wait_for_function("window.medseg.activeSegmentId !== null")
    for row, col in targets:
        x, y = page.evaluate(f"window.medseg.views.z.toScreen({row}, {col})")
        page.mouse.click(canvas["x"] + x, canvas["y"] + y)
        page.evaluate(_SETTLE)
        page.keyboard.press("Control+z")
        page.evaluate(_SETTLE)
    page.evaluate(_FRAMES)
    server_ms = {"click": page.evaluate(_SERVER_MS, "/interactions"),
                 "undo": page.evaluate(_SERVER_MS, "/undo")}
    return page.evaluate("window.medseg.latencies"), server_ms


def time_slices(page, count: int, depth: int) -> tuple[dict[str, list[float]], list[float]]:
    """Next axial slice (ArrowUp) to the painted image, once prefetched, once not cached."""
    page.evaluate("performance.clearResourceTimings()")
    page.locator('.view[data-axis="z"] canvas').hover()  # keys act on the view under the mouse
    times: dict[str, list[float]] = {"prefetched": [], "not cached": []}
    for i in range(count):
        for kind, ms in times.items():
            page.evaluate(f"window.medseg.views.z.setIndex({i % (depth - 1)}, true)")
            page.evaluate(_FRAMES)
            page.evaluate("Promise.all([...window.medseg.slices.pending.values()])")  # prefetch
            if kind == "not cached":
                page.evaluate("window.medseg.slices.planes.clear()")
            page.evaluate("window.medseg.latencies = []")
            page.keyboard.press("ArrowUp")
            page.wait_for_function("window.medseg.latencies.some((e) => e.label === 'slice z')")
            ms += [e["ms"] for e in page.evaluate("window.medseg.latencies")]
    return times, page.evaluate(_SERVER_MS, "/slices/z/")


def run(clicks: int, chromium: str) -> dict[str, tuple[list[dict], list[float]]]:
    from playwright.sync_api import sync_playwright

    files = sorted(str(p) for p in (DATA / "ct_dicom").iterdir())
    with server() as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{base}/ui/")
        page.wait_for_selector("#start:not([hidden])")
        page.set_input_files("#start input.files", files)
        page.wait_for_function("window.medseg.session && window.medseg.views.z.shown",
                               timeout=120_000)
        session = page.evaluate("window.medseg.session")
        z, targets = click_targets(session, clicks)
        latencies, server_ms = time_clicks(page, z, targets)
        slices, slice_server_ms = time_slices(page, clicks, session["shape"][0])
        browser.close()
    shape = "x".join(str(s) for s in session["shape"][1:])
    rows = {
        f"2D click on a {shape} slice -> painted overlay":
            ([e for e in latencies if e["label"] == "click"], server_ms["click"]),
        "undo (Ctrl+Z) -> painted overlay":
            ([e for e in latencies if e["label"] == "undo"], server_ms["undo"]),
    }
    for kind, ms in slices.items():
        rows[f"next {shape} slice (ArrowUp), {kind} -> painted image"] = (
            [{"ms": v} for v in ms], slice_server_ms)
    return rows


def print_table(rows: dict[str, tuple[list[dict], list[float]]]) -> None:
    print("\n| operation | n | browser p50 ms | browser p95 ms | server p50 ms | server p95 ms "
          "| p50 split: answer / decode+apply / paint ms |")
    print("|---|---|---|---|---|---|---|")
    for name, (entries, srv) in rows.items():
        total = [e["ms"] for e in entries]
        split = " / ".join(f"{pct([e[k] for e in entries], 50):.1f}"
                           for k in ("answer", "apply", "paint")
                           ) if "answer" in entries[0] else "-"
        server_cols = f"{pct(srv, 50):.1f} | {pct(srv, 95):.1f}" if srv else "- | -"
        print(f"| {name} | {len(total)} | {pct(total, 50):.1f} | {pct(total, 95):.1f} | "
              f"{server_cols} | {split} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=50, help="clicks to time (default 50)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    if not Path(args.chromium).exists():
        sys.exit(f"{args.chromium} not found: apt-get install chromium (or `make bench-browser`)")
    if not (DATA / "ct_dicom").is_dir():
        sys.exit(f"shared data not found at {DATA} (set MEDSEG_SHARED_DATA)")
    print_table(run(args.clicks, args.chromium))


if __name__ == "__main__":
    main()
