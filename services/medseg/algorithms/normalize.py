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
    raw = np.asarray(image)
    data = np.asarray(raw, dtype=np.float32)
    if data.size == 0:
        return np.ascontiguousarray(data)
    if raw.dtype.kind in "iu" and raw.dtype.itemsize <= 2:  # a stored image's voxels
        lo, hi = _integer_percentiles(raw, [low, high])
    else:
        lo, hi = np.percentile(data, [low, high])
    if not np.isfinite(lo) or not np.isfinite(hi) or hi - lo <= 1e-12:
        return np.zeros(data.shape, dtype=np.float32)
    if data is not raw and raw.dtype.kind in "iub":
        # integers (a stored image's voxels): `data` is this call's own float32 copy, so the
        # same operations run in place on it, no temporaries (docs/benchmarks.md, "2D click:
        # the engine's compute"); float32 holds any integer's (data - lo) / (hi - lo) finite
        np.subtract(data, np.float32(lo), out=data)
        np.divide(data, np.float32(hi - lo), out=data)
        return np.ascontiguousarray(np.clip(data, 0.0, 1.0, out=data))
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is handled below
        out = (data - np.float32(lo)) / np.float32(hi - lo)
    if not np.isfinite(out).all():
        # intensities near float32's limits (+-3e38): the differences overflowed to inf and
        # inf / inf is NaN, which no clip removes (and a NaN freezes the graph cut); float64
        # holds them
        out = (data.astype(np.float64) - float(lo)) / (float(hi) - float(lo))
    return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32)


def _integer_percentiles(values: np.ndarray, q: list[float]) -> np.ndarray:
    """np.percentile(values.astype(float32), q) ("linear" method), bit for bit, for integers of
    at most 16 bits: the order statistics come from a histogram (one counting pass) instead of
    a partition of a float copy (~3x the time on a 3D region of interest), then numpy's own
    interpolation arithmetic (its _lerp) on them, in the same dtypes."""
    flat = values.reshape(-1)
    low = int(flat.min())
    counts = np.bincount((flat.astype(np.int32) - low).astype(np.intp))
    ends = np.cumsum(counts)  # ends[v] = number of values <= low + v
    n = flat.size
    virtual = (n - 1) * (np.asarray(q, dtype=np.float64) / 100)
    previous = np.floor(virtual)
    following = np.minimum(previous + 1, n - 1)
    gamma = virtual - previous
    rank = np.concatenate([previous, following]).astype(np.intp)
    stats = (np.searchsorted(ends, rank, side="right") + low).astype(np.float32)
    a, b = stats[: len(q)], stats[len(q):]
    diff = b - a
    out = a + diff * gamma
    np.subtract(b, diff * (1 - gamma), out=out, where=gamma >= 0.5)
    return out


def median_spread(values: np.ndarray) -> tuple[float, float]:
    """(median, 1.4826 x MAD) of `values`: the centre and the std-equivalent spread of the
    tissue that fills most of a region, which the tissue filling the rest (fat in a kidney's
    sinus, a lesion's necrotic core) does not widen as it widens the std."""
    median = float(np.median(values))
    return median, 1.4826 * float(np.median(np.abs(values - median)))
