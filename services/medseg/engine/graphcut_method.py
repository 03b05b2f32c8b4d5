"""Model-free interactive segmentation: geodesic distances from the marks give the unary,
a BIFSeg graph cut (eq. 2 pairwise term) gives the mask, all inside a region of interest.

Arrays are (z, y, x) voxels and spacing (sz, sy, sx) mm (see engine/volume.py). A 2D
interaction works on one slice: the ROI is one voxel thick along `plane.axis` and the arrays
are squeezed along that axis, with the spacing of the two remaining axes.

A click or scribble on a segment that already has a mask (on the plane, for 2D) *refines* it
under the contract of engine/refinement.py: the head mask and its stored probability are the
prior of the unary, fused with the geodesic cue of the marks (IF-GC-like), and the result only
changes the error components that the marks the head contradicts land in. A box, or a click on
an empty segment, segments from the marks alone. Either way the result is a function of (image,
marks, head revision's mask and stored probability), so replay (undo, redo) is exact.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from medseg.algorithms.geodesic import geodesic_fields
from medseg.algorithms.graphcut import banded_graph_cut, graph_cut
from medseg.algorithms.indices import argwhere, nonzero
from medseg.algorithms.normalize import median_spread, normalize_percentiles
from medseg.algorithms.resample import block_any, block_mean, upsample_linear2
from medseg.engine.method import Method, MethodResult, SegmentContext
from medseg.engine.params import (
    FRACTION,
    LAMB,
    MARGIN_MM,
    SIGMA,
    SMOOTH_MM,
    STD_WIDTH,
    VOXEL_BUDGET,
    Range,
    check_params,
)
from medseg.engine.prompts import Box, Marks, Plane, check_on_plane
from medseg.engine.refinement import (
    PRIOR_MARGIN,
    PRIOR_MARGIN_BG,
    contradicted,
    depth_mm,
    error_region,
    fuse_prior,
    grow,
    heard_box,
    local_cut,
    local_merge,
    mask_prior,
    object_scale_mm,
    open_faces,
    reach_mm,
    stored_in,
    unlike_width_mm,
    within_reach,
)
from medseg.errors import InvalidPrompt

# raster-scan iterations (a forward and a backward pass each) of a half-resolution scan;
# full-resolution scans keep GeodisTK's 2 (methods.md, local refinement)
COARSE_PASSES = 1


@dataclass(frozen=True)
class GraphCutParams:
    """Tunables of the geodesic + graph-cut method (defaults chosen on the robot tests)."""

    lamb: float = 2.0  # pairwise weight (per mm of boundary, see algorithms/graphcut.py)
    sigma: float = 0.1  # intensity scale of the pairwise term, on [0, 1] intensities (BIFSeg)
    geodesic_lamb: float = 1.0  # ratio 0..1: 0 Euclidean .. 1 intensity-weighted geodesic
    margin_mm: float = 60.0  # ROI margin around the marks and the current mask bbox
    margin_fraction: float = 0.5  # ... or this fraction of the marked extent, if larger
    box_margin_mm: float = 6.0  # ROI margin around a drawn box (its outside is background)
    smooth_mm: float = 1.5  # Gaussian smoothing before the geodesic distance (noise suppression)
    intensity_k: float = 2.5  # fg intensity model width, in std of the intensities at fg seeds
    seed_radius_mm: float = 5.0  # neighbourhood of the fg seeds that the intensity model sees
    intensity_gate: float = 0.5  # ratio 0..1: P_fg *= 1 - gate * dissimilarity (unlike tissue)
    euclid_weight: float = 0.005  # Euclidean tie-break, per mm, added to geodesic distances
    border_cost: float = 0.3  # boundary crossings: the ROI border's start as a weak bg seed
    coarse_voxels: int = 1_000_000  # larger ROIs: banded graph cut (coarse-to-fine, same mask)
    coarse_geodesic_voxels: int = 1_000_000  # larger ROIs: geodesics at half in-plane res.
    refine_voxels: int = 250_000  # a 3D refinement window larger than this: geodesics at
    # half in-plane resolution and the banded graph cut (the ~0.3 s budget of a 3D click)
    # refinement of an existing mask (engine/refinement.py)
    influence_mm: float = 20.0  # a new mark's weight in the fusion falls to 1/e over at least
    # this much homogeneous path (each edge crossed divides it by e too), or less on a small
    # object: `scale_fraction` x its equivalent radius (refinement.object_scale_mm) ...
    scale_fraction: float = 0.3  # ratio: x the object's equivalent radius (mm), see above
    influence_depth: float = 2.0  # ... or this many times the mark's depth in its error
    max_influence_mm: float = 120.0  # ... but at most this much
    unlike_spread: float = 1.0  # in 2D a background mark whose tissue differs from the
    # head's median by more than this many robust std of the head (an outlier of the object)
    # is as deep in its error as the head's part like it is wide: its depth (distance to the
    # head's background) only bounds its error from above, and a click in a hole the start
    # filled (a kidney's sinus, 15-23 mm from the background of a 28 mm kidney) was heard over
    # the whole object (docs/benchmarks.md, 2D box starts on held-out organs)
    heard_distance: float = 3.0  # crossings + influence lengths (D): past it a mark weighs 0
    local_cut: bool = True  # graph cut on the box where a > 0 only, the head fixed around it
    cut_margin: int = 3  # voxels around that box, prior-only, where the head is not yet fixed
    prior_margin: float = PRIOR_MARGIN  # the head's foreground is worth p0 >= 0.5 + this,
    prior_margin_bg: float = PRIOR_MARGIN_BG  # its background p0 <= 0.5 - this
    absent_cost: float = 1.0  # boundary crossings: D_fg with no fg mark (only bg clicks)
    merge_margin: int = 1  # voxels: a change this close to the clicked error component joins it
    max_grow: int = 2  # count: ROI growths when the change touches an ROI face inside the image
    # 3D: the error component a new mark lands in, as its cue estimates it within
    # `error_reach` x its depth + `error_margin_mm` (refinement.error_region), has the neutral
    # prior `error_prior` instead of the head's: there the click, not the head, decides
    # (methods.md, local refinement); error_reach 0: off
    error_reach: float = 2.0  # ratio: x the mark's depth (mm) in its error
    error_margin_mm: float = 3.0  # mm added to that reach (and to `bg_reach`'s)
    error_scale: float = 0.7  # ratio: ... and within this x the head's equivalent radius
    error_prior: float = 0.5  # probability: the prior p0 in that component (0.5: neutral)
    # 3D: a new background mark removes only within `bg_reach` x its depth + `error_margin_mm`
    # (refinement.within_reach); 0: off
    bg_reach: float = 1.0  # ratio: x the mark's depth (mm) in its error
    # a 3D box start (no foreground mark): the box's centre third is the fg seed, but on an
    # organ with a hilum or a lesion with a necrotic core it also holds other tissue, whose
    # mean/std model let fat and vessels in (docs/benchmarks.md, "3D box start");
    # the model is then the centre's median and `box_intensity_k` x its MAD-based std
    # (0: the mean/std model of `intensity_k`), and its cut uses `box_lamb`
    box_intensity_k: float = 1.5  # robust std (1.4826 x MAD) of the box centre's intensities
    # pairwise weight of the box start's cut (per mm, as `lamb`; a 2D box on a coarse grid too)
    box_lamb: float = 4.0
    # ... but a heterogeneous lesion's centre is its most uniform part (brats13-4's core, a
    # T1 sarcoma's): where the first cut's mask is more varied than the centre (its robust
    # spread > `box_refit` x the centre's), the model is refit once to that mask (its median,
    # `box_intensity_k` x its spread) and the cut runs again, so the rim the narrow band
    # missed comes back; a uniform object (kidneys) keeps its first mask bit for bit. 0: off
    box_refit: float = 1.1
    # a 2D box start: the mean/std model of the centre third, narrower than a click's
    # (`intensity_k`) and gating harder, and the cut's `box_lamb`: the start put the
    # partial-volume ring around a kidney in the mask (pixels half-way between the organ and
    # its fat), a rim that each later click removes only a few pixels of
    # (docs/benchmarks.md, "2D box start: the partial-volume rim (branch box2d)")
    box_intensity_k_2d: float = 1.5  # std of the centre third's intensities
    box_gate_2d: float = 0.6  # probability: the intensity gate of a 2D box start
    # ... on pixels at least this coarse (the finer in-plane spacing): the ring is one pixel
    # wide, so it costs Dice on a coarse grid only; on ct_dicom's 0.98 mm slices the narrower
    # band gated noisy organ pixels (31 organs' largest slices: mean Dice 0.775 -> 0.756),
    # at 1.95 mm it no longer did (0.780 -> 0.785)
    box_model_min_mm: float = 1.5
    # 3D background clicks on a box start (no foreground mark): the head's part in the box's
    # centre third, away from the background marks, is the cue's foreground (`_box_core`), so
    # the clicked error is estimated and decided as after a foreground mark (error_reach)
    box_core: bool = True

    def __post_init__(self) -> None:
        check_params(self, _RANGES)


# Why each bound: engine/params.py for the shared ones; the others here.
_RANGES = {
    "lamb": LAMB, "sigma": SIGMA, "geodesic_lamb": FRACTION,
    "margin_mm": MARGIN_MM, "box_margin_mm": MARGIN_MM, "smooth_mm": SMOOTH_MM,
    # the margin grows with the marked extent; 10x it already covers any image
    "margin_fraction": Range(0.0, 10.0),
    "intensity_k": STD_WIDTH,
    # the intensity model should see the clicked tissue, not its neighbours: 50 mm around
    # a click is a whole kidney already
    "seed_radius_mm": Range(0.0, 50.0),
    "intensity_gate": FRACTION,
    # a tie-break per mm: at 1 the Euclidean part already outweighs crossing an edge (which
    # adds at most 1), so more would turn the geodesic distance into a Euclidean one
    "euclid_weight": Range(0.0, 1.0),
    # in boundary crossings (each adds at most 1): a border seed costing 10 is no seed at all
    "border_cost": Range(0.0, 10.0),
    "coarse_voxels": VOXEL_BUDGET, "coarse_geodesic_voxels": VOXEL_BUDGET,
    "refine_voxels": VOXEL_BUDGET,
    # past 1 m of homogeneous path every voxel of any image hears the click as if next to it
    "influence_mm": Range(1.0, 1000.0), "max_influence_mm": Range(1.0, 1000.0),
    "influence_depth": Range(0.0, 100.0),  # x the depth (mm) of the mark in its error
    "scale_fraction": Range(0.0, 100.0),  # x the object's equivalent radius
    "unlike_spread": Range(0.0, 100.0),  # robust std of the head's intensities
    # a = e^-D: below 1 the marks would be cut off where they still weigh a third; past 40
    # (4e-18) the weight is below any float32 probability's resolution anyway
    "heard_distance": Range(1.0, 40.0),
    "cut_margin": Range(0, 64),  # voxels
    # 0.5 would make p0 exactly 0 / 1 (the head is final)
    "prior_margin": Range(0.0, 0.5), "prior_margin_bg": Range(0.0, 0.5),
    "absent_cost": Range(0.0, 10.0, lo_open=True),  # in boundary crossings, as border_cost
    "merge_margin": Range(0, 64),  # voxels
    "max_grow": Range(0, 8),  # each growth re-runs the method on a larger ROI
    "error_reach": Range(0.0, 100.0),  # x the depth (mm) of the mark in its error
    "error_margin_mm": Range(0.0, 1000.0),
    "error_scale": Range(0.0, 100.0),  # x the head's equivalent radius
    "bg_reach": Range(0.0, 100.0),  # x the depth (mm) of the mark in its error
    # p0 inside the clicked error: 0.5 = neutral; the head's own side of 0.5 would undo it
    "error_prior": FRACTION,
    "box_intensity_k": Range(0.0, 100.0),  # 0: off; else a width as STD_WIDTH
    "box_lamb": LAMB,
    # a ratio of two spreads; below 1 even a mask as uniform as the centre would be refit
    "box_refit": Range(0.0, 100.0),
    "box_intensity_k_2d": STD_WIDTH, "box_gate_2d": FRACTION,
    "box_model_min_mm": Range(0.0, 100.0),  # mm: 0 always, 100 never (no pixel is that big)
}


def plan_roi(shape, spacing, marks: Marks, current_mask_bbox: Box | None, plane: Plane | None,
             params: GraphCutParams) -> Box:
    """ROI (inclusive voxel box) around all marks, boxes and the current mask bbox.

    Margin: with boxes, `box_margin_mm` (the box already bounds the object); otherwise the
    larger of `margin_mm` and `margin_fraction` x the marked extent, so a first click gets
    room for a whole organ and later clicks widen the ROI with the object. Cost follows the
    object, not the image. For 2D the ROI is the plane's slice.
    """
    parts = [np.asarray(marks.fg).reshape(-1, 3), np.asarray(marks.bg).reshape(-1, 3)]
    parts += [np.array([b.lo, b.hi]) for b in marks.boxes]
    if current_mask_bbox is not None:
        parts.append(np.array([current_mask_bbox.lo, current_mask_bbox.hi]))
    points = np.concatenate(parts)
    if len(points) == 0:
        raise InvalidPrompt("nothing to segment: no marks")
    lo, hi = points.min(axis=0), points.max(axis=0)
    spacing = np.asarray(spacing, dtype=float)
    if marks.boxes:
        margin_mm = np.full(3, params.box_margin_mm)
    else:  # extent of the fg marks only: a leaking mask must not inflate the next ROI further
        fg = np.asarray(marks.fg).reshape(-1, 3)
        extent_mm = ((fg.max(axis=0) - fg.min(axis=0)) * spacing).max() if len(fg) else 0.0
        margin_mm = np.full(3, max(params.margin_mm, params.margin_fraction * extent_mm))
    margin = np.ceil(margin_mm / spacing).astype(int)
    lo = np.maximum(lo - margin, 0)
    hi = np.minimum(hi + margin, np.asarray(shape) - 1)
    if plane is not None:
        lo[plane.axis] = hi[plane.axis] = plane.index
    return Box(tuple(int(v) for v in lo), tuple(int(v) for v in hi))


def _check_marks(marks: Marks, plane: Plane | None, refining: bool = False) -> None:
    if len(marks.fg) == 0 and not marks.boxes and not (refining and len(marks.bg)):
        raise InvalidPrompt("nothing to segment: add a foreground click/scribble or a box")
    check_on_plane(marks, plane)


def _local_mask(points: np.ndarray, roi: Box, shape3: tuple[int, int, int]) -> np.ndarray:
    """Bool ROI-shaped (z, y, x) mask of the given full-volume points that fall inside the ROI."""
    mask = np.zeros(shape3, dtype=bool)
    local = np.asarray(points).reshape(-1, 3) - np.asarray(roi.lo)
    inside = np.all((local >= 0) & (local < np.asarray(shape3)), axis=1)
    mask[tuple(local[inside].T)] = True
    return mask


def _box_masks(boxes: list[Box], roi: Box, shape3) -> tuple[np.ndarray, np.ndarray]:
    """(inside any box, central region of any box) in ROI coordinates. The centre region (the
    middle third of each box per axis) is where a GrabCut user expects the object."""
    inside = np.zeros(shape3, dtype=bool)
    centre = np.zeros(shape3, dtype=bool)
    for box in boxes:
        lo = np.asarray(box.lo) - np.asarray(roi.lo)
        hi = np.asarray(box.hi) - np.asarray(roi.lo)
        third = (hi - lo) // 3
        inside[tuple(slice(max(a, 0), max(b + 1, 0)) for a, b in zip(lo, hi))] = True
        middle = tuple(slice(max(a + t, 0), max(b - t + 1, 0)) for a, b, t in zip(lo, hi, third))
        centre[middle] = True
    return inside, centre


def _border_seeds(shape3, roi: Box, full_shape, all_faces: bool = False) -> np.ndarray:
    """ROI faces that are not image faces (or all faces): the object is assumed not to reach
    past the ROI, but it may well touch the image border (the liver spans all of ct_3mm's z)."""
    seeds = np.zeros(shape3, dtype=bool)
    for axis in range(3):
        if shape3[axis] == 1:
            continue
        index: list[slice | int] = [slice(None)] * 3
        if all_faces or roi.lo[axis] > 0:
            index[axis] = 0
            seeds[tuple(index)] = True
        if all_faces or roi.hi[axis] < full_shape[axis] - 1:
            index[axis] = shape3[axis] - 1
            seeds[tuple(index)] = True
    return seeds


def _seeds(marks: Marks, roi: Box, shape3, full_shape):
    """(fg seeds, bg seeds, weak bg border, hard fg, hard bg), ROI-shaped (z, y, x) bools.

    Clicks/scribbles are hard constraints and geodesic seeds. A box makes its outside hard
    background and, without fg marks, its central region the fg seed. Without a box the ROI
    faces inside the image are a weak background seed (the first click has no bg mark)."""
    hard_fg = _local_mask(marks.fg, roi, shape3)
    hard_bg = _local_mask(marks.bg, roi, shape3) & ~hard_fg
    seed_fg, seed_bg = hard_fg.copy(), hard_bg.copy()
    border = np.zeros(shape3, dtype=bool)
    if marks.boxes:
        inside, centre = _box_masks(marks.boxes, roi, shape3)
        hard_bg |= ~inside & ~hard_fg
        seed_bg |= ~inside & ~hard_fg
        if not seed_fg.any():
            seed_fg = centre & ~seed_bg
    else:
        border = _border_seeds(shape3, roi, full_shape)
        if not border.any() and not seed_bg.any():  # ROI = whole image, nothing marked bg
            border = _border_seeds(shape3, roi, full_shape, all_faces=True)
    return seed_fg, seed_bg, border, hard_fg, hard_bg


def fg_probability(d_fg: np.ndarray, d_bg: np.ndarray) -> np.ndarray:
    """P_fg = D_bg / (D_fg + D_bg): 1 on fg seeds, 0 on bg seeds, 0.5 half-way (geodesically)."""
    total = d_fg + d_bg
    return np.where(total > 0, d_bg / np.maximum(total, 1e-12), 0.5).astype(np.float32)


def intensity_model(image: np.ndarray, seed_fg: np.ndarray, spacing, params) -> tuple[float, float]:
    """(mean, width) of the fg intensities: mean and intensity_k x std of the unsmoothed image
    within `seed_radius_mm` of the fg seeds (so the width includes the noise)."""
    radius = [max(round(params.seed_radius_mm / sp), 0) for sp in spacing]
    size = [2 * r + 1 for r in radius]
    idx = nonzero(seed_fg)  # dilate only around the seeds: a full-ROI dilation costs 0.4 s in 3D
    crop = tuple(slice(max(int(i.min()) - r, 0), int(i.max()) + r + 1) for i, r in zip(idx, radius))
    # dilation by a box: separable 1D maximum filters give binary_dilation's result with a
    # box footprint at a cost linear in the radius (the footprint costs its volume per voxel)
    near = ndimage.maximum_filter(seed_fg[crop], size=size, mode="constant", cval=0)
    values = image[crop][near]
    return float(values.mean()), params.intensity_k * max(float(values.std()), 0.005)


def robust_model(image: np.ndarray, region: np.ndarray, k: float) -> tuple[float, float]:
    """(median, k x 1.4826 x MAD) of `image` in `region` (`median_spread`): a model of the
    tissue that fills most of the region."""
    median, spread = median_spread(image[region])
    return median, k * max(spread, 0.005)


def refit_model(image: np.ndarray, mask: np.ndarray, model: tuple[float, float],
                k: float, ratio: float) -> tuple[float, float] | None:
    """`robust_model` of the first cut's `mask` when its width exceeds `ratio` x the width of
    `model` (the box centre's): the object is more varied than its centre; None otherwise."""
    if ratio <= 0 or not mask.any():
        return None
    refit = robust_model(image, mask, k)
    return refit if refit[1] > ratio * model[1] else None


def dissimilarity(image: np.ndarray, mu: float, width: float) -> np.ndarray:
    """1 - exp(-(I - mu)^2 / (2 width^2)), in [0, 1]: 0 for tissue like the clicked one.

    Why: on the raw image a geodesic path integrates CT noise over the length of a large organ,
    about as much as crossing a real edge; this image (of the smoothed intensities) is flat ~0
    inside tissue like the clicked one and rises to ~1 across its boundary, so the geodesic
    distance counts boundary crossings (fuzzy connectedness) instead of noise. Liver, spleen
    and muscle differ by only ~10-60 HU, so edges must still do most of the separating."""
    return (1.0 - np.exp(-((image - mu) ** 2) / (2.0 * width * width))).astype(np.float32)


def seed_distances(g: np.ndarray, seeds: list[np.ndarray], spacing, euclid_weights: list[float],
                   coarse: bool = False, iterations: int = 2,
                   small: np.ndarray | None = None) -> list[np.ndarray]:
    """Per seed set k, the geodesic distance over `g` in units of g change (GeodisTK's mm
    factor divided out by the mean step) plus euclid_weights[k] x path length in mm, all in
    one fused raster scan (algorithms/geodesic.geodesic_fields): a click's D_fg, D_bg, ROI
    border distance and its marks' reach cost little more than one of them. The Euclidean part
    breaks ties inside homogeneous regions, where the geodesic part is ~0 from every seed.

    coarse: run the scan on a 2x in-plane block mean of g (4x fewer voxels, a quarter of the
    time) and interpolate back; g is already smoothed by `smooth_mm`, so little is lost.
    The coarse scan divides by its own (coarse) mean step: a coarse step crosses the same
    intensity change as two fine ones, so per voxel step the units match the fine scan.
    `small`: block_mean(g, 2) when the caller has it (several scans over one g share it)."""
    if coarse:
        spacing = [*spacing[:-2], *(2.0 * s for s in spacing[-2:])]
        small = block_mean(g, 2) if small is None else small
        return [upsample_linear2(f, g.shape) for f in seed_distances(
            small, [block_any(s, 2) for s in seeds], spacing, euclid_weights,
            iterations=COARSE_PASSES)]
    step = float(np.mean(spacing))
    fields = geodesic_fields(g, seeds, spacing, [w * step for w in euclid_weights], iterations)
    return [f / np.float32(step) for f in fields]


def unary_probability(image: np.ndarray, seed_fg, seed_bg, border, spacing, params,
                      model: tuple[float, float] | None = None) -> np.ndarray:
    """Foreground probability of every ROI voxel from the seeds (all arrays squeezed, same shape).
    The ROI border is a weak background seed: it starts at `border_cost` instead of 0, so tissue
    connected to the fg seeds without crossing an edge stays foreground up to the border.
    `model` (mean, width) of the fg intensities, on `image`'s scale, replaces the one measured
    around the fg seeds (propagation knows the object from its start slice)."""
    return _cue(image, seed_fg, seed_bg, border, spacing, params, model)[0]


def _cue(image: np.ndarray, seed_fg, seed_bg, border, spacing, params,
         model: tuple[float, float] | None = None, gate: bool = True,
         coarse: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(unary_probability, the boundary image g its geodesics ran on). Without fg seeds (a
    head refined by background marks only) D_fg is the constant `absent_cost`; without fg seeds
    and without `model`, g is the smoothed image itself. `gate`: apply the intensity gate of
    `model` (which must then be the foreground's). `coarse`: geodesics at half in-plane
    resolution (None: when g has more than `coarse_geodesic_voxels`)."""
    prob, g, _ = _cue_reach(image, seed_fg, seed_bg, border, spacing, params, model, gate, coarse)
    return prob, g


def _cue_reach(image: np.ndarray, seed_fg, seed_bg, border, spacing, params,
               model: tuple[float, float] | None = None, gate: bool = True,
               coarse: bool | None = None, reach: tuple[np.ndarray, float] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`_cue`, plus `reach` (seeds, euclid_weight): one more distance over g in the same fused
    scan (a refinement's new marks, `_refine`), returned third (None without `reach`)."""
    smooth = image
    if params.smooth_mm > 0:
        # the filter's cost grows with its width in voxels: past the ROI's extent along an
        # axis the ROI is as flat as it gets, so a fine grid cannot make a bounded mm costly
        widths = [min(params.smooth_mm / s, n) for s, n in zip(spacing, image.shape)]
        smooth = ndimage.gaussian_filter(image, widths)
    has_fg = bool(np.any(seed_fg))
    mu, width = model or (intensity_model(image, seed_fg, spacing, params) if has_fg
                          else (0.0, 0.0))
    g = dissimilarity(smooth, mu, width) if has_fg or model else smooth.astype(np.float32)
    # a full-resolution 3D scan costs ~0.2 s / M voxels; at half resolution the mask moves a
    # little (synthetic 0.8 mm ball: Dice to truth 0.920 -> 0.910), so only for big ROIs
    if coarse is None:
        coarse = g.size > params.coarse_geodesic_voxels
    small = block_mean(g, 2) if coarse else None  # one coarse grid for all the scans
    border = border & ~seed_fg
    # every distance over g in one fused scan (D_fg, D_bg, the border's, the marks' reach)
    wanted = {name: (seeds, weight) for name, seeds, weight in (
        ("fg", seed_fg, params.euclid_weight), ("bg", seed_bg, params.euclid_weight),
        ("border", border, params.euclid_weight), *([("reach", *reach)] if reach else []))
        if name == "reach" or seeds.any()}
    fields = dict(zip(wanted, seed_distances(g, [s for s, _ in wanted.values()], spacing,
                                             [w for _, w in wanted.values()], coarse,
                                             small=small)))
    reach_distance = fields.get("reach")
    if has_fg:
        d_fg = fields["fg"]
    else:
        d_fg = np.full(g.shape, params.absent_cost, dtype=np.float32)
    d_bg = fields.get("bg", np.full(g.shape, np.inf, dtype=np.float32))
    if "border" in fields:
        d_bg = np.minimum(d_bg, params.border_cost + fields["border"])
    if not np.isfinite(d_bg).any():
        return np.ones(g.shape, np.float32), g, reach_distance
    if not ((has_fg or model) and gate):
        return fg_probability(d_fg, d_bg), g, reach_distance
    # intensity gate on the unsmoothed image (smoothing would blur away the object's rim):
    # tissue unlike the clicked one is less likely foreground, wherever the geodesics put it
    gate = 1.0 - params.intensity_gate * dissimilarity(image, mu, width)
    return fg_probability(d_fg, d_bg) * gate, g, reach_distance


@dataclass
class _Request:
    """One interaction as `segment` received it, for running it on one ROI after another."""

    read_image: Callable[[Box], np.ndarray]
    read_mask: Callable[[Box], np.ndarray]
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    marks: Marks
    plane: Plane | None
    params: GraphCutParams
    refining: bool  # a click/scribble on a segment with a mask here: engine/refinement.py
    has_head: bool  # the head mask is not empty (on the plane for 2D)
    box_kind: bool  # the interaction is a box: it re-segments inside its box
    stored: tuple[Box, np.ndarray] | None  # the head revision's stored probability


def _run_roi(req: _Request, roi: Box) -> tuple[MethodResult, np.ndarray]:
    """(result on `roi`, changed region (ROI-shaped bool) that decides whether the ROI grows)."""
    t0 = time.perf_counter()
    params, plane = req.params, req.plane
    shape3 = (roi.shape[0], roi.shape[1], roi.shape[2])
    image = np.asarray(req.read_image(roi)).reshape(shape3)  # float32 in normalize_percentiles
    seed_fg, seed_bg, border, hard_fg, hard_bg = _seeds(req.marks, roi, shape3, req.shape)
    if req.refining:  # the head mask, not a box's centre, says where the object is now
        seed_fg = hard_fg.copy()
    keep = [a for a in range(3) if plane is None or a != plane.axis]
    squeeze = (lambda a: a) if plane is None else (lambda a: np.squeeze(a, axis=plane.axis))
    sp = [float(req.spacing[a]) for a in keep]
    norm = normalize_percentiles(squeeze(image))
    head = (np.asarray(req.read_mask(roi), dtype=bool).reshape(shape3) if req.has_head
            else np.zeros(shape3, dtype=bool))
    t1 = time.perf_counter()

    if req.refining:
        return _refine(req, roi, t0, t1, norm, head, sp, squeeze,
                       (seed_fg, seed_bg, border, hard_fg, hard_bg))
    model, lamb, cue_params = None, params.lamb, params
    box_start = bool(req.marks.boxes) and len(req.marks.fg) == 0 and bool(seed_fg.any())
    if box_start and plane is None and params.box_intensity_k > 0:  # a 3D box start
        model = robust_model(norm, seed_fg, params.box_intensity_k)
        lamb = params.box_lamb
    elif box_start and plane is not None and min(sp) >= params.box_model_min_mm:
        # a 2D box start on a coarse grid: see box_intensity_k_2d
        cue_params = replace(params, intensity_k=params.box_intensity_k_2d,
                             intensity_gate=params.box_gate_2d)
        lamb = params.box_lamb
    cue, g = _cue(norm, squeeze(seed_fg), squeeze(seed_bg), squeeze(border), sp, cue_params,
                  model)
    prob = cue
    t2 = time.perf_counter()

    info: dict = {}
    # a big ROI's full-resolution maxflow alone takes ~1 s; the banded cut: the same mask
    cut = banded_graph_cut if prob.size > params.coarse_voxels else graph_cut
    mask = cut(prob, norm, sp, squeeze(hard_fg), squeeze(hard_bg), lamb, params.sigma)
    refit = (refit_model(norm, mask, model, params.box_intensity_k, params.box_refit)
             if model is not None else None)
    if refit is not None:  # a 3D box start whose mask is more varied than the box's centre
        prob, _ = _cue(norm, squeeze(seed_fg), squeeze(seed_bg), squeeze(border), sp, params,
                       refit)
        mask = cut(prob, norm, sp, squeeze(hard_fg), squeeze(hard_bg), lamb, params.sigma)
        info["box_refit"] = True
    if req.box_kind and req.has_head:  # a new box re-segments its inside only
        inside, _ = _box_masks(req.marks.boxes[-1:], roi, shape3)
        region = squeeze(inside) & (mask != squeeze(head))
        mask = np.where(squeeze(inside), mask, squeeze(head))
    else:
        region = mask
    t3 = time.perf_counter()
    return (MethodResult(roi=roi, mask=mask.reshape(shape3), probability=prob.reshape(shape3),
                         timings={"roi": t1 - t0, "geodesic": t2 - t1, "graphcut": t3 - t2},
                         info=info),
            region.reshape(shape3))


def _window_border(window: tuple[slice, ...], shape) -> np.ndarray:
    """The faces of `window` (slices into an array of `shape`) that lie inside the array: the
    weak background border of a refinement window, as a first click's ROI faces are."""
    border = np.zeros([w.stop - w.start for w in window], dtype=bool)
    for axis, (w, n) in enumerate(zip(window, shape)):
        if border.shape[axis] == 1:
            continue
        index: list[slice | int] = [slice(None)] * border.ndim
        if w.start > 0:
            index[axis] = 0
            border[tuple(index)] = True
        if w.stop < n:
            index[axis] = border.shape[axis] - 1
            border[tuple(index)] = True
    return border


def _box_core(boxes: list[Box], roi: Box, head: np.ndarray, clicked_bg: np.ndarray,
              sp: list[float], win: tuple[slice, ...], clear_mm: float) -> np.ndarray | None:
    """On the window `win` of the (3D) ROI arrays: the head's part in the centre third of the
    boxes (where a box start put its foreground seeds), farther than `clear_mm` from every
    background mark; None when nothing is left. The box start's evidence of the object: a
    background click on a leak of the start is then a two-sided cue (the object's centre
    against the clicked tissue), not "tissue like the clicked one", which may be the object."""
    _, centre = _box_masks(boxes, roi, head.shape)
    core = centre[win] & head[win]
    # only the marks within clear_mm of the window matter: the distance on the window grown by
    # that much (a whole-ROI distance transform cost ~60 ms a click on a 1 mm spleen box)
    grown = tuple(slice(max(w.start - int(np.ceil(clear_mm / s)) - 1, 0),
                        min(w.stop + int(np.ceil(clear_mm / s)) + 1, n))
                  for w, s, n in zip(win, sp, head.shape))
    marks = clicked_bg[grown]
    if core.any() and marks.any():
        inner = tuple(slice(w.start - g.start, w.stop - g.start) for w, g in zip(win, grown))
        core &= ndimage.distance_transform_edt(~marks, sampling=sp)[inner] > clear_mm
    return core if core.any() else None


def _object_like(core: np.ndarray, norm: np.ndarray, new_bg: np.ndarray, sp: list[float],
                 smooth_mm: float) -> np.ndarray:
    """The voxels of `core` whose intensity (`norm` smoothed by a Gaussian of `smooth_mm`) is
    closer to the core's median than to the new background marks' mean; `core` itself when
    none is. A box start's centre third holds leaked tissue too (a pancreas box's centre:
    31 % pancreas): where that tissue is the clicked one, it is not evidence of the object."""
    if not new_bg.any():
        return core
    widths = [min(smooth_mm / s, n) for s, n in zip(sp, norm.shape)]
    smooth = ndimage.gaussian_filter(norm, widths) if smooth_mm > 0 else norm
    median, clicked = float(np.median(smooth[core])), float(smooth[new_bg].mean())
    like = core & (np.abs(smooth - median) <= np.abs(smooth - clicked))
    return like if like.any() else core


def _refine(req: _Request, roi: Box, t0: float, t1: float, norm: np.ndarray,
            head3: np.ndarray, sp: list[float], squeeze, seeds) -> tuple[MethodResult, np.ndarray]:
    """A click/scribble on a segment with a mask (engine/refinement.py), in its window.

    The window is the box of the new marks grown by their reach: a voxel farther than
    `heard_distance` x influence mm (Euclidean) from every new mark has D >= heard_distance
    (D adds path length / influence), so a = 0 there and the prior, i.e. the head, decides.
    Inside the window the cue is computed as for a first click whose ROI is the window (its
    faces inside the ROI are the weak background border), fused with the head's prior, cut
    with the head fixed around the heard box (`local_cut`); outside, the head bit for bit.
    `local_cut=False`: the window is the whole ROI (the reference the fast path is tested
    against)."""
    params, plane = req.params, req.plane
    seed_fg, seed_bg, border, hard_fg, hard_bg = (squeeze(a) for a in seeds)
    shape3 = head3.shape
    head = squeeze(head3)
    seed_fg = hard_fg.copy()  # the head mask, not a box's centre, says where the object is now
    clicked_fg = squeeze(_local_mask(req.marks.fg, roi, shape3))
    clicked_bg = squeeze(_local_mask(req.marks.bg, roi, shape3)) & ~clicked_fg
    new_fg, new_bg = contradicted(clicked_fg, clicked_bg, head)
    q, known = stored_in(roi, req.stored)
    prior = mask_prior(head, squeeze(q), squeeze(known), params.prior_margin,
                       margin_bg=params.prior_margin_bg)
    if not (new_fg.any() or new_bg.any()):  # every mark agrees with the head: nothing to do
        return (MethodResult(roi=roi, mask=head3, probability=prior.reshape(shape3),
                             timings={"roi": t1 - t0}, info={"changed_marks": 0}),
                np.zeros(shape3, dtype=bool))
    # the new marks' say falls off with geodesic distance and path length: 1/e after
    # `influence` mm, more for a mark deep inside a large error (refinement.depth_mm)
    depth = depth_mm(new_fg, new_bg, head, sp) or 0.0
    unlike = None
    if plane is not None and not new_fg.any():  # 2D background marks: see unlike_spread
        unlike = unlike_width_mm(norm, head, new_bg, sp, params.smooth_mm,
                                 params.unlike_spread)
        depth = min(depth, unlike)
    influence = reach_mm(params.influence_mm, head, sp, new_fg, depth, params.scale_fraction,
                         params.influence_depth,
                         max(params.max_influence_mm, params.influence_mm))
    win: tuple[slice, ...] = tuple(slice(0, n) for n in head.shape)
    if params.local_cut:
        reach = [int(np.ceil(params.heard_distance * influence / s)) + params.cut_margin + 2
                 for s in sp]
        marked = argwhere(new_fg | new_bg)
        win = tuple(slice(max(int(lo) - r, 0), min(int(hi) + r + 1, n)) for lo, hi, r, n
                    in zip(marked.min(axis=0), marked.max(axis=0), reach, head.shape))
    w_border = border[win] | _window_border(win, head.shape)
    w_norm = norm[win]
    model, gate = None, True
    # the error ball (3D): the error one click fixes lies within 2 x its depth + 3 mm, and at
    # most the ball of the head's own size (error_region, below)
    radius = min(params.error_reach * depth + params.error_margin_mm,
                 params.error_scale * object_scale_mm(head, sp))
    core = None  # on the window
    if plane is None and params.box_core and not seed_fg.any() and req.marks.boxes:
        core = _box_core(req.marks.boxes, roi, head, clicked_bg, sp, win, radius)
    if core is not None:
        # a box start refined by background clicks: the box's centre, where the head still
        # holds it away from the clicks, is the object's evidence (GrabCut's), so the cue is
        # two-sided, over how unlike the clicked tissue a voxel is (docs/benchmarks.md,
        # "3D box start: background clicks against the box's core")
        seed_fg = np.zeros_like(head)
        seed_fg[win] = _object_like(core, w_norm, new_bg[win], sp, params.smooth_mm)
        model, gate = intensity_model(w_norm, new_bg[win], sp, params), False
    elif not seed_fg[win].any() and seed_bg[win].any():
        # no fg mark (a head refined by background marks only): g measures how unlike the
        # clicked background tissue a voxel is, so the click reaches the tissue like it
        # (in 2D of the new marks only: after a box, seed_bg holds the box's whole outside,
        # whose mixed tissues made every voxel look like the clicked one)
        like = new_bg[win] if plane is not None and new_bg[win].any() else seed_bg[win]
        model, gate = intensity_model(w_norm, like, sp, params), False
    # a 3D refinement click answers within ~0.3 s (issue 13): on a large window its scans
    # run at half in-plane resolution (methods.md, local refinement)
    budget = params.refine_voxels if plane is None else params.coarse_geodesic_voxels
    coarse = w_norm.size > budget
    # the new marks' reach: over the cue's g, in the cue's fused scan
    cue, g, distance = _cue_reach(w_norm, seed_fg[win], seed_bg[win], w_border, sp, params,
                                  model, gate, coarse, ((new_fg | new_bg)[win], 1.0 / influence))
    assert distance is not None
    heard = distance < params.heard_distance  # a = 0 beyond: the prior itself
    prob = prior.copy()
    w_prior, error_voxels = prior[win], None
    fg_evidence = model is None or core is not None
    if plane is None and params.error_reach > 0 and fg_evidence:
        # the size bound: the error one click fixes is not larger than the object (a deep
        # click far from the head would otherwise take every like voxel within twice its depth)
        if core is not None:
            # a background click only removes, and the core's cue guards the object: the
            # object-scale bound (against a foreground click taking like tissue past the
            # object) would only stop it short in a leak larger than the object
            radius = params.error_reach * depth + params.error_margin_mm
        within = within_reach(new_fg[win], new_bg[win], sp, radius, 1.0, 0.0)
        clicked = error_region(cue, head[win], new_fg[win], new_bg[win],
                               heard if within is None else heard & within)
        w_prior = np.where(clicked, np.float32(params.error_prior), w_prior)
        error_voxels = int(clicked.sum())
    prob[win] = fuse_prior(w_prior, cue, np.where(heard, distance, np.inf))
    t2 = time.perf_counter()

    info: dict = {}
    removable = None  # where the merge may take the cut's changes (None: everywhere)
    if plane is None and params.bg_reach > 0 and new_bg[win].any() and not fg_evidence:
        near = within_reach(np.zeros_like(new_bg[win]), new_bg[win], sp, depth,
                            params.bg_reach, params.error_margin_mm)
        removable = near | ~head[win] | new_fg[win]  # additions: not bounded here
    box = heard_box(heard, params.cut_margin) if params.local_cut else None
    if box is not None:  # only where a mark is heard can the cut differ from the head
        box = tuple(slice(w.start + b.start, w.start + b.stop) for w, b in zip(win, box))
        sub = int(np.prod([b.stop - b.start for b in box]))
        cut_budget = params.refine_voxels if plane is None else params.coarse_voxels
        cut = banded_graph_cut if sub > cut_budget else graph_cut
        mask = local_cut(cut, prob, norm, sp, hard_fg, hard_bg, head, box, params.lamb,
                         params.sigma)
        info["cut_voxels"] = sub
        merged, region_w = local_merge(head[win], mask[win], new_fg[win], new_bg[win],
                                       params.merge_margin, removable)  # head outside `win`
        mask = head.copy()
        mask[win] = merged
        region = np.zeros(head.shape, dtype=bool)
        region[win] = region_w
    else:
        cut = banded_graph_cut if prob.size > params.coarse_voxels else graph_cut
        mask = cut(prob, norm, sp, hard_fg, hard_bg, params.lamb, params.sigma)
        mask, region = local_merge(head, mask, new_fg, new_bg, params.merge_margin, removable)
    info["changed_marks"] = int(new_fg.sum() + new_bg.sum())
    info["depth_mm"] = round(depth, 1)
    if unlike is not None and np.isfinite(unlike):
        info["unlike_mm"] = round(unlike, 1)
    info["influence_mm"] = round(influence, 1)
    info["window_voxels"] = int(w_norm.size)
    if error_voxels is not None:
        info["error_voxels"] = error_voxels
    t3 = time.perf_counter()
    return (MethodResult(roi=roi, mask=mask.reshape(shape3), probability=prob.reshape(shape3),
                         timings={"roi": t1 - t0, "geodesic": t2 - t1, "graphcut": t3 - t2},
                         info=info),
            region.reshape(shape3))


def segment(read_image: Callable[[Box], np.ndarray], read_mask: Callable[[Box], np.ndarray],
            shape, spacing, marks: Marks, plane: Plane | None,
            params: GraphCutParams = GraphCutParams(),
            current_mask_bbox: Box | None = None,
            context: SegmentContext | None = None) -> MethodResult:
    """Segment from all the segment's marks, refining the head mask (`read_mask`,
    `context.head_probability`) when there is one and the interaction is not a box (module
    doc); interior margin points (`marks.points`) are another method's input. The ROI grows
    (up to `max_grow` times) while the change touches one of its faces inside the image.
    Raises InvalidPrompt without a foreground mark or box (or a background mark on a segment
    with a mask), or with a point off `plane`."""
    context = context or SegmentContext()
    marks = Marks(np.asarray(marks.fg).reshape(-1, 3), np.asarray(marks.bg).reshape(-1, 3),
                  list(marks.boxes))
    has_head = current_mask_bbox is not None
    box_kind = context.kind == "box"
    refining = has_head and not box_kind
    _check_marks(marks, plane, refining)
    roi = plan_roi(shape, spacing, marks, current_mask_bbox, plane, params)
    stored = context.head_probability() if refining else None
    req = _Request(read_image, read_mask, (int(shape[0]), int(shape[1]), int(shape[2])),
                   (float(spacing[0]), float(spacing[1]), float(spacing[2])), marks, plane,
                   params, refining, has_head, box_kind, stored)
    steps = np.ceil(max(params.margin_mm / 2, params.box_margin_mm) / np.asarray(spacing))
    timings: dict[str, float] = {}
    for grown in range(params.max_grow + 1):
        result, region = _run_roi(req, roi)
        for key, seconds in result.timings.items():
            timings[key] = timings.get(key, 0.0) + seconds
        faces = open_faces(region, roi, shape, plane)
        if not faces or grown == params.max_grow:
            break
        roi = grow(roi, faces, steps, shape)
    result.timings = timings
    if refining:
        result.info["refined"] = True
    if grown:
        result.info["roi_grown"] = grown
    return result


def click_cue(read_image: Callable[[Box], np.ndarray], shape, spacing, marks: Marks,
              params: GraphCutParams = GraphCutParams()) -> tuple[Box, np.ndarray]:
    """(ROI, float32 probability) of a 3D first click (clicks or scribbles, no box, an empty
    segment): the ROI and probability `segment` returns with `max_grow=0`, without its graph
    cut. Why: slicewise's first click fuses only this unary into its own tie and threw the
    cut's mask away (~40 % of this method's time on a 64x128x128 ROI; docs/benchmarks.md,
    "3D first click")."""
    marks = Marks(np.asarray(marks.fg).reshape(-1, 3), np.asarray(marks.bg).reshape(-1, 3))
    _check_marks(marks, None)
    roi = plan_roi(shape, spacing, marks, None, None, params)
    shape3 = (roi.shape[0], roi.shape[1], roi.shape[2])
    image = np.asarray(read_image(roi)).reshape(shape3)
    seed_fg, seed_bg, border, _, _ = _seeds(marks, roi, shape3, shape)
    prob = unary_probability(normalize_percentiles(image), seed_fg, seed_bg, border,
                             [float(s) for s in spacing], params)
    return roi, prob.reshape(shape3)


METHOD = Method(
    name="geodesic-graphcut",
    description="Model-free: geodesic distance from the marks (GeodisTK) as unary, graph cut "
                "(PyMaxflow) with BIFSeg eq. 2 pairwise term, marks as hard constraints, "
                "inside a region of interest around the marks and mask.",
    interaction_types=("click", "scribble", "box"),
    dims=("2d", "3d"),
    params_type=GraphCutParams,
    run=segment,
)
