"""2x-style in-plane resampling for coarse-to-fine work on big regions of interest.

Arrays are (Y, X) or (Z, Y, X); only the last two (in-plane) axes are resampled, because
through-plane spacing is usually already the coarsest. A coarse voxel i covers fine voxels
factor*i .. factor*i + factor - 1, so its centre sits at fine coordinate factor*i + (factor-1)/2.
"""

from __future__ import annotations

import numpy as np


def block_mean(a: np.ndarray, factor: int) -> np.ndarray:
    """float32 mean over factor x factor blocks of the last two axes; the array is edge-padded
    to a multiple of `factor` first, so the coarse shape is ceil(shape / factor)."""
    pad = [(0, 0)] * (a.ndim - 2) + [(0, -n % factor) for n in a.shape[-2:]]
    a = np.pad(np.asarray(a, dtype=np.float32), pad, mode="edge")
    *lead, ny, nx = a.shape
    return a.reshape(*lead, ny // factor, factor, nx // factor, factor).mean(axis=(-3, -1))


def upsample_nearest(a: np.ndarray, factor: int, shape) -> np.ndarray:
    """Inverse of block_mean by repetition, cropped to the fine `shape`."""
    a = np.repeat(np.repeat(a, factor, axis=-2), factor, axis=-1)
    return a[tuple(slice(0, n) for n in shape)]


def upsample_linear2(a: np.ndarray, shape) -> np.ndarray:
    """Linear interpolation of a factor-2 block_mean grid back to the fine `shape` (last two
    axes), clamped at the edges: fine 2i sits a quarter coarse voxel before coarse i, 2i+1 a
    quarter after (separable, no scipy zoom: 3x cheaper on a 1.8 M voxel ROI)."""
    out = np.asarray(a, dtype=np.float32)
    for axis in (-2, -1):
        prev = np.concatenate([np.take(out, [0], axis=axis), np.take(out, range(out.shape[axis] - 1), axis=axis)], axis=axis)
        nxt = np.concatenate([np.take(out, range(1, out.shape[axis]), axis=axis), np.take(out, [-1], axis=axis)], axis=axis)
        even, odd = 0.75 * out + 0.25 * prev, 0.75 * out + 0.25 * nxt
        out = np.stack([even, odd], axis=axis).reshape(*out.shape[:axis % out.ndim], -1, *out.shape[axis % out.ndim + 1:])
    return np.ascontiguousarray(out[tuple(slice(0, n) for n in shape)])
