"""Intensity normalisation of a region of interest to [0, 1].

BIFSeg's pairwise term exp(-(X(i)-X(j))^2 / (2 sigma^2)) uses sigma = 0.1 on normalised
intensities; mapping robust ROI percentiles to [0, 1] makes that sigma mean the same for CT
(HU), MR (arbitrary units) and photos.
"""

from __future__ import annotations

import numpy as np


def normalize_percentiles(image: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """`image` (any shape) mapped linearly so its `low`..`high` percentiles become 0..1, clipped.

    Percentiles are computed over the array given (the ROI), not the whole volume, so the
    contrast adapts to the tissues around the object. A constant image maps to all zeros.
    Returns float32, same shape, C-contiguous.
    """
    data = np.asarray(image, dtype=np.float32)
    if data.size == 0:
        return np.ascontiguousarray(data)
    lo, hi = np.percentile(data, [low, high])
    if not np.isfinite(lo) or not np.isfinite(hi) or hi - lo <= 1e-12:
        return np.zeros(data.shape, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is handled below
        out = (data - np.float32(lo)) / np.float32(hi - lo)
    if not np.isfinite(out).all():
        # intensities near float32's limits (+-3e38): the differences overflowed to inf and
        # inf / inf is NaN, which no clip removes (and a NaN freezes the graph cut); float64
        # holds them
        out = (data.astype(np.float64) - float(lo)) / (float(hi) - float(lo))
    return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32)
