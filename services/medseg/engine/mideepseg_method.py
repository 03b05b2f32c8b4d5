"""MIDeepSeg (Luo et al. 2021) as an interactive method: initial segmentation from interior
margin points with a trained U-Net, refinement clicks by information fusion + graph cut.

Arrays are (z, y, x) voxels; a 2D interaction works on one slice (`plane`) and squeezes that
axis away, exactly as the model-free method does.

- `points` interaction (>= 3 interior margin points): relaxed box -> crop -> network input
  (image + cue map, models/mideepseg_io.py, as in training) -> ONNX -> foreground probability in
  the box -> mask = p > 0.5. It restarts the segment: the ROI also covers the old mask (on the
  plane in 2D), which is cleared outside the box.
- `click` interaction on a segment with a mask or a stored probability, whichever method made
  it (a `bifseg` box, a model-free click, a propagated slice, an imported mask): IF-GC (or
  plain graph cut) over an ROI = the stored probability's box, the head mask's bounding box and
  every click (+ margin). The probability P that IF-GC fuses with the clicks is the refinement
  contract's prior (engine/refinement.py): the head revision's stored map (this method's CNN
  output, zero outside the CNN box, or another method's probability) kept on the head mask's
  side of 0.5; D^f comes from ALL foreground clicks including the interior margin points, D^b
  from all background clicks (paper sec. 2.4). Only the error components that the marks the
  head contradicts land in change; the ROI grows while such a change touches its border.

Every revision stores the CNN probability it used (zero outside the CNN box, on the revision's
ROI; the prior for a head another method made), so the next refinement, undo and redo find it,
and each revision is a deterministic function of the image, the marks, the head mask and that
stored map.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from medseg.algorithms.encodings import ENCODINGS
from medseg.algorithms.fusion import ABSENT_DISTANCE, if_gc, plain_gc
from medseg.algorithms.graphcut import banded_graph_cut, graph_cut
from medseg.algorithms.normalize import normalize_percentiles
from medseg.engine.method import Method, MethodResult, SegmentContext
from medseg.engine.params import LAMB, SIGMA, VOXEL_BUDGET, Range, check_params
from medseg.engine.prompts import Box, Marks, Plane, check_on_plane, plane_record
from medseg.engine.refinement import (
    PRIOR_MARGIN,
    PRIOR_MARGIN_BG,
    contradicted,
    depth_mm,
    grow,
    local_merge,
    mask_prior,
    open_faces,
    reach_mm,
    stored_in,
    unlike_part,
    within_reach,
)
from medseg.errors import InvalidPrompt
from medseg.models.loader import LoadedModel, default_loader
from medseg.models.mideepseg_io import network_input, probability_in_crop, relaxed_box, zscore

NAME = "mideepseg"
TASK = "mideepseg"
MIN_POINTS = 3
REFINEMENTS = ("if-gc", "gc")


@dataclass(frozen=True)
class MIDeepSegParams:
    """Tunables; lamb and sigma are the paper's (sec. 2.5), see algorithms/fusion.py."""

    encoding: str = "egd"  # cue encoding of the interior margin points: picks the model
    refinement: str = "if-gc"  # "if-gc" (paper) or "gc" (graph cut on the CNN probability)
    lamb: float = 5.0  # pairwise weight per mm of neighbour distance (the paper's 1 mm pixels)
    sigma: float = 0.1  # intensity scale of the pairwise term on [0, 1] ROI intensities
    margin_voxels: int = 8  # ROI margin around refinement clicks that lie outside the CNN box
    absent_distance: float = ABSENT_DISTANCE  # z-scores: the geodesic D^f / D^b of no click
    coarse_voxels: int = 100_000  # larger ROIs: banded (coarse-to-fine) graph cut
    coarse_geodesic_voxels: int = 50_000  # larger ROIs: D^f, D^b at half in-plane resolution
    length_weight: float = 0.1  # D^f, D^b + this per voxel step (locality; 0 = eq. 2 only,
    # see algorithms/fusion.py for why and what it measured)
    influence_mm: float = 20.0  # a refinement's D length term: alpha falls to 1/e over at
    influence_depth: float = 2.0  # least this (mm) and 1/length_weight voxels (less on a small
    max_influence_mm: float = 120.0  # object: scale_fraction x its equivalent radius) or this
    scale_fraction: float = 0.3  # many times the click's depth in its error, at most this
    margin_points_as_clicks: bool = True  # D^f from the interior margin points too (paper)
    prior_margin: float = PRIOR_MARGIN  # the head's foreground is worth p >= 0.5 + this,
    prior_margin_bg: float = PRIOR_MARGIN_BG  # its background p <= 0.5 - this
    merge_margin: int = 1  # voxels: a change this close to the clicked error component joins it
    reach_depth: float = 1.5  # a background click removes only voxels within this x its
    reach_margin_mm: float = 3.0  # depth in its error + this mm (refinement.within_reach)
    max_grow: int = 2  # count: ROI growths (by margin_voxels, >= 8) while the change touches it
    unlike_spread: float = 1.0  # in 2D a background click on tissue more than this many robust
    # std (of the head's intensities, smoothed by unlike_smooth_mm) from the head's median
    # removes only voxels within unlike_margin_mm of the head's part like that tissue
    unlike_smooth_mm: float = 1.5  # (refinement.unlike_part, as geodesic-graphcut's depth
    unlike_margin_mm: float = 6.0  # bound; 6 mm: two voxels of a 3 mm grid)

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {list(ENCODINGS)}, got {self.encoding!r}")
        if self.refinement not in REFINEMENTS:
            raise ValueError(f"refinement must be one of {list(REFINEMENTS)}, "
                             f"got {self.refinement!r}")
        check_params(self, _RANGES)


# Why each bound: engine/params.py for the shared ones; the others here.
_RANGES = {
    "lamb": LAMB, "sigma": SIGMA,
    "margin_voxels": Range(0, 1024),  # four network inputs (256) around a click is plenty
    # D of a side without clicks enters as exp(-D): 100 (4e-44) is "never" already
    "absent_distance": Range(0.0, 100.0, lo_open=True),
    # per voxel step, against intensity changes of a few z-scores across an edge: at 10 the
    # path length alone decides
    "length_weight": Range(0.0, 10.0),
    "coarse_voxels": VOXEL_BUDGET, "coarse_geodesic_voxels": VOXEL_BUDGET,
    # 0.5 would make p exactly 0 / 1 (the head is final)
    "prior_margin": Range(0.0, 0.5), "prior_margin_bg": Range(0.0, 0.5),
    "influence_mm": Range(1.0, 1000.0), "max_influence_mm": Range(1.0, 1000.0),
    "influence_depth": Range(0.0, 100.0),  # x the depth (mm) of the new marks in their error
    "scale_fraction": Range(0.0, 100.0),  # x the object's equivalent radius
    "merge_margin": Range(0, 64),  # voxels
    # x the depth of the marks: at 100 (or 1 m) a click may change any voxel of any ROI
    "reach_depth": Range(0.0, 100.0), "reach_margin_mm": Range(0.0, 1000.0),
    "max_grow": Range(0, 8),  # each growth re-runs the refinement on a larger ROI
    "unlike_spread": Range(0.0, 100.0),  # robust std of the head's intensities
    "unlike_smooth_mm": Range(0.0, 20.0),  # a Gaussian's sigma, as the model-free smooth_mm
    "unlike_margin_mm": Range(0.0, 1000.0),  # at 1 m the unlike part bounds nothing
}


def load_model(dims: int, encoding: str) -> LoadedModel:
    """The newest MIDeepSeg network for the cue encoding; ModelUnavailable when none is there."""
    loader = default_loader()
    return loader.load(loader.find(TASK, dims, encoding))


class _Geometry:
    """The axes an interaction works on: all three in 3D, the two off `plane` in 2D."""

    def __init__(self, shape, spacing, plane: Plane | None):
        self.shape, self.plane = tuple(int(s) for s in shape), plane
        self.keep = [a for a in range(3) if plane is None or a != plane.axis]
        self.spacing = [float(spacing[a]) for a in self.keep]

    def box(self, lo, hi) -> Box:
        """3D Box from corners on the kept axes (the plane's index on its axis)."""
        lo3, hi3 = [0, 0, 0], [0, 0, 0]
        for k, a in enumerate(self.keep):
            lo3[a], hi3[a] = int(lo[k]), int(hi[k])
        if self.plane is not None:
            lo3[self.plane.axis] = hi3[self.plane.axis] = self.plane.index
        return Box(tuple(lo3), tuple(hi3))

    def squeeze(self, a: np.ndarray) -> np.ndarray:
        return a if self.plane is None else np.squeeze(a, axis=self.plane.axis)


def _union(a: Box, b: Box | None) -> Box:
    if b is None:
        return a
    return Box(tuple(map(min, a.lo, b.lo)), tuple(map(max, a.hi, b.hi)))


def _paste(values: np.ndarray, box: Box, roi: Box) -> np.ndarray:
    """float32 ROI-shaped array: `values` (box-shaped) at the box's place, 0 elsewhere."""
    out = np.zeros(roi.shape, dtype=np.float32)
    out[tuple(slice(lo - r, h - r + 1) for lo, h, r in zip(box.lo, box.hi, roi.lo))] = values
    return out


def _local(points: np.ndarray, roi: Box) -> np.ndarray:
    mask = np.zeros(roi.shape, dtype=bool)
    local = np.asarray(points).reshape(-1, 3) - np.asarray(roi.lo)
    mask[tuple(local.T)] = True
    return mask


def initial(read_image: Callable[[Box], np.ndarray], geo: _Geometry, points: np.ndarray,
            params: MIDeepSegParams, current_mask_bbox: Box | None) -> MethodResult:
    """Initial segmentation from interior margin points ((N, 3) voxels, on the plane in 2D)."""
    dims = len(geo.keep)
    if len(points) < MIN_POINTS:
        raise InvalidPrompt(f"MIDeepSeg needs at least {MIN_POINTS} interior margin points "
                            f"(inside the object, near its boundary), got {len(points)}")
    t0 = time.perf_counter()
    model = load_model(dims, params.encoding)
    local_shape = [geo.shape[a] for a in geo.keep]
    pts = np.asarray(points)[:, geo.keep]
    lo, hi = relaxed_box(pts, local_shape)
    box = geo.box(lo, hi)
    crop = geo.squeeze(np.asarray(read_image(box), dtype=np.float32).reshape(box.shape))
    x = network_input(crop, pts - lo, model.card.input_size, params.encoding)
    t1 = time.perf_counter()
    prob = probability_in_crop(model.predict(x[None])[0], crop.shape)
    t2 = time.perf_counter()
    # a restart: the ROI covers the old mask too, which is cleared outside the CNN box
    roi = _union(box, current_mask_bbox)
    stored = _paste(prob.reshape(box.shape), box, roi)
    return MethodResult(roi=roi, mask=stored > 0.5, probability=stored,
                        timings={"input": t1 - t0, "network": t2 - t1},
                        info={"model": f"{model.card.name}@{model.card.version}",
                              "encoding": params.encoding, "cnn_box": [list(box.lo), list(box.hi)]})


def _to_refine(context: SegmentContext, geo: _Geometry, current_mask_bbox: Box | None
               ) -> tuple[tuple[Box, np.ndarray] | None, bool]:
    """(the head's stored probability where it lies on the interaction's plane, or None; True
    when this method made the head on the same plane, i.e. the map is its CNN output)."""
    head = context.head_interaction
    own = head.get("method") == NAME and head.get("plane") == plane_record(geo.plane)
    stored = context.head_probability()
    if stored is not None and geo.plane is not None:
        box, values = stored
        axis, index = geo.plane.axis, geo.plane.index
        if not box.lo[axis] <= index <= box.hi[axis]:
            stored = None
        else:  # the stored map's slice on the plane
            lo, hi = list(box.lo), list(box.hi)
            lo[axis] = hi[axis] = index
            cut = np.take(np.asarray(values).reshape(box.shape), [index - box.lo[axis]], axis)
            stored = (Box(tuple(lo), tuple(hi)), cut)
    if stored is None and current_mask_bbox is None:
        raise InvalidPrompt("the segment has nothing to refine here: start it with a `points` "
                            "interaction (interior margin points, method mideepseg), or with "
                            "any other method's start (a box, a click)")
    return stored, own


def _refine_roi(read_image, read_mask, geo: _Geometry, marks: Marks, params: MIDeepSegParams,
                stored: tuple[Box, np.ndarray] | None, own: bool, has_head: bool, roi: Box
                ) -> tuple[MethodResult, np.ndarray]:
    """One refinement on `roi`: (result, changed region, ROI-shaped)."""
    t0 = time.perf_counter()
    image = geo.squeeze(np.asarray(read_image(roi), dtype=np.float32).reshape(roi.shape))
    q, known = stored_in(roi, stored)
    head = (np.asarray(read_mask(roi), dtype=bool).reshape(roi.shape) if has_head
            else np.zeros(roi.shape, dtype=bool))
    hard_bg = _local(marks.bg, roi)
    # the margin points are foreground unless a (newer) background click sits on one
    clicked_fg = _local(marks.fg, roi)
    hard_fg = clicked_fg | (_local(marks.points, roi) & ~hard_bg)
    t1 = time.perf_counter()
    fg, bg, head2 = geo.squeeze(hard_fg), geo.squeeze(hard_bg), geo.squeeze(head)
    if head2.any():  # the head mask's prior, its stored map giving the confidence
        p = mask_prior(head2, geo.squeeze(q), geo.squeeze(known), params.prior_margin,
                       margin_bg=params.prior_margin_bg)
    else:  # an empty head (the CNN found nothing): its map as it is
        p = geo.squeeze(q)
    norm = normalize_percentiles(image)
    # a full-resolution maxflow on a whole-organ 3D ROI takes seconds; banded: same mask class
    cut = banded_graph_cut if p.size > params.coarse_voxels else graph_cut
    new_fg, new_bg = contradicted(fg, bg, head2)
    depth = depth_mm(new_fg, new_bg, head2, geo.spacing) or 0.0
    part = None  # 2D background clicks on tissue unlike the object: see unlike_spread
    if geo.plane is not None and new_bg.any() and not new_fg.any():
        part = unlike_part(norm, head2, new_bg, geo.spacing, params.unlike_smooth_mm,
                           params.unlike_spread)
    length_weight = _length_weight(new_fg, new_bg, head2, geo.spacing, depth, params)
    if params.refinement == "if-gc":
        seeds = fg if params.margin_points_as_clicks else geo.squeeze(clicked_fg)
        mask, _ = if_gc(p, zscore(image), norm, geo.spacing, seeds, bg, params.lamb, params.sigma,
                        params.absent_distance, cut, length_weight,
                        p.size > params.coarse_geodesic_voxels)
    else:
        mask = plain_gc(p, norm, geo.spacing, fg, bg, params.lamb, params.sigma, cut)
    mask[fg], mask[bg & ~fg] = True, False  # a no-op for graph_cut; the banded cut's coarse
    # labels far from the band could otherwise miss a click that shares a block with another
    # a background click removes only near itself; additions are the fusion's reach alone
    within = within_reach(np.zeros_like(new_fg), new_bg, geo.spacing, depth,
                          params.reach_depth, params.reach_margin_mm)
    if part is not None:  # the error is the head's part like the clicked tissue, not the
        # object tissue unlike it around (ct_3mm pancreas: a click on brighter tissue took 13
        # pancreas voxels within reach; docs/benchmarks.md, 2D box starts on held-out organs)
        near = within_reach(part, np.zeros_like(part), geo.spacing, 0.0, 0.0,
                            params.unlike_margin_mm)
        within = near if within is None else within & near
    if within is not None:
        within |= ~head2
    mask, region = local_merge(head2, mask, new_fg, new_bg, params.merge_margin, within)
    t2 = time.perf_counter()
    # this method's CNN map is carried as it is (zero outside the CNN box); another method's
    # head leaves its prior, which the next refinement reads as its map
    carried = q if own else np.asarray(p, dtype=np.float32).reshape(roi.shape)
    return (MethodResult(roi=roi, mask=mask.reshape(roi.shape), probability=carried,
                         timings={"roi": t1 - t0, params.refinement: t2 - t1},
                         info={"refinement": params.refinement,
                               "changed_marks": int(new_fg.sum() + new_bg.sum()),
                               "depth_mm": round(depth, 1),
                               **({} if part is None else {"unlike_voxels": int(part.sum())})}),
            region.reshape(roi.shape))


def _length_weight(new_fg: np.ndarray, new_bg: np.ndarray, head: np.ndarray, spacing,
                   depth: float, params: MIDeepSegParams) -> float:
    """D's length term per voxel step for a refinement: alpha = e^-D falls to 1/e over
    `influence_depth` x the new marks' depth in their error (refinement.depth_mm) of
    homogeneous tissue, at least `influence_mm`, at most `max_influence_mm`, as the model-free
    method's fusion weight does. So a click near the boundary is heard near it only: with the
    old floor of 1/`length_weight` = 10 voxels (20-30 mm on a 2-3 mm grid) a background click
    on the rim of a small structure outweighed the prior over all of it and removed it
    (issue 13: 2D held-out organs, drops up to 0.68). `length_weight` 0 keeps the paper's D."""
    if params.length_weight <= 0 or not (new_fg.any() or new_bg.any()):
        return params.length_weight
    step = float(np.mean(spacing))
    floor = max(step / params.length_weight, params.influence_mm)
    return step / reach_mm(floor, head, spacing, new_fg, depth, params.scale_fraction,
                           params.influence_depth,
                           max(params.max_influence_mm, params.influence_mm))


def refine(read_image: Callable[[Box], np.ndarray], read_mask: Callable[[Box], np.ndarray],
           geo: _Geometry, marks: Marks, params: MIDeepSegParams, context: SegmentContext,
           current_mask_bbox: Box | None) -> MethodResult:
    """IF-GC (or plain GC) refinement of the head revision (its mask and stored map) with all
    of the segment's clicks and margin points (`marks`, on the plane in 2D), local to the
    clicks the head contradicts (engine/refinement.py)."""
    stored, own = _to_refine(context, geo, current_mask_bbox)
    clicks = np.concatenate([marks.fg, marks.bg, marks.points]).reshape(-1, 3)
    lo = np.maximum(clicks.min(axis=0) - params.margin_voxels, 0)
    hi = np.minimum(clicks.max(axis=0) + params.margin_voxels, np.asarray(geo.shape) - 1)
    roi = _union(geo.box(lo[geo.keep], hi[geo.keep]), current_mask_bbox)
    if stored is not None:
        roi = _union(roi, stored[0])
    steps = [max(params.margin_voxels, 8)] * 3
    timings: dict[str, float] = {}
    for grown in range(params.max_grow + 1):
        result, region = _refine_roi(read_image, read_mask, geo, marks, params, stored, own,
                                     current_mask_bbox is not None, roi)
        for key, seconds in result.timings.items():
            timings[key] = timings.get(key, 0.0) + seconds
        faces = open_faces(region, roi, geo.shape, geo.plane)
        if not faces or grown == params.max_grow:
            break
        roi = grow(roi, faces, steps, geo.shape)
    result.timings = timings
    if grown:
        result.info["roi_grown"] = grown
    return result


def segment(read_image: Callable[[Box], np.ndarray], read_mask: Callable[[Box], np.ndarray],
            shape, spacing, marks: Marks, plane: Plane | None,
            params: MIDeepSegParams = MIDeepSegParams(), current_mask_bbox: Box | None = None,
            context: SegmentContext | None = None) -> MethodResult:
    """`points` in `context.kind`: initial segmentation from `marks.points`; otherwise a
    refinement of the head revision, whichever method made it. `marks` are the
    segment's cumulative marks on `plane` (all of them in 3D). Raises InvalidPrompt for too few
    points or nothing to refine (no mask, no stored map), ModelUnavailable when no model fits
    (dims, encoding)."""
    context = context or SegmentContext()
    marks = Marks(np.asarray(marks.fg).reshape(-1, 3), np.asarray(marks.bg).reshape(-1, 3),
                  list(marks.boxes), np.asarray(marks.points).reshape(-1, 3))
    check_on_plane(marks, plane)
    geo = _Geometry(shape, spacing, plane)
    if context.kind == "points":
        return initial(read_image, geo, marks.points, params, current_mask_bbox)
    return refine(read_image, read_mask, geo, marks, params, context, current_mask_bbox)


METHOD = Method(
    name=NAME,
    description="MIDeepSeg (Luo et al. 2021): a `points` interaction (interior margin points, "
                ">= 3) runs our trained 2D/3D U-Net on their relaxed box with a cue map "
                "(`encoding` picks the model, see /v1/models); `click`s then refine it by "
                "information fusion of the CNN probability with geodesic distances of all "
                "clicks and a graph cut (IF-GC, or `refinement: gc`); clicks refine any start "
                "locally (a `bifseg` box, a model-free click, an imported mask).",
    interaction_types=("points", "click"),
    dims=("2d", "3d"),
    params_type=MIDeepSegParams,
    run=segment,
)
