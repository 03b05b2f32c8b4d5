"""What the empty-region check of scribbles and boxes costs (engine/empty_region.py), on the
shared skull-stripped brain MR held in memory: marks on tissue end at the first noisy 3 x 3
neighbourhood; marks wholly on padding read each slice they touch (or the box) once.

    OMP_NUM_THREADS=1 python -m medseg_bench.empty_marks   # from the repository root
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.engine.empty_region import all_on_empty_region, box_on_empty_region
from medseg.engine.prompts import Box, rasterize_polyline

DATA = Path(os.environ.get("MEDSEG_SHARED_DATA", "../shared/data"))
REPEATS = 200


def main() -> None:
    path = DATA / "voxelmorph_testscan" / "test_scan_t1_image.nii.gz"
    image = np.asarray(nib.Nifti1Image.from_filename(path).dataobj, np.float32).transpose(2, 1, 0)
    read = lambda b: image[b.lo[0]:b.hi[0] + 1, b.lo[1]:b.hi[1] + 1, b.lo[2]:b.hi[2] + 1]
    line = lambda *points: rasterize_polyline(np.array(points))
    cases: dict[str, Callable[[], bool]] = {
        "2D scribble on tissue": lambda: all_on_empty_region(
            read, image.shape, line([112, 96, 40], [112, 96, 120]), 0),
        "2D scribble on padding": lambda: all_on_empty_region(
            read, image.shape, line([112, 170, 20], [112, 170, 140]), 0),
        "3D scribble on padding (21 slices)": lambda: all_on_empty_region(
            read, image.shape, line([100, 170, 20], [120, 175, 140]), 0),
        "2D box on tissue": lambda: box_on_empty_region(
            read, image.shape, Box((112, 40, 40), (112, 140, 120)), 0),
        "3D box on padding": lambda: box_on_empty_region(
            read, image.shape, Box((100, 160, 20), (120, 185, 140)), 0),
    }
    print("| marks | empty | ms |\n|---|---|---|")
    for name, check in cases.items():
        empty = check()
        start = time.perf_counter()
        for _ in range(REPEATS):
            check()
        ms = (time.perf_counter() - start) / REPEATS * 1e3
        print(f"| {name} | {empty} | {ms:.3f} |")


if __name__ == "__main__":
    main()
