"""Resampling: 2x in-plane steps for coarse-to-fine work on big regions of interest, and
linear resizing to a network's input size (`resize_linear`).

Arrays are (Y, X) or (Z, Y, X); only the last two (in-plane) axes are resampled, because
through-plane spacing is usually already the coarsest. A coarse voxel i covers fine voxels
factor*i .. factor*i + factor - 1, so its centre sits at fine coordinate factor*i + (factor-1)/2.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def block_mean(a: np.ndarray, factor: int) -> np.ndarray:
    """float32 mean over factor x factor blocks of the last two axes; the array is edge-padded
    to a multiple of `factor` first, so the coarse shape is ceil(shape / factor)."""
    pad = [(0, 0)] * (a.ndim - 2) + [(0, -n % factor) for n in a.shape[-2:]]
    a = np.pad(np.asarray(a, dtype=np.float32), pad, mode="edge")
    # a sum of factor^2 strided views: numpy's mean over two non-adjacent axes of the
    # reshaped array costs ~10x more (it was 10 % of a 3D refinement click)
    total = np.zeros(a.shape[:-2] + (a.shape[-2] // factor, a.shape[-1] // factor), np.float32)
    for i in range(factor):
        for j in range(factor):
            total += a[..., i::factor, j::factor]
    return total * np.float32(1.0 / (factor * factor))


def block_any(a: np.ndarray, factor: int) -> np.ndarray:
    """bool: whether any voxel of each factor x factor block of the last two axes is set,
    with block_mean's edge padding (so block_mean(a, factor) > 0 for a bool `a`, without its
    float sums)."""
    pad = [(0, 0)] * (a.ndim - 2) + [(0, -n % factor) for n in a.shape[-2:]]
    a = np.pad(np.asarray(a, dtype=bool), pad, mode="edge")
    out = np.zeros(a.shape[:-2] + (a.shape[-2] // factor, a.shape[-1] // factor), bool)
    for i in range(factor):
        for j in range(factor):
            out |= a[..., i::factor, j::factor]
    return out


def upsample_nearest(a: np.ndarray, factor: int, shape) -> np.ndarray:
    """Inverse of block_mean by repetition, cropped to the fine `shape`."""
    a = np.repeat(np.repeat(a, factor, axis=-2), factor, axis=-1)
    return a[tuple(slice(0, n) for n in shape)]


def upsample_linear2(a: np.ndarray, shape) -> np.ndarray:
    """Linear interpolation of a factor-2 block_mean grid back to the fine `shape` (last two
    axes), clamped at the edges: fine 2i sits a quarter coarse voxel before coarse i, 2i+1 a
    quarter after (separable, no scipy zoom: 3x cheaper on a 1.8 M voxel ROI). Each output
    half is written in place (no shifted copies, no stacking: a third of a 3D click's scan
    overhead)."""
    out: np.ndarray = np.asarray(a, dtype=np.float32)
    for axis in (-2, -1):
        k = axis % out.ndim
        n = out.shape[k]

        def at(part: slice, ndim: int = out.ndim, k: int = k) -> tuple[slice, ...]:
            index = [slice(None)] * ndim
            index[k] = part
            return tuple(index)

        fine = np.empty(out.shape[:k] + (2 * n,) + out.shape[k + 1:], dtype=np.float32)
        even, odd = fine[at(slice(0, None, 2))], fine[at(slice(1, None, 2))]
        # even = 0.75 * out + 0.25 * previous, odd = 0.75 * out + 0.25 * next, edges clamped
        even[at(slice(1, None))] = 0.75 * out[at(slice(1, None))] + 0.25 * out[at(slice(None, -1))]
        even[at(slice(0, 1))] = 0.75 * out[at(slice(0, 1))] + 0.25 * out[at(slice(0, 1))]
        odd[at(slice(None, -1))] = 0.75 * out[at(slice(None, -1))] + 0.25 * out[at(slice(1, None))]
        odd[at(slice(-1, None))] = 0.75 * out[at(slice(-1, None))] + 0.25 * out[at(slice(-1, None))]
        out = fine
    return np.ascontiguousarray(out[tuple(slice(0, n) for n in shape)])


def resize_linear(a: np.ndarray, shape, antialias: bool = True) -> np.ndarray:
    """float32 `a` ((Y, X) or (Z, Y, X)) resampled to `shape` by linear interpolation on a
    grid whose corner voxels map onto each other (align-corners), edge values clamped.

    antialias: along axes that shrink by a factor f > 1, Gaussian-smooth first with
    sigma = (f - 1) / 2 (scikit-image's choice), so noise is averaged, not aliased, when a
    large organ's crop is reduced to a network's input size."""
    a = np.asarray(a, dtype=np.float32)
    shape = tuple(int(n) for n in shape)
    if len(shape) != a.ndim:
        raise ValueError(f"shape {shape} needs {a.ndim} values")
    if antialias:
        sigma = [max((n_in / n_out - 1.0) / 2.0, 0.0) for n_in, n_out in zip(a.shape, shape)]
        if any(s > 0 for s in sigma):
            a = ndimage.gaussian_filter(a, sigma, mode="nearest")
    if a.shape == shape:
        return np.ascontiguousarray(a)
    axes = [np.linspace(0.0, n_in - 1.0, n_out) if n_out > 1 else np.array([(n_in - 1) / 2.0])
            for n_in, n_out in zip(a.shape, shape)]
    grid = np.meshgrid(*axes, indexing="ij")
    return ndimage.map_coordinates(a, grid, order=1, mode="nearest").astype(np.float32)
