"""What the MIDeepSeg networks take and give (Luo et al. 2021, sec. 2.1-2.3 and 2.5).

The interior margin points define a relaxed bounding box; the image inside it is resized to the
network's input size, z-scored by the crop's own mean and std, and stacked with the cue map of
the points computed on that resized grid. The network's foreground probability is resized back
to the box. Training (medseg_train) and inference (medseg.engine) both call these functions,
so the network sees identical inputs in both.

Arrays are (Y, X) for 2D or (Z, Y, X) for 3D, in voxels; points are (N, ndim) int voxel indices
in the same axis order.
"""

from __future__ import annotations

import numpy as np

from medseg.algorithms.encodings import encode
from medseg.algorithms.resample import resize_linear

# The relaxed box grows by this fraction of the points' extent plus this many voxels per side:
# the simulated points sit up to ~5 % of the extent + 3 voxels inside the boundary, so the box
# covers the object with some background around it (paper: "relaxed by several pixels").
MARGIN_FRACTION = 0.1
MARGIN_VOXELS = 4


def relaxed_box(points: np.ndarray, shape, margin_fraction: float = MARGIN_FRACTION,
                margin_voxels: int = MARGIN_VOXELS) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) inclusive int voxel corners of the points' bounding box, relaxed and clipped to
    `shape`. Axes of length 1 stay a single voxel."""
    points = np.asarray(points).reshape(-1, len(shape))
    if len(points) == 0:
        raise ValueError("a relaxed box needs at least one point")
    lo, hi = points.min(axis=0), points.max(axis=0)
    margin = np.ceil(margin_fraction * (hi - lo + 1)).astype(int) + margin_voxels
    lo = np.maximum(lo - margin, 0)
    hi = np.minimum(hi + margin, np.asarray(shape) - 1)
    return lo.astype(int), hi.astype(int)


def zscore(crop: np.ndarray) -> np.ndarray:
    crop = np.asarray(crop, dtype=np.float32)
    return ((crop - crop.mean()) / max(float(crop.std()), 1e-6)).astype(np.float32)


def to_grid(points: np.ndarray, crop_shape, size) -> np.ndarray:
    """Crop-local voxel points -> indices on the resized grid (corner-aligned, as resize_linear)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, len(size))
    scale = np.array([(s - 1) / max(c - 1, 1) for c, s in zip(crop_shape, size)])
    return np.clip(np.rint(points * scale), 0, np.asarray(size) - 1).astype(int)


def network_input(crop: np.ndarray, points: np.ndarray, size, encoding: str = "egd") -> np.ndarray:
    """(2, *size) float32: the z-scored resized crop and the cue map of the crop-local points."""
    image = zscore(resize_linear(crop, size))
    seeds = np.zeros(image.shape, dtype=bool)
    seeds[tuple(to_grid(points, crop.shape, size).T)] = True
    return np.stack([image, encode(encoding, image, seeds)]).astype(np.float32)


def probability_in_crop(probability: np.ndarray, crop_shape) -> np.ndarray:
    """The network's foreground probability (size) resized back to the crop, float32 in [0, 1]."""
    prob = resize_linear(probability, crop_shape, antialias=False)
    return np.clip(prob, 0.0, 1.0)
