"""Spatial and intensity augmentation of an (image, mask) pair, 2D (Y, X) or 3D (Z, Y, X).

Rotation is in-plane (about the first axis in 3D) because through-plane spacing usually
differs; scaling is anisotropic; intensity augmentation changes contrast non-linearly (gamma),
sometimes inverts it (the paper's "flipping in intensity"), and adds noise. Brightness and
linear contrast are not varied: the networks z-score their crops, which removes them.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def flip(image: np.ndarray, mask: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    for axis in range(image.ndim):
        if rng.random() < 0.5:
            image, mask = np.flip(image, axis), np.flip(mask, axis)
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def flipped_slice(image: np.ndarray, mask: np.ndarray, rng, min_area: int
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """A random (Y, X) slice of a (Z, Y, X) object where it covers >= `min_area` voxels,
    randomly flipped: (image float32, mask bool); None when no slice is that large."""
    slices = np.flatnonzero(mask.sum(axis=(1, 2)) >= min_area)
    if len(slices) == 0:
        return None
    t = int(rng.choice(slices))
    img, gt = flip(image[t].astype(np.float32), mask[t], rng)
    return img, np.asarray(gt, dtype=bool)


def rotate(image: np.ndarray, mask: np.ndarray, rng, max_degrees: float = 30.0):
    angle = rng.uniform(-max_degrees, max_degrees)
    axes = (-2, -1)
    image = ndimage.rotate(image, angle, axes=axes, reshape=False, order=1, mode="nearest")
    mask = ndimage.rotate(mask.astype(np.uint8), angle, axes=axes, reshape=False, order=0) > 0
    return image.astype(np.float32), mask


def zoom(image: np.ndarray, mask: np.ndarray, rng, low: float = 0.8, high: float = 1.25):
    """Anisotropic in-plane scaling (the first axis too in 3D, more gently)."""
    factors = rng.uniform(low, high, size=image.ndim)
    if image.ndim == 3:
        factors[0] = rng.uniform(0.9, 1.1)
    image = ndimage.zoom(image, factors, order=1, mode="nearest")
    mask = ndimage.zoom(mask.astype(np.uint8), factors, order=0) > 0
    return image.astype(np.float32), mask


def intensity(image: np.ndarray, rng, invert_probability: float = 0.2) -> np.ndarray:
    lo, hi = np.percentile(image, [0.5, 99.5])
    unit = np.clip((image - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    unit = unit ** rng.uniform(0.6, 1.6)
    if rng.random() < invert_probability:
        unit = 1.0 - unit
    unit = unit + rng.standard_normal(unit.shape).astype(np.float32) * rng.uniform(0.0, 0.04)
    return unit.astype(np.float32)


def spatial(image: np.ndarray, mask: np.ndarray, rng, max_degrees: float = 30.0):
    image, mask = flip(image, mask, rng)
    if rng.random() < 0.7:
        image, mask = rotate(image, mask, rng, max_degrees)
    if rng.random() < 0.7:
        image, mask = zoom(image, mask, rng)
    return image, mask
