"""A simulated user: the next click goes to the centre of the largest error region.

Used by the click benchmark (medseg_bench.clicks), the engine tests and the API tests (2D
callers pass one-slice (1, Y, X) arrays).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def robot_click(pred: np.ndarray, ref: np.ndarray, spacing=None) -> tuple[tuple[int, ...], bool]:
    """(voxel index, foreground?) of the next corrective click.

    pred, ref: bool arrays of the same shape (any ndim, e.g. (Z, Y, X)). The error regions are
    the connected components of the misses (ref & ~pred, a foreground click) and of the extras
    (pred & ~ref, a background click); the largest one wins (ties: misses first). The click is
    the voxel of maximum distance to the region's border (Euclidean distance transform, in mm
    when `spacing` is given), so it lies inside the region, as far from its edges as possible.
    """
    pred, ref = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape:
        raise ValueError(f"pred {pred.shape} and ref {ref.shape} differ")
    best = None
    for error, foreground in ((ref & ~pred, True), (pred & ~ref, False)):
        labels, count = ndimage.label(error)
        if count == 0:
            continue
        sizes = np.bincount(labels.ravel())[1:]
        largest = int(np.argmax(sizes)) + 1
        if best is None or sizes[largest - 1] > best[0]:
            best = (sizes[largest - 1], labels == largest, foreground)
    if best is None:
        raise ValueError("prediction equals the reference: nothing to click")
    _, region, foreground = best
    # pad so the image border counts as region border too; not along singleton axes (a 2D
    # slice passed as (1, Y, X)), where padding would make every voxel 1 from the border
    pad = [(1, 1) if n > 1 else (0, 0) for n in region.shape]
    edt = ndimage.distance_transform_edt(np.pad(region, pad), sampling=spacing)
    edt = edt[tuple(slice(a, a + n) for (a, _), n in zip(pad, region.shape))]
    index = np.unravel_index(int(np.argmax(edt)), region.shape)
    return tuple(int(v) for v in index), foreground
