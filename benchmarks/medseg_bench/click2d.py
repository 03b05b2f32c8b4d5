"""The engine's compute of the latency benchmark's 2D clicks, without the server
(docs/benchmarks.md, "2D click: the engine's compute"): geodesic-graphcut's `segment` on
`medseg_bench.latency`'s synthetic CT, z = 150 (a 512x512 slice, 0.8 mm), as the server calls
it, in a process with the compute processes' malloc thresholds: the first click on the 'liver'
(ROI 151x151), then the refinement click (a background click 40 voxels to its right, inside
the mask) with the first click's mask and float16-stored probability as its head. Each is
called `--repeats` times; prints the median, p95 and the method's own stages per click, and a
digest of each mask (the same digest: the same masks).

    OMP_NUM_THREADS=1 python -m medseg_bench.click2d --repeats 200
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Callable

import numpy as np

from medseg.api.compute import keep_freed_memory
from medseg.engine.graphcut_method import GraphCutParams, segment
from medseg.engine.method import MethodResult, SegmentContext
from medseg.engine.prompts import Box, Marks, Plane
from medseg_bench.latency import synthetic_ct

SPACING = (1.5, 0.8, 0.8)  # mm (z, y, x): the latency benchmark's upload


def clicks() -> dict[str, Callable[[], MethodResult]]:
    """name -> one call of the engine, as the server makes it for that click."""
    volume, points = synthetic_ct()
    z, y, x = points["liver"]
    plane = Plane(0, z)
    image = np.ascontiguousarray(volume[z:z + 1])  # the only slice a 2D click reads
    del volume
    shape = (300, 512, 512)

    def read_image(box: Box) -> np.ndarray:
        assert box.lo[0] == box.hi[0] == z
        return image[:, box.lo[1]:box.hi[1] + 1, box.lo[2]:box.hi[2] + 1].copy()

    empty = np.zeros((1, 512, 512), dtype=bool)
    first = Marks(fg=np.array([[z, y, x]]))

    def first_click() -> MethodResult:
        return segment(read_image, lambda box: empty[_crop(box, z)], shape, SPACING, first,
                       plane, GraphCutParams(), None, SegmentContext(kind="click"))

    head = first_click()
    mask = np.zeros((1, 512, 512), dtype=bool)
    mask[_crop(head.roi, z)] = head.mask
    nz = np.nonzero(mask[0])
    bbox = Box((z, int(nz[0].min()), int(nz[1].min())), (z, int(nz[0].max()), int(nz[1].max())))
    stored = (head.roi, np.asarray(head.probability, np.float16).astype(np.float32))
    refine = Marks(fg=np.array([[z, y, x]]), bg=np.array([[z, y, x + 40]]))
    context = SegmentContext(kind="click", head_probability=lambda: stored)

    def refinement_click() -> MethodResult:
        return segment(read_image, lambda box: mask[_crop(box, z)], shape, SPACING, refine,
                       plane, GraphCutParams(), bbox, context)

    return {"2D click (first, ROI 151x151)": first_click,
            "2D refinement click (bg inside the mask)": refinement_click}


def _crop(box: Box, z: int) -> tuple[slice, ...]:
    return (slice(0, 1), slice(box.lo[1], box.hi[1] + 1), slice(box.lo[2], box.hi[2] + 1))


def digest(result: MethodResult) -> str:
    """The mask and its ROI, hashed: equal digests, equal masks."""
    h = hashlib.blake2b(digest_size=8)
    h.update(repr((result.roi.lo, result.roi.hi, result.mask.shape)).encode())
    h.update(np.packbits(np.asarray(result.mask, dtype=bool)).tobytes())
    return h.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    keep_freed_memory()  # glibc's thresholds as the server's compute processes set them
    cases = clicks()
    print("| click | n | p50 ms | p95 ms | mean ms | stages p50 ms | mask digest |")
    print("|---|---|---|---|---|---|---|")
    for name, call in cases.items():
        for _ in range(5):  # warm-up: numba, allocator
            result = call()
        seconds: list[float] = []
        stages: dict[str, list[float]] = {}
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = call()
            seconds.append(time.perf_counter() - start)
            for key, value in result.timings.items():
                stages.setdefault(key, []).append(value)
        ms = 1000 * np.asarray(seconds)
        parts = " / ".join(f"{k} {1000 * float(np.median(v)):.2f}" for k, v in stages.items())
        print(f"| {name} | {args.repeats} | {np.median(ms):.2f} | {np.percentile(ms, 95):.2f} "
              f"| {ms.mean():.2f} | {parts} | {digest(result)} |")


if __name__ == "__main__":
    main()
