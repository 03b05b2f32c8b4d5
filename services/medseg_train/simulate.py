"""Simulated user interactions for training and benchmarks.

Interior margin points (MIDeepSeg sec. 2.1): points on the object's boundary close to its
extreme points (3-4 in 2D, 5-6 in 3D), plus 0-5 random boundary points, each moved a few
voxels inward; the relaxed box of the points must cover the object. Masks are bool (Y, X) or
(Z, Y, X); points are (N, ndim) int voxel indices.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medseg.models.mideepseg_io import relaxed_box


def boundary(mask: np.ndarray) -> np.ndarray:
    """Object voxels with a background neighbour (face-connected), or on the array edge."""
    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def extreme_points(mask: np.ndarray) -> np.ndarray:
    """(2 * ndim, ndim): for each axis, an object voxel with the lowest and the highest index
    on it (the middle one of the ties, so it sits mid-edge)."""
    coords = np.argwhere(mask)
    out = []
    for axis in range(mask.ndim):
        for pick in (coords[:, axis].min(), coords[:, axis].max()):
            ties = coords[coords[:, axis] == pick]
            out.append(ties[len(ties) // 2])
    return np.array(out)


def _near_boundary(edge: np.ndarray, point: np.ndarray, radius: float, rng) -> np.ndarray:
    """A random boundary voxel within `radius` voxels of `point` (the point if none)."""
    near = edge[np.linalg.norm(edge - point, axis=1) <= radius]
    return near[rng.integers(len(near))] if len(near) else point


def _move_inward(points: np.ndarray, mask: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Each point moved `depth` voxels along the gradient of the inside distance map; a point
    whose target leaves the object stays where it is."""
    inside = ndimage.distance_transform_edt(mask)
    gradient = np.gradient(inside) if mask.ndim > 0 else []
    out = []
    for p, d in zip(points, depth):
        g = np.array([gr[tuple(p)] for gr in gradient])
        norm = np.linalg.norm(g)
        q = np.rint(p + d * g / norm).astype(int) if norm > 0 else p
        q = np.clip(q, 0, np.asarray(mask.shape) - 1)
        out.append(q if mask[tuple(q)] else p)
    return np.array(out, dtype=int)


def interior_margin_points(mask: np.ndarray, rng: np.random.Generator,
                           extra: tuple[int, int] = (0, 5), max_depth: float | None = None,
                           ) -> np.ndarray:
    """Simulated interior margin points of `mask` (2D or 3D bool, singleton axes squeezed
    by the caller). extra: range (inclusive) of random boundary points added. max_depth: how
    far inward (voxels) a point may move; default ~4 % of the object's extent + 2, at most a
    third of its thickness. Deterministic for a given rng state."""
    mask = np.asarray(mask, dtype=bool)
    if mask.sum() == 0:
        raise ValueError("cannot simulate points on an empty mask")
    edge = np.argwhere(boundary(mask))
    extremes = extreme_points(mask)
    extent = np.ptp(np.argwhere(mask), axis=0).max() + 1
    jitter = 1.0 + 0.03 * extent
    near = np.array([_near_boundary(edge, p, jitter, rng) for p in extremes])
    # 3 of 4 (2D) or 5 of 6 (3D) when the relaxed box of those still covers the object
    fewer = near[np.sort(rng.permutation(len(near))[: len(near) - 1])]
    lo, hi = relaxed_box(fewer, mask.shape)
    coords = np.argwhere(mask)
    covers = np.all(coords >= lo) and np.all(coords <= hi)
    points = fewer if covers and rng.random() < 0.5 else near
    count = int(rng.integers(extra[0], extra[1] + 1))
    if count:
        points = np.concatenate([points, edge[rng.integers(len(edge), size=count)]])
    thickness = float(ndimage.distance_transform_edt(mask).max())
    if max_depth is None:
        max_depth = min(2.0 + 0.04 * extent, thickness / 3.0)
    depth = rng.uniform(0.5, 1.0, size=len(points)) * max(max_depth, 0.0)
    return _move_inward(points, mask, depth)
