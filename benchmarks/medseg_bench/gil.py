"""Which of the engine's compiled parts release the GIL (docs/benchmarks.md, "slicewise first
click: worker threads and per-slice waste"): each call runs on two threads at once, and the
process's CPU seconds over the wall seconds say whether both ran (~2) or the GIL serialised
them (~1). A ratio, not a speed: it reads the same on a loaded machine as long as a core is
free now and then (the best of `--rounds` is printed beside the median).

    OMP_NUM_THREADS=1 python -m medseg_bench.gil
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage

from medseg.algorithms.geodesic import geodesic_fields
from medseg.algorithms.graphcut import graph_cut
from medseg.algorithms.resample import resize_linear
from medseg.engine import bifseg_method
from medseg.models.loader import default_loader

SPACING_3D = (1.875, 0.9375, 0.9375)  # mm: the latency benchmark's 65x129x129 click volume


def calls() -> dict[str, tuple[Callable[[], object], int]]:
    """name -> (one call, calls per thread per round) on inputs the size a first click has."""
    rng = np.random.default_rng(0)
    loader = default_loader()
    propnet = loader.load(loader.find("propagation", 2)).session
    pnet = bifseg_method.load_network(2).session
    x2 = rng.normal(size=(1, 2, 96, 96)).astype(np.float32)
    x1 = rng.normal(size=(1, 1, 96, 96)).astype(np.float32)
    volume = rng.random((25, 97, 73)).astype(np.float32)
    seed = np.zeros(volume.shape, bool)
    seed[12, 48, 36] = True
    image2, unary2 = rng.random((100, 100)).astype(np.float32), rng.random((100, 100))
    unary3 = rng.random(volume.shape).astype(np.float32)
    crop = rng.random((140, 140)).astype(np.float32)
    mask = rng.random((100, 100)) > 0.5
    return {
        "onnxruntime run, propagation network (1, 2, 96, 96)":
            (lambda: propnet.run(None, {"input": x2}), 60),
        "onnxruntime run, P-Net (1, 1, 96, 96)":
            (lambda: pnet.run(None, {pnet.get_inputs()[0].name: x1}), 60),
        "geodesic_fields 3D 25x97x73 (numba)":
            (lambda: geodesic_fields(volume, [seed], SPACING_3D, [1.0]), 6),
        "graph_cut 2D 100x100 (PyMaxflow)":
            (lambda: graph_cut(unary2.astype(np.float32), image2, [1.0, 1.0], None, None,
                               2.0, 0.1), 60),
        "graph_cut 3D 25x97x73 (PyMaxflow)":
            (lambda: graph_cut(unary3, volume, list(SPACING_3D), None, None, 2.0, 0.1), 6),
        "resize_linear 140x140 -> 96x96 (scipy.ndimage)":
            (lambda: resize_linear(crop, (96, 96)), 60),
        "np.percentile 1, 99 of 140x140": (lambda: np.percentile(crop, [1, 99]), 60),
        "ndimage.label + binary_dilation 100x100":
            (lambda: (ndimage.label(mask), ndimage.binary_dilation(mask, iterations=2)), 60),
    }


def _repeat(call: Callable[[], object], count: int) -> None:
    for _ in range(count):
        call()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pool = ThreadPoolExecutor(2)
    print("| call | CPU / wall, 2 threads: median | best |\n|---|---|---|")
    for name, (call, count) in calls().items():
        call()  # first-call costs (session warm-up, numba load) are not what is measured
        ratios = []
        for _ in range(args.rounds):
            wall, cpu = time.perf_counter(), time.process_time()
            list(pool.map(_repeat, [call, call], [count, count]))
            ratios.append((time.process_time() - cpu) / (time.perf_counter() - wall))
        print(f"| {name} | {np.median(ratios):.2f} | {max(ratios):.2f} |", flush=True)


if __name__ == "__main__":
    main()
