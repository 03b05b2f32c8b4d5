"""What the 2D editing network takes and gives (deep-editing-tools paper, sec. 2.4). Training
(medseg_train.editing) and inference (medseg.engine.editing_method) both call these
functions, so the network sees identical inputs in both.

A slice is (Y, X) in voxels, spacing (sy, sx) in mm.

- Crop: the propagation network's square crop in mm (medseg.models.propagation_io.crop_around)
  around the current mask and the edit marks together, so a click on a missed blob far from the
  mask is inside the crop.
- Input (5, 96, 96) float32: the image crop resized and robustly z-scored, the current mask
  resized, then the three edit channels of medseg.algorithms.editing.edit_channels computed on
  the network's grid (marks mapped to the grid voxel they fall in, then dilated there by two
  voxels, so the encoding is the paper's whatever the slice's resolution): selection (+1 add,
  -1 remove), brush (+1 add, -1 remove), adjustment (K everywhere).
- Output: the network's foreground probability, resized back to the crop (zero outside it).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from medseg.algorithms.editing import Edits, edit_channels
from medseg.algorithms.resample import resize_linear
from medseg.models.propagation_io import (
    INPUT_SIZE,
    Crop,
    crop_around,
    cut,
    foreground_probability,
    normalise,
    probability_on_slice,
    target_on_grid,
)

IN_CHANNELS = 5
CHANNELS = ("image", "mask", "selection", "brush", "adjustment")

__all__ = ["INPUT_SIZE", "IN_CHANNELS", "Crop", "crop_for", "network_input", "predict_slice",
           "target_on_grid", "to_grid"]


def _points(edits: Edits) -> np.ndarray:
    return np.concatenate([np.asarray(p, np.int64).reshape(-1, 2) for p in (
        edits.select_add, edits.select_remove, edits.brush_add, edits.brush_remove)])


def crop_for(mask: np.ndarray, edits: Edits, spacing) -> Crop:
    """The crop around the mask and the marks (at least one of them must be non-empty)."""
    region = np.asarray(mask, dtype=bool).copy()
    points = _points(edits)
    if len(points):
        region[tuple(points.T)] = True
    return crop_around(region, spacing)


def to_grid(points: np.ndarray, crop: Crop) -> np.ndarray:
    """(N, 2) slice voxels -> the network-grid voxels they fall in."""
    return np.clip(crop.grid_voxels(points), 0, np.asarray(INPUT_SIZE) - 1)


def network_input(image_slice: np.ndarray, mask: np.ndarray, edits: Edits, spacing,
                  crop: Crop | None = None) -> tuple[np.ndarray, Crop]:
    """((5, *INPUT_SIZE) float32, crop) for a (Y, X) slice, its current mask and the edits
    (slice voxel coordinates)."""
    if image_slice.shape != mask.shape or image_slice.ndim != 2:
        raise ValueError(f"image {image_slice.shape} and mask {mask.shape} must be the same 2D "
                         "shape")
    crop = crop or crop_for(mask, edits, spacing)
    image = normalise(resize_linear(cut(image_slice, crop), INPUT_SIZE))
    prior = np.clip(resize_linear(cut(np.asarray(mask, np.float32), crop), INPUT_SIZE), 0, 1)
    on_grid = Edits(to_grid(edits.select_add, crop), to_grid(edits.select_remove, crop),
                    to_grid(edits.brush_add, crop), to_grid(edits.brush_remove, crop), edits.k)
    channels = edit_channels(on_grid, INPUT_SIZE)
    return np.concatenate([image[None], prior[None], channels]).astype(np.float32), crop


def predict_slice(forward: Callable[[np.ndarray], np.ndarray], image_slice: np.ndarray,
                  mask: np.ndarray, edits: Edits, spacing) -> tuple[np.ndarray, Crop]:
    """The whole contract around one network call: `forward` maps (1, 5, *INPUT_SIZE) float32
    to (1, 2, *INPUT_SIZE) logits. Returns the (Y, X) float32 foreground probability of the
    slice (zero outside the crop) and the crop."""
    x, crop = network_input(np.asarray(image_slice, dtype=np.float32),
                            np.asarray(mask, dtype=bool), edits, spacing)
    probability = foreground_probability(forward(x[None]))[0]
    return probability_on_slice(probability, crop, image_slice.shape), crop
