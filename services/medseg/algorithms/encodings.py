"""Cue maps that encode user clicks for a network (MIDeepSeg, Luo et al. 2021, sec. 2.2).

All maps are float32 in [0, 1], same shape as `image` ((Y, X) or (Z, Y, X)); `seeds` is a bool
array of the clicked voxels. Distances are in voxels of the array given (the networks see a
crop resized to a fixed size, so the cue is computed on that grid, at training and test time).

- "egd": exponentialized geodesic distance, eq. 1-2: EGD(i) = min_j exp(-D_geo(i, j)) =
  exp(-D_geo(i, S)), D_geo the path integral of |grad I| (GeodisTK, lamb = 1) over `image`,
  which should be normalised (z-scored crop). 1 at a click, parameter-free.
- "geodesic": D_geo rescaled to [0, 1] by its maximum and truncated at `threshold`, divided by
  it (DeepIGeoS-style; 0 at a click, 1 from `threshold` on).
- "euclidean": the same with the Euclidean distance (DIOS-style).
- "gaussian": max over clicks of exp(-d^2 / (2 sigma^2)), d Euclidean in voxels (DEXTR-style;
  1 at a click).
The thresholds / sigma default to the paper's optima (appendix, tables 9-11: 0.4 for CT spleen,
sigma 9 px).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from medseg.algorithms.geodesic import geodesic_distance

ENCODINGS = ("egd", "geodesic", "euclidean", "gaussian")


def intensity_geodesic(image: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """D_geo(i, S) of eq. 2 on a unit voxel grid: min over paths of the sum of |I(p) - I(q)| per
    step (GeodisTK lamb = 1 counts step_length x (|dI| + 1e-5), so a homogeneous path of n
    voxels costs ~1e-5 n, i.e. ~0). float32, same shape as `image`."""
    image = np.asarray(image, dtype=np.float32)
    return geodesic_distance(image, seeds, (1.0,) * image.ndim, lamb=1.0)


def egd(image: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Exponentialized geodesic distance (eq. 1): 1 at a seed, decreasing with D_geo."""
    return np.exp(-intensity_geodesic(image, seeds)).astype(np.float32)


def _truncated(distance: np.ndarray, threshold: float) -> np.ndarray:
    top = float(distance.max())
    scaled = distance / top if top > 0 else np.zeros_like(distance)
    return (np.minimum(scaled, threshold) / threshold).astype(np.float32)


def geodesic(image: np.ndarray, seeds: np.ndarray, threshold: float = 0.4) -> np.ndarray:
    return _truncated(intensity_geodesic(image, seeds), threshold)


def euclidean(image: np.ndarray, seeds: np.ndarray, threshold: float = 0.4) -> np.ndarray:
    distance = ndimage.distance_transform_edt(~np.asarray(seeds, dtype=bool)).astype(np.float32)
    return _truncated(distance, threshold)


def gaussian(image: np.ndarray, seeds: np.ndarray, sigma: float = 9.0) -> np.ndarray:
    distance = ndimage.distance_transform_edt(~np.asarray(seeds, dtype=bool))
    return np.exp(-(distance * distance) / (2.0 * sigma * sigma)).astype(np.float32)


_ENCODERS: dict[str, Callable[..., np.ndarray]] = {
    "egd": egd, "geodesic": geodesic, "euclidean": euclidean, "gaussian": gaussian,
}


def encode(kind: str, image: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The cue map `kind` (one of ENCODINGS) of `seeds` over `image`; ValueError when the kind
    is unknown or there is no seed."""
    if kind not in _ENCODERS:
        raise ValueError(f"unknown cue encoding {kind!r}; known: {list(ENCODINGS)}")
    seeds = np.asarray(seeds, dtype=bool)
    if seeds.shape != np.shape(image):
        raise ValueError(f"seeds {seeds.shape} and image {np.shape(image)} differ in shape")
    if not seeds.any():
        raise ValueError("a cue map needs at least one clicked voxel")
    return _ENCODERS[kind](image, seeds)
