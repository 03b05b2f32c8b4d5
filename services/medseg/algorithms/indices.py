"""np.nonzero and np.argwhere of a boolean image, from its flat indices.

Why: NumPy's nonzero of an N-d array tracks a multi-index for every element it scans (~100 us
on a 260x255 refinement ROI with one True voxel), while `flatnonzero` scans the flat buffer
(~5 us) and `unravel_index` only converts the hits; a 2D refinement click called it five times
on its whole ROI (docs/benchmarks.md, "2D click: the engine's compute"). The same arrays, in
the same (C) order and dtype (intp).
"""

from __future__ import annotations

import numpy as np


def nonzero(a: np.ndarray) -> tuple[np.ndarray, ...]:
    """np.nonzero(a): one index array per axis."""
    a = np.asarray(a)
    return np.unravel_index(np.flatnonzero(a), a.shape)


def argwhere(a: np.ndarray) -> np.ndarray:
    """np.argwhere(a): (N, a.ndim) indices of the True (nonzero) elements, in C order."""
    a = np.asarray(a)
    if a.ndim == 0:
        return np.argwhere(a)
    return np.stack(nonzero(a), axis=-1)
