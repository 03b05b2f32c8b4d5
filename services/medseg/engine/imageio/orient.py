"""Bring an array on the same voxel grid (up to axis order and flips) onto a reference grid."""

from __future__ import annotations

import itertools

import numpy as np
from nibabel.orientations import (
    apply_orientation,
    inv_ornt_aff,
    io_orientation,
    ornt_transform,
)

from medseg.engine.imageio._common import detail
from medseg.errors import CorruptImage


def reorient_to(
    reference_affine: np.ndarray,
    reference_shape_zyx: tuple[int, int, int],
    other_array_zyx: np.ndarray,
    other_affine: np.ndarray,
    tol_mm: float = 0.01,
) -> np.ndarray:
    """`other_array_zyx` permuted/flipped so that voxel (z, y, x) sits where the reference's does.

    Raises CorruptImage when the two grids differ by more than axis order and flips (different
    shape, spacing, origin or obliquity): every voxel centre must coincide within `tol_mm`.
    """
    ref_aff = np.asarray(reference_affine, dtype=np.float64)
    oth_aff = np.asarray(other_affine, dtype=np.float64)
    other = np.asarray(other_array_zyx)
    ref_shape = tuple(int(s) for s in reference_shape_zyx)
    if other.ndim != 3 or len(ref_shape) != 3:
        raise CorruptImage(
            f"cannot align arrays of shapes {other.shape} and {ref_shape}: both must be 3D"
        )
    try:
        transform = ornt_transform(io_orientation(oth_aff), io_orientation(ref_aff))
        data_xyz = apply_orientation(other.transpose(2, 1, 0), transform)
        new_aff = oth_aff @ inv_ornt_aff(transform, other.transpose(2, 1, 0).shape)
    except Exception as exc:  # noqa: BLE001 - degenerate affines, bad shapes
        raise CorruptImage(f"cannot align the images: {detail(exc)}") from exc
    new_shape = tuple(int(s) for s in data_xyz.shape[::-1])
    if new_shape != ref_shape:
        raise CorruptImage(
            f"image grids do not match: after reorientation the shape is {new_shape} (z, y, x), "
            f"the reference is {ref_shape}"
        )
    err = _max_corner_error(ref_aff, new_aff, ref_shape)
    if err > tol_mm:
        raise CorruptImage(
            f"image grids do not match: voxel centres differ by up to {err:.3f} mm after "
            f"reorientation (tolerance {tol_mm} mm); spacing, origin or direction differ"
        )
    return np.ascontiguousarray(data_xyz.transpose(2, 1, 0))


def _max_corner_error(a: np.ndarray, b: np.ndarray, shape_zyx: tuple[int, ...]) -> float:
    """Largest distance between where `a` and `b` put the grid's corner voxels (affine maps
    are linear, so corners bound every voxel)."""
    nz, ny, nx = shape_zyx
    corners = np.array(
        [[x, y, z, 1.0] for x, y, z in itertools.product((0, nx - 1), (0, ny - 1), (0, nz - 1))]
    ).T
    return float(np.max(np.linalg.norm((a @ corners - b @ corners)[:3], axis=0)))
