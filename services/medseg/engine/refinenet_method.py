"""RefineNet (refinenet-interactive-deep-refinement paper; issue 14 item 4) as one method,
`refinenet`, with two interaction types:

- `organ` (3D, no marks): the automatic start. The organ network (`organnet-2d`, the paper's
  backbone) segments the named organ on every axial slice (medseg.engine.organ); the mask is
  the largest 3D component of probability >= `threshold`, replacing the segment's mask (the
  result's ROI covers the old mask too); the probability is stored with the revision. An
  unknown organ is refused naming the ones the model knows.
- `click` / `scribble` (2D, on any start: an organ start, a click method's mask, an imported
  mask): the refinement network (`refinenet-2d`) takes the slice, the head mask as the initial
  result and Gaussian seed maps of all the segment's foreground / background marks on the slice,
  and answers a refined mask in the crop around the whole object (or, with `click_crop`, a
  click the head contradicts in a window around it at ~1 mm per grid voxel,
  refinenet_io.click_crop; with `crop_grow` < 0.5, a large object on a fine slice in a crop
  with less context around it, refinenet_io.fine_crop), snapped to the slice's edges by a
  graph cut at slice resolution with the answer as its unary (`snap`); it is applied as a
  local change under the
  refinement contract (engine/refinement.py): kept only in the connected components of
  additions that hold a foreground mark the head contradicts and of removals that hold such a
  background mark, so a click never changes anything away from the error it lands in; the
  marked voxels themselves always take their label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medseg.algorithms.graphcut import graph_cut
from medseg.algorithms.normalize import normalize_percentiles
from medseg.engine import organ as organ_engine
from medseg.engine.method import Method, MethodResult, SegmentContext
from medseg.engine.params import FRACTION, Range, check_params
from medseg.engine.prompts import Box, Marks, Plane, plane_spacing
from medseg.engine.refinement import contradicted, depth_mm, local_merge
from medseg.errors import InvalidPrompt
from medseg.models import refinenet_io
from medseg.models.loader import default_loader
from medseg.models.propagation_io import GROW

NAME = "refinenet"
REFINE_TASK = "refinement"
INTERACTIONS = ("organ", "click", "scribble")
SNAP_SCALE = 1.25  # slice voxels per grid voxel above which the answer is snapped


@dataclass(frozen=True)
class RefineNetParams:
    threshold: float = 0.5  # network probability that counts as foreground (both networks)
    merge_margin: int = 1  # voxels: a change this close to the marked component joins it
    # a click is heard up to this many times its depth in the error it corrects (mm; at least
    # `reach_min_mm`): the refiner's answer farther away is not kept (0: no limit)
    reach_depths: float = 3.0  # ratio: x the click's depth (mm) in its error
    reach_min_mm: float = 5.0  # mm: the least reach of a click, whatever its depth
    # a click the head contradicts answered in a window around it at ~1 mm per grid voxel
    # (refinenet_io.click_crop) rather than in the crop around the whole object; off by
    # default: on the held-out volume it did worse on the spleen (docs/benchmarks.md)
    click_crop: bool = False
    # the refiner's answer (computed on a grid that may be ~3 mm on a large organ) snapped to
    # the slice's own edges: a graph cut at slice resolution inside the crop with the
    # probability as its unary and the BIFSeg contrast term weighted `snap` (0: plain threshold)
    snap: float = 10.0  # pairwise weight of the snap's cut (per mm, as geodesic-graphcut)
    snap_sigma: float = 0.03  # its intensity scale, on the crop's [0, 1] normalised intensities
    # the object crop's context (a fraction of the object's longer side, shared by both sides)
    # where the usual crop (0.5, the value the refiner was trained with) puts the object on a
    # grid coarser than FINE_SCALE slice voxels per grid voxel (refinenet_io.fine_crop): less
    # context, so the whole outline is seen on a finer grid. Off (0.5) by default: on the
    # training-volume proxy it did not win (docs/benchmarks.md). With snapping on, the crop's
    # answer is the snap's cut and `threshold` does not enter it.
    crop_grow: float = 0.5  # ratio: x the object's longer side

    def __post_init__(self) -> None:
        check_params(self, {"threshold": FRACTION, "merge_margin": Range(0, 16),
                            "reach_depths": Range(0.0, 100.0),
                            "reach_min_mm": Range(0.0, 500.0), "snap": Range(0.0, 100.0),
                            "crop_grow": Range(0.0, 0.5),  # x the object's longer side
                            "snap_sigma": Range(0.001, 10.0, lo_open=True)})


def load_refiner():
    """(card, forward) of the refinement network (ModelUnavailable when it is not there)."""
    loader = default_loader()
    card = loader.find(REFINE_TASK, 2)
    session = loader.load(card).session
    name = session.get_inputs()[0].name
    return card, lambda x: session.run(None, {name: np.ascontiguousarray(x, np.float32)})[0]


def check_organ(organ: object) -> str:
    """The organ name, or InvalidPrompt naming the organs there are."""
    if not isinstance(organ, str) or organ not in refinenet_io.ORGANS:
        raise InvalidPrompt(f"unknown organ {organ!r}: {NAME} segments "
                            f"{', '.join(refinenet_io.ORGANS)}")
    return organ


def run_organ(read_image, shape, spacing, plane: Plane | None, organ: object,
              params: RefineNetParams, current_mask_bbox: Box | None) -> MethodResult:
    name = check_organ(organ)
    if plane is not None:
        raise InvalidPrompt("an organ start segments the whole volume: send dim '3d'")
    card, forward = organ_engine.load_backbone()
    whole = Box((0, 0, 0), tuple(int(n) - 1 for n in shape))
    probability = organ_engine.organ_probability(read_image(whole), spacing, name, forward)
    mask = organ_engine.organ_mask(probability, params.threshold)
    # the ROI: the new mask's box (one voxel of margin) and the old mask's, which it replaces
    points = np.argwhere(mask)
    boxes = [] if current_mask_bbox is None else [current_mask_bbox]
    if len(points):
        lo = np.maximum(points.min(axis=0) - 1, 0)
        hi = np.minimum(points.max(axis=0) + 1, np.asarray(shape) - 1)
        boxes.append(Box(tuple(int(v) for v in lo), tuple(int(v) for v in hi)))
    if not boxes:  # nothing found, nothing to clear: one voxel, unchanged
        boxes.append(Box((0, 0, 0), (0, 0, 0)))
    lo_all = np.min([b.lo for b in boxes], axis=0)
    hi_all = np.max([b.hi for b in boxes], axis=0)
    roi = Box(tuple(int(v) for v in lo_all), tuple(int(v) for v in hi_all))
    cut = tuple(slice(a, b + 1) for a, b in zip(roi.lo, roi.hi))
    return MethodResult(roi=roi, mask=mask[cut], probability=probability[cut],
                        info={"organ": name, "model": f"{card.name}@{card.version}",
                              "voxels": int(mask.sum())})


def without_grid_bands(head: np.ndarray, new: np.ndarray, crop) -> np.ndarray:
    """`new` without the thin bands along the head's boundary where it differs from the head
    only by the network grid's coarseness: the additions and the removals are each opened
    with a disc of half a grid voxel (in slice voxels). A large object's crop is coarser than
    the slice (a liver: ~3 slice voxels per grid voxel), and such a band, joined to the error
    component a click lands in, would come along with it under the local merge."""
    scale = max(crop.shape) / float(max(refinenet_io.INPUT_SIZE))
    radius = int(round(scale / 2.0))
    if radius < 1:
        return new
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    disc = yy ** 2 + xx ** 2 <= radius ** 2
    added = ndimage.binary_opening(new & ~head, disc)
    removed = ndimage.binary_opening(head & ~new, disc)
    return (head | added) & ~removed


def snapped(image: np.ndarray, probability: np.ndarray, answer: np.ndarray, crop, spacing,
            fg_mask: np.ndarray, bg_mask: np.ndarray, params: RefineNetParams) -> np.ndarray:
    """`answer` with the crop's part replaced by a graph cut at slice resolution: unary the
    refiner's probability (clipped away from 0 and 1), pairwise the BIFSeg contrast term on
    the crop's percentile-normalised intensities, the marks hard. Only where the network's
    grid is coarser than the slice (SNAP_SCALE): on a finer grid there is nothing to snap."""
    if refinenet_io.grid_scale(crop) <= SNAP_SCALE:
        return answer
    box = tuple(slice(max(lo, 0), min(lo + n, size))
                for lo, n, size in zip(crop.lo, crop.shape, probability.shape))
    if any(b.stop - b.start < 2 for b in box):
        return answer
    cut = graph_cut(np.clip(probability[box], 0.02, 0.98),
                    normalize_percentiles(np.asarray(image, np.float32)[box]), spacing,
                    hard_fg=fg_mask[box], hard_bg=bg_mask[box], lamb=params.snap,
                    sigma=params.snap_sigma)
    out = answer.copy()
    out[box] = cut
    return out


def refine_slice(image: np.ndarray, head: np.ndarray, fg: np.ndarray, bg: np.ndarray, spacing,
                 params: RefineNetParams, forward=None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(merged mask, changed region, probability) on a (Y, X) slice: the refiner's answer to
    the seeds `fg` / `bg` ((N, 2) slice voxels, all the segment's marks on the slice) with the
    head mask as the initial result, kept only where the refinement contract allows."""
    if forward is None:
        _, forward = load_refiner()
    head = np.asarray(head, dtype=bool)
    fg = np.asarray(fg, np.int64).reshape(-1, 2)
    bg = np.asarray(bg, np.int64).reshape(-1, 2)
    fg_mask = np.zeros(head.shape, bool)
    bg_mask = np.zeros(head.shape, bool)
    fg_mask[tuple(fg.T)] = True
    bg_mask[tuple(bg.T)] = True
    new_fg, new_bg = contradicted(fg_mask, bg_mask, head)
    window = refinenet_io.click_crop(head, np.argwhere(new_fg), np.argwhere(new_bg),
                                     spacing) if params.click_crop else None
    if window is None and params.crop_grow < GROW:
        window = refinenet_io.fine_crop(head, fg, bg, spacing, params.crop_grow)
    probability, crop = refinenet_io.predict_refinement(
        forward, image, head.astype(np.float32), fg, bg, spacing, window)
    answer = probability >= params.threshold
    if params.snap > 0:
        answer = snapped(image, probability, answer, crop, spacing, fg_mask, bg_mask, params)
    new = without_grid_bands(head, answer, crop)
    new = (new | fg_mask) & ~bg_mask
    if params.reach_depths > 0 and (new_fg.any() or new_bg.any()):
        # no depth when the slice holds nothing of the label asked for (a missed organ on
        # this slice): then the whole answer is heard
        depth = depth_mm(new_fg, new_bg, head, spacing)
        if depth is not None:
            reach = max(params.reach_depths * depth, params.reach_min_mm)
            far = ndimage.distance_transform_edt(~(new_fg | new_bg), sampling=spacing) > reach
            new = np.where(far, head, new)
    merged, changed = local_merge(head, new, new_fg, new_bg, params.merge_margin)
    return merged, changed, probability


def run(read_image, read_mask, shape, spacing, marks: Marks, plane: Plane | None,
        params: RefineNetParams, current_mask_bbox: Box | None,
        context: SegmentContext) -> MethodResult:
    if context.kind == "organ":
        return run_organ(read_image, shape, spacing, plane, context.options.get("organ"),
                         params, current_mask_bbox)
    if context.kind not in ("click", "scribble"):
        raise InvalidPrompt(f"method {NAME!r} does not take {context.kind!r} interactions")
    if plane is None:
        raise InvalidPrompt(f"{NAME} refines on a 2D slice: send dim '2d' with a plane")
    fg, bg = plane.drop_axis(marks.fg), plane.drop_axis(marks.bg)
    if len(fg) + len(bg) == 0:
        raise InvalidPrompt(f"a {context.kind} needs at least one mark")
    card, forward = load_refiner()
    whole = plane.whole(shape)
    image = read_image(whole).squeeze(plane.axis)
    head = read_mask(whole).squeeze(plane.axis)
    merged, changed, probability = refine_slice(image, head, fg, bg,
                                                plane_spacing(spacing, plane), params, forward)
    points = np.argwhere(changed)
    if len(points) == 0:  # the marks agree with the mask: nothing changes (one voxel)
        points = np.concatenate([fg, bg])[-1:]
    lo2, hi2 = points.min(axis=0), points.max(axis=0)
    lo = np.insert(lo2, plane.axis, plane.index)
    hi = np.insert(hi2, plane.axis, plane.index)
    roi = Box(tuple(int(v) for v in lo), tuple(int(v) for v in hi))
    cut = (slice(lo2[0], hi2[0] + 1), slice(lo2[1], hi2[1] + 1))
    return MethodResult(roi=roi, mask=np.expand_dims(merged[cut], plane.axis),
                        probability=np.expand_dims(probability[cut], plane.axis).astype(
                            np.float32),
                        info={"model": f"{card.name}@{card.version}",
                              "voxels_changed": int(changed.sum())})


METHOD = Method(
    name=NAME,
    description="RefineNet: `organ` starts a segment with no interaction (the organ network "
                f"segments one of {', '.join(refinenet_io.ORGANS)} on every axial slice); "
                "2D clicks and scribbles on any start are answered by the refinement network "
                "(image, initial mask, Gaussian seed maps) as a local change of the mask.",
    interaction_types=INTERACTIONS,
    dims=("2d", "3d"),  # organ: 3d; clicks and scribbles: 2d
    params_type=RefineNetParams,
    run=run,
)
