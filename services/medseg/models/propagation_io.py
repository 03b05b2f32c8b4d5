"""What the slice-propagation network takes and gives (the slice-propagation paper,
sec. 2.1 and 2.3). Training (medseg_train.propagation) and inference
(medseg.engine.propagation_net) both call these functions, so the network sees identical
inputs in both.

A slice is (Y, X) in voxels, spacing (sy, sx) in mm. The prior is the neighbouring slice's mask.

- Crop: a square in mm around the prior's bounding box, its side the box's longer side x 1.5
  plus MARGIN_MM on each side (at least MIN_SIDE_MM): the object moves and grows between
  slices, and a square in mm keeps the object's true aspect ratio whatever the spacing. The
  crop may reach past the slice: the slice's edge values are repeated there.
- Input: the crop resized to INPUT_SIZE (96 x 96), intensities clipped to the crop's 1st..99th
  percentiles and z-scored, stacked with the prior resized the same way: (2, 96, 96) float32.
- Output: the network's foreground probability (96, 96) resized back to the crop and pasted
  into a slice of zeros (outside the crop the object cannot be).

Why 96 x 96: a typical 3 mm organ crop is 40-90 voxels, so 96 keeps every voxel; a 1 mm CT
liver crop (~280 voxels) comes out at ~3 mm per input pixel, the training data's resolution.
The 4-level U-Net (base 16) runs in ~10 ms per slice in onnxruntime on one core of this CPU
(128 x 128: ~17 ms; 64 x 64: ~4 ms but 4 mm pixels on 1 mm CT).

Why a per-crop robust z-score, not the paper's CT clip (+-1024 HU, / 500): we see MR too,
whose units are arbitrary, and CT from different scanners and windows. Clipping to the crop's
own percentiles first stops air, bone or contrast agent in the crop from squeezing the
soft-tissue contrast the boundary lives in (what the paper's +-1024 clip does for CT); the
z-score then removes brightness and linear contrast, for CT and MR alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from medseg.algorithms.resample import resize_linear

INPUT_SIZE = (96, 96)
GROW = 0.5  # the box's longer side grows by this fraction (a quarter on each side) ...
MARGIN_MM = 8.0  # ... plus this much on each side
MIN_SIDE_MM = 32.0
CLIP_PERCENTILES = (1.0, 99.0)


@dataclass(frozen=True)
class Crop:
    """A (Y, X) voxel window of a slice: `lo` its first voxel (may be negative), `shape` its
    size (may reach past the slice)."""

    lo: tuple[int, int]
    shape: tuple[int, int]

    def indices(self, slice_shape) -> tuple[np.ndarray, np.ndarray]:
        """Row and column indices into the slice, clamped: outside voxels repeat the edge."""
        rows, cols = (np.clip(np.arange(lo, lo + n), 0, size - 1)
                      for lo, n, size in zip(self.lo, self.shape, slice_shape))
        return rows, cols

    def grid_voxels(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) slice voxels -> the (N, 2) network-grid (INPUT_SIZE) voxels they fall in;
        a point outside the crop maps outside the grid (callers clip or drop it)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        scale = np.asarray(INPUT_SIZE, dtype=np.float64) / np.asarray(self.shape, dtype=np.float64)
        return np.floor((points - np.asarray(self.lo) + 0.5) * scale).astype(np.int64)


def crop_around(prior: np.ndarray, spacing, grow: float = GROW) -> Crop:
    """The crop for a non-empty (Y, X) prior mask; spacing (sy, sx) mm; `grow`: the context
    around the mask's box as a fraction of its longer side (GROW)."""
    coords = np.argwhere(prior)
    if len(coords) == 0:
        raise ValueError("propagation needs a non-empty prior mask")
    spacing = np.asarray(spacing, dtype=float)
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    extent_mm = (hi - lo + 1) * spacing
    side_mm = max(float(extent_mm.max()) * (1 + grow) + 2 * MARGIN_MM, MIN_SIDE_MM)
    shape = np.maximum(np.ceil(side_mm / spacing).astype(int), 2)
    centre = (lo + hi) / 2.0
    start = np.floor(centre - (shape - 1) / 2.0 + 0.5).astype(int)
    return Crop((int(start[0]), int(start[1])), (int(shape[0]), int(shape[1])))


def cut(array: np.ndarray, crop: Crop) -> np.ndarray:
    rows, cols = crop.indices(array.shape)
    return np.ascontiguousarray(array[np.ix_(rows, cols)])


def normalise(image: np.ndarray) -> np.ndarray:
    """Clip to the image's CLIP_PERCENTILES, then z-score (float32)."""
    image = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(image, CLIP_PERCENTILES)
    image = np.clip(image, lo, hi)
    return ((image - image.mean()) / max(float(image.std()), 1e-6)).astype(np.float32)


def network_input(image_slice: np.ndarray, prior_mask: np.ndarray, spacing,
                  crop: Crop | None = None) -> tuple[np.ndarray, Crop]:
    """((2, *INPUT_SIZE) float32 [image, prior], crop) for a (Y, X) slice and its prior."""
    if image_slice.shape != prior_mask.shape or image_slice.ndim != 2:
        raise ValueError(f"image {image_slice.shape} and prior {prior_mask.shape} must be the "
                         "same 2D shape")
    crop = crop or crop_around(prior_mask, spacing)
    image = normalise(resize_linear(cut(image_slice, crop), INPUT_SIZE))
    prior = resize_linear(cut(prior_mask, crop).astype(np.float32), INPUT_SIZE)
    return np.stack([image, np.clip(prior, 0.0, 1.0)]).astype(np.float32), crop


def target_on_grid(mask: np.ndarray, crop: Crop) -> np.ndarray:
    """A (Y, X) mask on the network's grid (bool INPUT_SIZE): the training target."""
    return resize_linear(cut(mask, crop).astype(np.float32), INPUT_SIZE, antialias=False) > 0.5


def probability_on_slice(probability: np.ndarray, crop: Crop, slice_shape) -> np.ndarray:
    """The network's foreground probability (INPUT_SIZE) as a (Y, X) float32 map of the whole
    slice: resized back to the crop, zero outside it."""
    prob = np.clip(resize_linear(probability, crop.shape, antialias=False), 0.0, 1.0)
    out = np.zeros(slice_shape, dtype=np.float32)
    src, dst = [], []
    for lo, n, size in zip(crop.lo, crop.shape, slice_shape):
        a, b = max(lo, 0), min(lo + n, size)
        dst.append(slice(a, b))
        src.append(slice(a - lo, b - lo))
    if all(s.stop > s.start for s in dst):
        out[tuple(dst)] = prob[tuple(src)]
    return out


def foreground_probability(logits: np.ndarray) -> np.ndarray:
    """(N, 2, ...) logits -> (N, ...) float32 softmax probability of class 1."""
    logits = np.asarray(logits, dtype=np.float32)
    return (1.0 / (1.0 + np.exp(logits[:, 0] - logits[:, 1]))).astype(np.float32)


def predict_slice(forward: Callable[[np.ndarray], np.ndarray], image_slice: np.ndarray,
                  prior_mask: np.ndarray, spacing) -> np.ndarray:
    """The whole contract around one network call: `forward` maps a (1, 2, *INPUT_SIZE)
    float32 input to (1, 2, *INPUT_SIZE) logits (torch in training, onnxruntime in the
    engine). Returns the (Y, X) float32 foreground probability of the slice."""
    x, crop = network_input(np.asarray(image_slice, dtype=np.float32),
                            np.asarray(prior_mask, dtype=bool), spacing)
    probability = foreground_probability(forward(x[None]))[0]
    return probability_on_slice(probability, crop, image_slice.shape)
