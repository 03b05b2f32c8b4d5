"""Geodesic distance transform: a thin, validated wrapper around GeodisTK.

GeodisTK's raster scan adds, for each step between neighbours p, q at distance l (mm),
    l / ((1 - lamb) + lamb / (|I(p) - I(q)| + 1e-5)).
So lamb = 0 gives the Euclidean distance in mm; lamb = 1 gives l * (|dI| + 1e-5), i.e. an
intensity-weighted path length ("intensity x mm", near zero inside homogeneous regions); values
in between blend the two harmonically.
"""

from __future__ import annotations

from collections.abc import Sequence

import GeodisTK
import numpy as np


def geodesic_distance(image: np.ndarray, seeds: np.ndarray, spacing: Sequence[float],
                      lamb: float = 1.0, iterations: int = 2) -> np.ndarray:
    """Geodesic distance from `seeds` over `image`.

    image: float (Y, X) or (Z, Y, X), ideally normalised to [0, 1].
    seeds: bool, same shape; distance 0 there. At least one seed is required.
    spacing: (sy, sx) or (sz, sy, sx) in mm, one per axis of `image`.
    lamb: 0 Euclidean (mm) .. 1 purely intensity-weighted (see module doc).
    iterations: raster-scan passes (2 suffices for most shapes).
    Returns float32 of the same shape.
    """
    image = np.asarray(image)
    seeds = np.asarray(seeds)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be 2D or 3D, got shape {image.shape}")
    if seeds.shape != image.shape:
        raise ValueError(f"seeds shape {seeds.shape} differs from image shape {image.shape}")
    if len(spacing) != image.ndim:
        raise ValueError(f"spacing needs {image.ndim} values, got {list(spacing)}")
    if not 0.0 <= lamb <= 1.0:
        raise ValueError(f"lamb must lie in [0, 1], got {lamb}")
    if not seeds.any():
        raise ValueError("geodesic distance needs at least one seed")
    img = np.ascontiguousarray(image, dtype=np.float32)
    seed = np.ascontiguousarray(seeds.astype(bool), dtype=np.uint8)
    if image.ndim == 2:
        sy, sx = (float(s) for s in spacing)
        dist = _geodesic2d(img, seed, sy, sx, lamb, iterations)
    else:
        dist = GeodisTK.geodesic3d_raster_scan(img, seed, [float(s) for s in spacing],
                                               float(lamb), int(iterations))
    return np.asarray(dist, dtype=np.float32)


def _geodesic2d(img: np.ndarray, seed: np.ndarray, sy: float, sx: float,
                lamb: float, iterations: int) -> np.ndarray:
    """2D raster scan through GeodisTK's 3D routine on a one-slice volume: identical values to
    geodesic2d_raster_scan on unit pixels (tested), but it honours anisotropic pixel spacing
    and runs ~5x faster on a 512 x 512 slice (29 ms against 145 ms here)."""
    dist = GeodisTK.geodesic3d_raster_scan(img[None], seed[None], [1.0, sy, sx],
                                           float(lamb), int(iterations))
    return dist[0]


def geodesic_distance_plus_length(image: np.ndarray, seeds: np.ndarray, spacing: Sequence[float],
                                  length_weight: float, iterations: int = 2) -> np.ndarray:
    """min over paths of sum_steps l * (|dI| + length_weight): the intensity-weighted (lamb=1)
    geodesic distance plus `length_weight` x path length in mm, in ONE raster scan.

    GeodisTK's lamb=1 step cost is l * (|dI| + 1e-5); scaling the image by K = 1e-5 /
    length_weight makes it K * l * (|dI| + length_weight), so dividing by K gives the sum
    wanted (exact, not an approximation; tests pin GeodisTK's 1e-5). It halves the cost against
    a geodesic plus a separate Euclidean transform, which matters for a 3D click.
    Shapes and units as `geodesic_distance`; `length_weight` in image units per mm, > 0.
    """
    if not length_weight > 0:
        raise ValueError(f"length_weight must be > 0, got {length_weight}")
    scale = 1e-5 / float(length_weight)
    scaled = np.asarray(image, dtype=np.float64) * scale
    distance = geodesic_distance(scaled.astype(np.float32), seeds, spacing, 1.0, iterations)
    return distance / np.float32(scale)
