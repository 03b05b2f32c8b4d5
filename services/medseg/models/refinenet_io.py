"""What the two RefineNet networks take and give (refinenet-interactive-deep-refinement paper,
sec. 2; issue 14 item 4). Training (medseg_train.refinenet) and inference
(medseg.engine.organ, medseg.engine.refinenet_method) call these functions, so both see
identical inputs.

**Backbone** (`organnet-2d`, task "organ"): an automatic organ segmentation of one axial
(z) slice. The slice is robustly mapped to [0, 1] (`unit_intensity`: a CT window for CT, the
slice's percentiles otherwise), then resampled to a fixed grid of GRID_SIZE voxels of GRID_MM mm
centred on the slice (`grid_coordinates`; outside the image = 0). Input (1, *GRID_SIZE)
float32 = 2 u - 1; output logits (len(ORGANS), *GRID_SIZE), one independent (sigmoid) channel
per organ, plus the paper's pyramid side outputs at 1/2 and 1/4 (training only).

**Refiner** (`refinenet-2d`, task "refinement"): a (Y, X) slice of any orientation, its initial
result and the user's seed points. Two crops (both square in mm, the same network):
- the *object crop* (a first result on an empty slice, or no new seed): the propagation
  network's crop (medseg.models.propagation_io.crop_around) around the initial mask and the
  seeds together;
- the *click crop* (`click_crop`: a click or scribble that the initial result contradicts):
  a window centred on the new seeds, side CLICK_DEPTHS x the seeds' depth in the error they
  correct (their distance to the nearest voxel of the label they ask for), at least
  CLICK_MIN_MM and at most CLICK_MAX_MM, grown to hold all the new seeds. A boundary error on a
  large organ is then seen at ~1 mm per grid voxel (the object crop of a CT liver is ~3 mm
  per grid voxel, coarser than the error it should fix).
Input (4, *INPUT_SIZE) float32: the image crop (resized, z-scored), the initial result (a
probability or mask, resized), and Gaussian seed maps (sigma SEED_SIGMA grid voxels) of the
foreground and the background seeds on the network grid. The network pools the initial result
and the seed maps to 1/2 and 1/4 itself and joins them at those scales (the paper's
multi-scale initial result). Output logits (2, *INPUT_SIZE), background / foreground.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

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

__all__ = ["GRID_MM", "GRID_SIZE", "INPUT_SIZE", "ORGANS", "REFINE_CHANNELS", "SEED_SIGMA",
           "Crop", "backbone_input", "click_crop", "fine_crop", "from_grid", "grid_coordinates",
           "grid_scale", "organ_index",
           "predict_refinement", "refine_input", "seed_map", "target_on_grid", "to_grid",
           "unit_intensity"]

# the organs the backbone segments, in its output channel order (TotalSegmentator names)
ORGANS = ("liver", "spleen", "kidney_left", "kidney_right", "aorta", "stomach")
GRID_MM = 3.75
GRID_SIZE = (128, 128)  # 480 mm: an abdomen's axial field of view
CT_WINDOW = (-200.0, 300.0)  # HU mapped to [0, 1] (soft-tissue window)
CT_AIR = -500.0  # a slice whose minimum is below this is CT (air in HU)
SEED_SIGMA = 3.0  # grid voxels
REFINE_CHANNELS = ("image", "initial", "seeds_fg", "seeds_bg")
CLICK_MIN_MM = 96.0  # the click crop's side: ~1 mm per grid voxel at the least ...
CLICK_MAX_MM = 192.0  # ... and never coarser than 2 mm, however deep the seed
CLICK_DEPTHS = 12.0  # side = this many times the new seeds' depth in their error
CLICK_MARGIN_MM = 16.0  # around a long scribble's extent
FINE_SCALE = 1.25  # slice voxels per grid voxel above which `fine_crop` tightens the context


def organ_index(organ: str) -> int:
    """The backbone's channel of `organ`; ValueError naming the organs there are."""
    if organ not in ORGANS:
        raise ValueError(f"unknown organ {organ!r}: the organ model segments "
                         f"{', '.join(ORGANS)}")
    return ORGANS.index(organ)


def unit_intensity(image_slice: np.ndarray) -> np.ndarray:
    """A (Y, X) slice mapped to [0, 1] float32: the CT soft-tissue window when the slice holds
    air in HU, else its 1st..99th percentiles (MR)."""
    image = np.asarray(image_slice, dtype=np.float32)
    if float(image.min()) < CT_AIR:
        lo, hi = CT_WINDOW
    else:
        lo, hi = (float(v) for v in np.percentile(image, (1.0, 99.0)))
    return np.clip((image - lo) / max(hi - lo, 1e-6), 0.0, 1.0).astype(np.float32)


def grid_coordinates(shape, spacing, affine: np.ndarray | None = None) -> np.ndarray:
    """(2, *GRID_SIZE) slice coordinates (y, x) of each grid voxel's centre: the grid is centred
    on the slice. `affine` (2x3, training augmentation) maps grid offsets in mm before that."""
    sy, sx = (float(s) for s in spacing)
    gy, gx = np.meshgrid(*[(np.arange(n) - (n - 1) / 2.0) * GRID_MM for n in GRID_SIZE],
                         indexing="ij")
    if affine is not None:
        a = np.asarray(affine, dtype=np.float64)
        gy, gx = (a[0, 0] * gy + a[0, 1] * gx + a[0, 2], a[1, 0] * gy + a[1, 1] * gx + a[1, 2])
    cy, cx = (shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0
    return np.stack([cy + gy / sy, cx + gx / sx])


def to_grid(array: np.ndarray, spacing, order: int = 1, affine=None) -> np.ndarray:
    """A (Y, X) array resampled onto the grid (0 outside the slice)."""
    coords = grid_coordinates(array.shape, spacing, affine)
    return ndimage.map_coordinates(np.asarray(array, dtype=np.float32), coords, order=order,
                                   mode="constant", cval=0.0).astype(np.float32)


def backbone_input(image_slice: np.ndarray, spacing) -> np.ndarray:
    """(1, *GRID_SIZE) float32 network input of a (Y, X) axial slice, spacing (sy, sx) mm."""
    return (2.0 * to_grid(unit_intensity(image_slice), spacing) - 1.0)[None]


def from_grid(grid_values: np.ndarray, shape, spacing) -> np.ndarray:
    """Grid-shaped values (e.g. a probability) resampled back onto a (Y, X) slice of `shape`
    (linear; 0 where the slice lies outside the grid)."""
    sy, sx = (float(s) for s in spacing)
    yy, xx = np.meshgrid(np.arange(shape[0], dtype=np.float64),
                         np.arange(shape[1], dtype=np.float64), indexing="ij")
    gy = (yy - (shape[0] - 1) / 2.0) * sy / GRID_MM + (GRID_SIZE[0] - 1) / 2.0
    gx = (xx - (shape[1] - 1) / 2.0) * sx / GRID_MM + (GRID_SIZE[1] - 1) / 2.0
    return ndimage.map_coordinates(np.asarray(grid_values, dtype=np.float32), np.stack([gy, gx]),
                                   order=1, mode="constant", cval=0.0).astype(np.float32)


# -- refiner --------------------------------------------------------------------------------------
def refine_crop(initial: np.ndarray, fg: np.ndarray, bg: np.ndarray, spacing,
                grow: float | None = None) -> Crop:
    """The crop around the initial mask (> 0.5) and every seed (at least one is needed);
    `grow`: its context as a fraction of the region's longer side (default the propagation
    network's GROW)."""
    region = np.asarray(initial, dtype=np.float32) > 0.5
    for points in (fg, bg):
        points = np.asarray(points, np.int64).reshape(-1, 2)
        if len(points):
            region[tuple(points.T)] = True
    return crop_around(region, spacing) if grow is None else crop_around(region, spacing, grow)


def grid_scale(crop: Crop) -> float:
    """Slice voxels per network grid voxel along the crop's longer side."""
    return max(crop.shape) / float(max(INPUT_SIZE))


def fine_crop(initial: np.ndarray, fg: np.ndarray, bg: np.ndarray, spacing, grow: float,
              scale: float = FINE_SCALE) -> Crop | None:
    """The object crop with context `grow` instead of GROW where the usual object crop's grid is
    coarser than `scale` slice voxels per grid voxel (a large organ on a fine slice: a CT liver
    at 1 mm is ~3 slice voxels per grid voxel, its whole outline then seen at ~3 mm); None
    elsewhere (the usual crop: a small object, or any object on a coarse slice)."""
    usual = refine_crop(initial, fg, bg, spacing)
    if grid_scale(usual) <= scale:
        return None
    return refine_crop(initial, fg, bg, spacing, grow)


def click_crop(head: np.ndarray, new_fg: np.ndarray, new_bg: np.ndarray, spacing
               ) -> Crop | None:
    """The click crop (module doc) for the new seeds ((N, 2) slice voxels each: the marks the
    (Y, X) mask `head` contradicts, foreground outside it, background inside it); None when
    there are none or the head holds only one label (then the object crop is used)."""
    head = np.asarray(head, dtype=bool)
    new_fg = np.asarray(new_fg, np.int64).reshape(-1, 2)
    new_bg = np.asarray(new_bg, np.int64).reshape(-1, 2)
    if not head.any() or head.all() or len(new_fg) + len(new_bg) == 0:
        return None
    sp = np.asarray(spacing, dtype=float)
    depth = 0.0
    for points, outside in ((new_fg, ~head), (new_bg, head)):
        if len(points):  # distance to the nearest voxel of the label the seed asks for
            distance = ndimage.distance_transform_edt(outside, sampling=sp)
            depth = max(depth, float(distance[tuple(points.T)].max()))
    points = np.concatenate([new_fg, new_bg])
    lo, hi = points.min(axis=0), points.max(axis=0)
    extent_mm = float(((hi - lo + 1) * sp).max())
    side_mm = max(min(max(CLICK_DEPTHS * depth, CLICK_MIN_MM), CLICK_MAX_MM),
                  extent_mm + 2 * CLICK_MARGIN_MM)
    shape = np.maximum(np.ceil(side_mm / sp).astype(int), 2)
    start = np.floor((lo + hi) / 2.0 - (shape - 1) / 2.0 + 0.5).astype(int)
    return Crop((int(start[0]), int(start[1])), (int(shape[0]), int(shape[1])))


def _grid_points(points: np.ndarray, crop: Crop) -> np.ndarray:
    grid = crop.grid_voxels(points)
    inside = np.all((grid >= 0) & (grid < np.asarray(INPUT_SIZE)), axis=1)
    return grid[inside]


def seed_map(points: np.ndarray, size=INPUT_SIZE, sigma: float = SEED_SIGMA) -> np.ndarray:
    """exp(-d^2 / 2 sigma^2), d the distance to the nearest of the (N, 2) grid points (the
    paper's 2D Gaussian of each seed, their maximum); zeros when there are none."""
    points = np.asarray(points, np.int64).reshape(-1, 2)
    if len(points) == 0:
        return np.zeros(size, dtype=np.float32)
    free = np.ones(size, dtype=bool)
    free[tuple(points.T)] = False
    d = ndimage.distance_transform_edt(free)
    return np.exp(-(d ** 2) / (2.0 * sigma ** 2)).astype(np.float32)


def refine_input(image_slice: np.ndarray, initial: np.ndarray, fg: np.ndarray, bg: np.ndarray,
                 spacing, crop: Crop | None = None) -> tuple[np.ndarray, Crop]:
    """((4, *INPUT_SIZE) float32, crop) for a (Y, X) slice, its initial result (probability
    or mask, same shape) and the seeds ((N, 2) slice voxels each)."""
    image_slice = np.asarray(image_slice, dtype=np.float32)
    initial = np.asarray(initial, dtype=np.float32)
    if image_slice.shape != initial.shape or image_slice.ndim != 2:
        raise ValueError(f"image {image_slice.shape} and initial result {initial.shape} must be "
                         "the same 2D shape")
    crop = crop or refine_crop(initial, fg, bg, spacing)
    image = normalise(resize_linear(cut(image_slice, crop), INPUT_SIZE))
    prior = np.clip(resize_linear(cut(initial, crop), INPUT_SIZE), 0, 1)
    seeds = [seed_map(_grid_points(p, crop)) for p in (fg, bg)]
    return np.stack([image, prior, *seeds]).astype(np.float32), crop


def predict_refinement(forward: Callable[[np.ndarray], np.ndarray], image_slice: np.ndarray,
                       initial: np.ndarray, fg: np.ndarray, bg: np.ndarray, spacing,
                       crop: Crop | None = None) -> tuple[np.ndarray, Crop]:
    """The whole contract around one refiner call: `forward` maps (1, 4, *INPUT_SIZE) float32 to
    (1, 2, *INPUT_SIZE) logits. Returns the (Y, X) float32 refined foreground probability of
    the slice (the initial result outside the crop) and the crop (`crop`, e.g. a click crop;
    default the object crop)."""
    x, crop = refine_input(image_slice, initial, fg, bg, spacing, crop)
    probability = foreground_probability(forward(x[None]))[0]
    inside = np.zeros(np.shape(initial), dtype=bool)
    inside[tuple(slice(max(lo, 0), max(lo + n, 0)) for lo, n in zip(crop.lo, crop.shape))] = True
    on_slice = probability_on_slice(probability, crop, np.shape(initial))
    return np.where(inside, on_slice, np.asarray(initial, np.float32)), crop
