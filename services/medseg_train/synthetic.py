"""Synthetic CT/MR-like images with organ-like objects, so that training has volume.

Each case is a body (an ellipse/ellipsoid of soft tissue in air) holding 3-7 objects: smooth
irregular shapes (an ellipsoid distorted by a smooth random field), some with an intensity
close to their neighbour's (weak boundaries), textured, blurred at the edges, with noise and
(mostly for MR) a multiplicative bias field. Arrays are (Z, Y, X); a 2D case has Z == 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class SyntheticCase:
    image: np.ndarray  # float32 (Z, Y, X): HU-like for "ct", arbitrary positive units for "mr"
    labels: np.ndarray  # int16 (Z, Y, X), objects 1..K, 0 = body or air
    modality: str


def smooth_field(rng: np.random.Generator, shape, sigma) -> np.ndarray:
    """Zero-mean, unit-std Gaussian-smoothed white noise (sigma in voxels, per axis).

    Wide fields are drawn on a grid `f` times coarser (f ~ sigma / 2) and interpolated up:
    the same smoothness at 1/f^3 of the filtering cost, which made 3D cases 5x cheaper."""
    shape = tuple(int(n) for n in shape)
    sigma = np.broadcast_to(np.asarray(sigma, dtype=float), (len(shape),))
    factor = max(1, int(min([s for s in sigma if s > 0], default=0) // 2))
    coarse = tuple(-(-n // factor) if s > 0 else n for n, s in zip(shape, sigma))
    field = ndimage.gaussian_filter(rng.standard_normal(coarse).astype(np.float32),
                                    [s / factor if s > 0 else 0 for s in sigma])
    if coarse != shape:
        field = ndimage.zoom(field, [n / c for n, c in zip(shape, coarse)], order=1)
        field = field[tuple(slice(0, n) for n in shape)]
    return (field - field.mean()) / max(float(field.std()), 1e-6)


def _grid(shape) -> tuple[np.ndarray, ...]:
    return np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")


def _blob(rng, shape, centre, radii, roughness: float) -> np.ndarray:
    """An ellipsoid (radii per axis, voxels) whose level set is bent by a smooth random field."""
    grid = _grid(shape)
    dist = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii))
    sigma = [max(0.35 * r, 0.5) if n > 1 else 0 for r, n in zip(radii, shape)]
    return dist + roughness * smooth_field(rng, shape, sigma) < 1.0


def _intensities(rng, modality: str, count: int, background: float) -> np.ndarray:
    """Object intensities; about a third sit within a small contrast of another object or the
    background, which makes the weak boundaries interactive segmentation must cope with."""
    if modality == "ct":
        values = rng.uniform(-60, 260, size=count)
        near = rng.uniform(8, 35, size=count) * rng.choice([-1, 1], size=count)
    else:
        values = rng.uniform(150, 1100, size=count)
        near = rng.uniform(0.04, 0.15, size=count) * values * rng.choice([-1, 1], size=count)
    for k in range(count):
        if rng.random() < 0.35:
            anchor = background if k == 0 or rng.random() < 0.4 else values[rng.integers(k)]
            values[k] = anchor + near[k]
    return values


def synthetic_case(rng: np.random.Generator, shape=(1, 128, 128), modality: str | None = None,
                   objects: tuple[int, int] = (3, 7)) -> SyntheticCase:
    """One random case of `shape` (Z, Y, X); 2D when Z == 1."""
    modality = modality or rng.choice(["ct", "mr"])
    shape = tuple(int(n) for n in shape)
    size = np.array(shape, dtype=float)
    is_3d = shape[0] > 1
    body_radii = size / 2 * rng.uniform(0.8, 0.98, size=3)
    body = _blob(rng, shape, (size - 1) / 2, np.where(size > 1, body_radii, 1.0), 0.05)
    air, tissue = ((-1000.0, rng.uniform(-120, 60)) if modality == "ct"
                   else (0.0, rng.uniform(80, 400)))
    count = int(rng.integers(*objects))
    values = _intensities(rng, modality, count, tissue)
    labels = np.zeros(shape, dtype=np.int16)
    for k in range(count):
        radii = size * rng.uniform(0.07, 0.28, size=3) * np.array([0.9 if is_3d else 1, 1, 1])
        radii = np.where(size > 1, radii, 1.0)
        centre = (size - 1) / 2 + rng.uniform(-0.3, 0.3, size=3) * size * (size > 1)
        blob = _blob(rng, shape, centre, radii, rng.uniform(0.2, 0.9)) & body
        labels[blob] = k + 1  # later objects cover earlier ones: shared, touching boundaries
    image = np.where(body, tissue, air).astype(np.float32)
    for k in range(count):
        image[labels == k + 1] = values[k]
    spread = 0.08 * abs(tissue) + (12 if modality == "ct" else 0.05 * tissue)
    texture = smooth_field(rng, shape, [1.5 if n > 1 else 0 for n in shape])
    image += body * texture * rng.uniform(0.3, 1.0) * spread
    image = ndimage.gaussian_filter(image, [rng.uniform(0.3, 1.4) if n > 1 else 0 for n in shape])
    if modality == "mr" or rng.random() < 0.2:
        coarse = [n / 3 if n > 1 else 0 for n in shape]
        image *= np.exp(rng.uniform(0.05, 0.35) * smooth_field(rng, shape, coarse))
    noise = rng.uniform(4, 25) if modality == "ct" else rng.uniform(0.01, 0.06) * tissue
    image += rng.standard_normal(shape).astype(np.float32) * noise
    return SyntheticCase(image.astype(np.float32), labels, str(modality))
