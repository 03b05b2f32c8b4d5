"""What P-Net and PC-Net take and give (BIFSeg sec. II-B, III-B/C).

A box (inclusive voxel corners) is grown by a margin and clipped to the image; the crop is
resized to the network's fixed input size (linear, anti-aliased), z-scored by its own mean and
std and given as one channel. The network's foreground probability on that grid is resized
back to the crop. Training (medseg_train.bifseg), fine-tuning (medseg.engine.finetune) and
the benchmark all call these functions, so the network sees identical inputs everywhere.

Arrays are (Y, X) for 2D or (Z, Y, X) for 3D, in voxels. Deviation from the paper: the crop is
resized to a fixed size (anisotropically) rather than "shortest side 128 px" (2D) / "longest
side 80 voxels" (3D), so training batches stack and CPU time per crop is bounded (docs/methods.md).
"""

from __future__ import annotations

import numpy as np

from medseg.algorithms.resample import resize_linear
from medseg.models.mideepseg_io import probability_in_crop, zscore

INPUT_SIZE = {2: (96, 96), 3: (24, 48, 48)}
NETWORK = {2: {"width": 16, "hidden": 32}, 3: {"width": 12, "compressed": 8, "hidden": 32}}
NAMES = {2: "pnet-2d", 3: "pcnet-3d"}
BOX_MARGIN = 5  # voxels added on every side of a user's / reference box at test time

__all__ = [
    "BOX_MARGIN",
    "INPUT_SIZE",
    "NAMES",
    "NETWORK",
    "box_slices",
    "grow_box",
    "mask_box",
    "network_input",
    "probability_in_crop",
]


def mask_box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) inclusive voxel corners of a non-empty mask's bounding box."""
    coords = np.argwhere(mask)
    if len(coords) == 0:
        raise ValueError("an empty mask has no bounding box")
    return coords.min(axis=0), coords.max(axis=0)


def grow_box(lo, hi, shape, margin) -> tuple[np.ndarray, np.ndarray]:
    """The box grown by `margin` voxels per side (an int, or one value per axis and side as an
    array of shape (2, ndim)), clipped to `shape`."""
    margin = np.broadcast_to(np.asarray(margin, dtype=int), (2, len(shape)))
    lo = np.maximum(np.asarray(lo, dtype=int) - margin[0], 0)
    hi = np.minimum(np.asarray(hi, dtype=int) + margin[1], np.asarray(shape) - 1)
    return lo, hi


def box_slices(lo, hi) -> tuple[slice, ...]:
    return tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi))


def network_input(crop: np.ndarray, size) -> np.ndarray:
    """(1, *size) float32: the crop resized to `size` and z-scored."""
    return zscore(resize_linear(crop, size))[None]
