"""3D segmentation from the strong 2D networks (issue 13, item 2): a 3D box or a set of 3D
interior margin points segments the object slice by slice in the plane of highest resolution.

1. **Slice axis**: the axis with the coarsest spacing (slices 3-7 mm thick in MR and oncology
   CT); its slices are the planes of highest resolution. Ties: z.
2. **Start slice**, where the object is largest:
   - box: the 2D P-Net (`bifseg`, engine/bifseg_method.py) with the box's cross-section runs on
     the `candidates` slices nearest the box's middle; the slice with the largest foreground
     inside the cross-section wins (ties: nearest the middle);
   - points: the slice holding the most points when it holds >= 3 (MIDeepSeg's minimum), else
     the median slice of the points with the points that are not extreme along the slice axis
     projected onto it; MIDeepSeg 2D (engine/mideepseg_method.py) segments it from them.
3. **Propagation** with the fused slice predictor (engine/propagation_net.py
   `propnet-2d-seeds`, one slice from the previous slice's mask through
   `propagation.predict_slice`) in both directions, inside the box's extent (points: their
   extent along the axis plus `points_margin_mm`, in-plane their bounding box plus the same
   margin), stopping where the object ends (the predictor's own end test, or an area below
   `min_area_mm2` / `min_area_ratio` of the previous slice).
4. **Re-fit** (`pnet_weight`): P-Net runs again on each propagated slice with the box
   around that slice's propagated mask (+ `refit_margin` voxels) and its probability is
   averaged in: propagation finds where the object is on each slice, the 2D network where its
   boundary is. A first click may re-fit only the start slice and the slices the
   propagation was unsure of (`click_refit_confidence`, off by default).
5. **Box cue** (box only, `geodesic_weight`): geodesic-graphcut's 3D box unary (its geodesic
   cue from the box's centre third, engine/graphcut_method.py) is averaged in: on the
   anisotropic benchmark objects the slice-wise cue alone (Dice 0.70 at the start) lost to the
   model-free box (0.79); together 0.79 (docs/benchmarks.md).
6. **Tie**: one 3D graph cut (algorithms/graphcut.py, BIFSeg pairwise term, neighbour weights
   per mm so thick slices couple weakly) over the ROI with the slice-wise probabilities as
   unary; slices the propagation did not reach get p = `outside`, voxels outside the box are
   hard background. The components touching the start slice's mask are kept.

The result is one revision like any 3D start: its mask and the unary as the stored
probability, so any click method (`geodesic-graphcut`, `mideepseg`) refines it under the
refinement contract (engine/refinement.py). On a segment with a mask, a box re-segments its
inside only and only adds outside it (as `bifseg`). Arrays are (z, y, x) voxels.

**A first click** (an empty segment, `click_start`): step 2 is geodesic-graphcut's 2D click on
the click's slice; the propagation is bounded in-plane by that mask's box grown by
`click_margin_mm` / `click_margin_fraction` (along the axis by the image, or `click_reach_*`),
the ROI spans the slices it reached, and step 5 mixes in geodesic-graphcut's 3D click unary
(`click_geodesic_weight`) instead of the box's. The two propagation directions (each with
its P-Net re-fits) and the geodesic cue run at the same time on `WORKERS` threads (their
networks and geodesic scans release the GIL); the answer is the sequential one bit for bit.

**A click on a segment with a mask** (`correct`, `start: slicewise`): the click corrects its own
slice in 2D (geodesic-graphcut's 2D refinement under the refinement contract), then re-propagates
only the neighbouring slices that it changes, inside the object's extent and near the click
(the corrected slice's change column, within its equivalent radius along the axis, with the
click's sign; the 2D correction adds only where geodesic-graphcut's 3D click does); every other
voxel is the head's bit for bit. `start: auto` refines with geodesic-graphcut's 3D click
instead (it won on the benchmarks); `auto` takes the slice-by-slice first click (it won there).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from medseg.algorithms.encodings import ENCODINGS
from medseg.algorithms.graphcut import banded_graph_cut, graph_cut
from medseg.algorithms.normalize import normalize_percentiles
from medseg.engine import bifseg_method, graphcut_method, mideepseg_method
from medseg.engine.method import Method, MethodResult, SegmentContext
from medseg.engine.params import FRACTION, LAMB, SIGMA, Range, check_params
from medseg.engine.prompts import Box, Marks, Plane
from medseg.engine.propagation import PropagationParams, predict_slice
from medseg.engine.propagation_net import (
    FusedParams,
    FusedPredictor,
    PropNetParams,
    PropNetPredictor,
)
from medseg.engine.refinement import contradicted, mask_prior, stored_in
from medseg.engine.slice_predictors import SeedGraphCut, SeedGraphCutParams
from medseg.errors import InvalidPrompt
from medseg.models import bifseg_io

NAME = "slicewise"
STARTS = ("auto", "slicewise", "volumetric")
# what `start: auto` does per case type: the start that won on the benchmarks
# (docs/benchmarks.md, "3D from the 2D networks"); "volumetric" is the best current 3D start
# of that kind: geodesic-graphcut's 3D box, MIDeepSeg's 3D network from the points. A box went
# slice by slice on thick slices (>= 2x the in-plane spacing) until geodesic-graphcut's 3D box
# start got its robust intensity model: since then the two tie on the 5 x 2 and 6 x 3 mm sets
# (Dice@5 within 0.01) and the model-free box wins on the isotropic ones, at a tenth of the time
# (docs/benchmarks.md, "3D box start on held-out organs and volumes").


def auto_start(kind: str, spacing) -> str:
    """"slicewise" or "volumetric" for a `kind` start on this spacing: "box", "points",
    "click" (a first click) or "correct" (a click on a segment with a mask). No start depends
    on the spacing at present (every measured geometry chose the same)."""
    del spacing  # kept in the signature: the case type is the kind and the geometry
    if kind == "click":  # won on the held-out organs and volumes (docs/benchmarks.md)
        return "slicewise"
    return "volumetric"  # box, points, and a click on a mask (the 3D refinement click won)


PREDICTORS = ("propnet-2d-seeds", "propnet-2d", "graphcut-seeds")
COMPARES = ("remove", "both", "none")
CORRECT_SLICES = ("2d", "3d", "both")
COARSE_VOXELS = 1_000_000  # larger ROIs: banded (coarse-to-fine) 3D graph cut


@dataclass(frozen=True)
class SlicewiseParams:
    start: str = "auto"  # "slicewise", "volumetric" (the 3D start it stands in for), "auto":
    # per case type (`auto_start`)
    axis: int = -1  # slice axis 0/1/2 (z/y/x); -1: the coarsest spacing
    candidates: int = 5  # count: P-Net on this many central slices, the largest fg wins (box)
    margin: int = bifseg_io.BOX_MARGIN  # P-Net's crop: the box + this many voxels (bifseg's)
    encoding: str = "egd"  # points: the MIDeepSeg 2D model's cue encoding
    predictor: str = "propnet-2d-seeds"  # the slice predictor that propagates
    network_weight: float = 0.5  # ratio 0..1: propnet-2d-seeds' network weight in its unary
    min_area_mm2: float = 2.0  # a propagated slice smaller than this: the object has ended
    min_area_ratio: float = 0.1  # ... or smaller than this fraction of the previous slice
    roi_margin_mm: float = 30.0  # the predictor sees the prior's bbox plus this margin
    points_margin_mm: float = 5.0  # points: extent around the points (along the axis too)
    tie: bool = True  # the 3D graph cut over the slice-wise probabilities (False: p >= 0.5)
    lamb: float = 2.0  # its pairwise weight (per mm, as geodesic-graphcut)
    sigma: float = 0.1  # its intensity scale on [0, 1] intensities
    outside: float = 0.05  # probability: the unary on slices the propagation did not reach
    geodesic_weight: float = 0.85  # ratio 0..1: geodesic-graphcut's 3D box unary in the tie
    pnet_weight: float = 0.5  # ratio 0..1: P-Net re-run on each propagated slice's box
    refit_margin: int = 3  # ... that box: the propagated mask's bounding box + this (voxels)
    # a first click (an empty segment): its slice in 2D, then the same propagation and tie
    click_pnet: float = 0.0  # ratio 0..1: P-Net on the 2D click mask's box, averaged in
    click_margin_mm: float = 20.0  # in-plane reach: the start mask's box + the larger of this
    click_margin_fraction: float = 0.5  # ... and this fraction of its extent
    click_reach_mm: float = 0.0  # reach along the slice axis each way; 0: the image
    click_reach_ratio: float = 0.0  # ratio: ... or this many times the start mask's equivalent
    # diameter (the smaller of the two bounds); 0: none
    click_geodesic_weight: float = 0.5  # ratio 0..1: geodesic-graphcut's 3D click unary, tie
    click_pnet_weight: float = 0.3  # ratio 0..1: `pnet_weight` (step 4) for a first click
    # mean |2p - 1| 0..1 near the mask: a first click re-fits only the slices whose
    # propagation confidence is below this; above 1 (the default): every slice. 0.55 (the
    # propagation's own low_confidence flag) saves a third of the first click's time at the
    # same held-out Dice@10, but the optional slice-correcting `slicewise` clicks that follow
    # then drop Dice by > 0.05 on 2 % of held-out-volume clicks (1 % with every slice), so it
    # is an option (docs/benchmarks.md, "slicewise first click: re-fit uncertain slices only")
    click_refit_confidence: float = 2.0
    click_passes: int = 1  # count; 2: propagate again from the tie's start slice if moved ...
    click_pass_dice: float = 0.8  # Dice 0..1: ... below this against the 2D click's mask
    # a click on a segment with a mask: its slice in 2D, then the neighbours it changes
    correct_margin: int = 2  # voxels: a neighbour's change must touch the previous one's + this
    correct_min_voxels: int = 1  # the walk stops at a slice changing fewer voxels than this
    correct_compare: str = "remove"  # a neighbour loses ("remove"; gains too: "both") only
    # voxels where the predictions from the corrected slice and from it before the click
    # differ; "none": wherever the prediction from the corrected slice differs from it
    correct_components: bool = False  # take whole components of a neighbour's change that
    # touch the previous one's (True) or only its part within `correct_margin` (False)
    correct_reach_ratio: float = 0.5  # ratio: re-propagate at most this x the equivalent
    # diameter (mm) of the corrected slice's change away from it along the axis (0.5: its
    # radius each way, the clicked error's 3D extent as its in-plane one); 0: to the end of
    # the object. Within that reach a neighbour changes only inside the corrected slice's
    # change dilated by `correct_margin` (its column): the walk cannot drift off the error

    correct_slice: str = "both"  # the clicked slice's correction: geodesic-graphcut's 2D
    # refinement on it ("2d") or its 3D refinement click's mask on that slice ("3d")

    def __post_init__(self) -> None:
        check_params(self, _RANGES)
        if self.correct_slice not in CORRECT_SLICES:
            raise ValueError(f"correct_slice must be one of {list(CORRECT_SLICES)}, "
                             f"got {self.correct_slice!r}")
        if self.start not in STARTS:
            raise ValueError(f"start must be one of {list(STARTS)}, got {self.start!r}")
        if self.predictor not in PREDICTORS:
            raise ValueError(f"predictor must be one of {list(PREDICTORS)}, "
                             f"got {self.predictor!r}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {list(ENCODINGS)}, "
                             f"got {self.encoding!r}")
        if self.correct_compare not in COMPARES:
            raise ValueError(f"correct_compare must be one of {list(COMPARES)}, "
                             f"got {self.correct_compare!r}")
        if self.min_area_ratio >= 1:
            raise ValueError("min_area_ratio must be < 1 (every slice would end the object)")


_RANGES = {
    "axis": Range(-1, 2),
    "candidates": Range(1, 64),  # P-Net runs: each costs a network call
    "margin": Range(0, 64),  # as bifseg's
    "network_weight": FRACTION,
    "min_area_mm2": Range(0.0, 1e6),  # a square metre: no slice of a body holds more
    "min_area_ratio": FRACTION,
    "roi_margin_mm": Range(1.0, 500.0),
    "points_margin_mm": Range(0.0, 100.0),
    "lamb": LAMB, "sigma": SIGMA,
    "outside": Range(0.0, 0.5),  # above 0.5 an unreached slice would be foreground
    "geodesic_weight": FRACTION, "pnet_weight": FRACTION, "refit_margin": Range(0, 64),
    "click_pnet": FRACTION, "click_geodesic_weight": FRACTION, "click_pnet_weight": FRACTION,
    "click_refit_confidence": Range(0.0, 2.0),  # above 1: every slice
    "click_passes": Range(1, 2), "click_pass_dice": FRACTION,
    "click_margin_mm": Range(0.0, 500.0), "click_margin_fraction": Range(0.0, 10.0),
    # 0: unbounded; 5 m is longer than any body
    "click_reach_mm": Range(0.0, 5000.0), "click_reach_ratio": Range(0.0, 100.0),
    "correct_margin": Range(0, 64), "correct_min_voxels": Range(1, 1_000_000),
    "correct_reach_ratio": Range(0.0, 100.0),
}


def slice_axis(spacing, axis: int = -1) -> int:
    """The slice axis: `axis` when given, else the one with the coarsest spacing (ties: the
    first, z): its slices are the planes of the highest in-plane resolution."""
    if axis >= 0:
        return axis
    sp = np.asarray(spacing, dtype=float)
    return int(np.flatnonzero(sp >= sp.max() - 1e-6)[0])


def central_slices(lo: int, hi: int, count: int) -> list[int]:
    """Up to `count` slice indices in lo..hi, nearest the middle first."""
    middle = (lo + hi) / 2.0
    return sorted(range(lo, hi + 1), key=lambda i: (abs(i - middle), i))[:count]


def largest_slice(areas: dict[int, int], lo: int, hi: int) -> int:
    """The index with the largest area; ties go to the one nearest the middle of lo..hi."""
    middle = (lo + hi) / 2.0
    return max(areas, key=lambda i: (areas[i], -abs(i - middle), -i))


def points_slice(points: np.ndarray, axis: int, minimum: int = 3) -> tuple[int, np.ndarray]:
    """(start slice, (N, 3) points on it) from 3D interior margin points: the slice holding
    the most points if it holds >= `minimum`, else the median slice with the points that are
    not extreme along `axis` (those mark where the object ends, not its outline) projected
    onto it. Duplicates after projection are dropped."""
    pts = np.asarray(points, dtype=np.int64).reshape(-1, 3)
    values, counts = np.unique(pts[:, axis], return_counts=True)
    best = int(values[np.argmax(counts)])
    if counts.max() >= minimum:
        return best, pts[pts[:, axis] == best]
    index = int(np.round(np.median(pts[:, axis])))
    keep = pts
    if len(pts) >= minimum + 2:
        order = np.argsort(pts[:, axis], kind="stable")
        keep = pts[order[1:-1]]
    projected = keep.copy()
    projected[:, axis] = index
    return index, np.unique(projected, axis=0)


def _plane_box(shape, axis: int, index: int, lo2, hi2) -> Box:
    lo, hi = [int(v) for v in lo2], [int(v) for v in hi2]
    lo.insert(axis, index)
    hi.insert(axis, index)
    return Box(tuple(lo), tuple(hi))


def _drop(values, axis: int) -> list:
    return [v for a, v in enumerate(values) if a != axis]


def _in_plane(box: Box, axis: int) -> tuple[slice, ...]:
    """The 2D slices of a slice-plane array that `box` (3D, inclusive) covers."""
    return tuple(slice(a, b + 1) for a, b in zip(_drop(box.lo, axis), _drop(box.hi, axis)))


def _cross_section(plane_shape, lo2, hi2) -> np.ndarray:
    cross = np.zeros(plane_shape, dtype=bool)
    cross[lo2[0]:hi2[0] + 1, lo2[1]:hi2[1] + 1] = True
    return cross


def _component_touching(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The connected components (full connectivity) of `mask` that touch `seed`; the largest
    when none does."""
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    labels, count = ndimage.label(mask, structure)
    if count <= 1:
        return mask
    hit = np.unique(labels[seed & mask])
    hit = hit[hit > 0]
    if len(hit) == 0:
        hit = np.array([1 + int(np.argmax(ndimage.sum(mask, labels, range(1, count + 1))))])
    return np.isin(labels, hit)


@dataclass
class StartSlice:
    index: int
    mask: np.ndarray  # bool, the whole slice
    probability: np.ndarray  # float32, the whole slice
    areas: dict[int, int] = field(default_factory=dict)  # box: voxels per candidate slice


def _pnet_slice(read_image, shape, spacing, box: Box, axis: int, index: int,
                params: SlicewiseParams) -> np.ndarray:
    """P-Net's probability (whole slice, 0 outside the box's cross-section) on one slice."""
    plane_shape = tuple(_drop(shape, axis))
    cross = _cross_section(plane_shape, _drop(box.lo, axis), _drop(box.hi, axis))
    run = bifseg_method.run_box(read_image, shape, spacing, box, Plane(axis, index),
                                params.margin)
    prob = np.zeros(plane_shape, dtype=np.float32)
    roi2 = _in_plane(run.roi, axis)
    prob[roi2] = np.clip(np.squeeze(run.to_roi(run.state.probability), axis=axis), 0, 1)
    prob[~cross] = 0.0
    return prob


def box_start(read_image: Callable[[Box], np.ndarray], shape, spacing, box: Box, axis: int,
              params: SlicewiseParams) -> StartSlice:
    """P-Net with the box's cross-section on the central slices; the largest one wins."""
    plane_shape = tuple(_drop(shape, axis))
    lo2, hi2 = _drop(box.lo, axis), _drop(box.hi, axis)
    cross = _cross_section(plane_shape, lo2, hi2)
    found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for index in central_slices(box.lo[axis], box.hi[axis], params.candidates):
        plane = Plane(axis, index)
        run = bifseg_method.run_box(read_image, shape, spacing, box, plane, params.margin)
        prob = np.zeros(plane_shape, dtype=np.float32)
        roi2 = _in_plane(run.roi, axis)
        prob[roi2] = np.clip(np.squeeze(run.to_roi(run.state.probability), axis=axis), 0, 1)
        prob[~cross] = 0.0
        found[index] = (prob > 0.5, prob)
    areas = {i: int(m.sum()) for i, (m, _) in found.items()}
    best = largest_slice(areas, box.lo[axis], box.hi[axis])
    if areas[best] == 0:
        raise InvalidPrompt("the 2D network found no object in the box's central slices: "
                            "draw the box around the object")
    mask, prob = found[best]
    return StartSlice(best, _component_touching(mask, np.zeros_like(mask)), prob, areas)


def points_start(read_image: Callable[[Box], np.ndarray], shape, spacing, points: np.ndarray,
                 axis: int, params: SlicewiseParams) -> StartSlice:
    """MIDeepSeg 2D from the points on (or projected onto) the start slice."""
    index, on_slice = points_slice(points, axis, mideepseg_method.MIN_POINTS)
    if len(on_slice) < mideepseg_method.MIN_POINTS:
        raise InvalidPrompt(f"{NAME} needs at least {mideepseg_method.MIN_POINTS} interior "
                            f"margin points that outline the object, got {len(on_slice)}")
    plane = Plane(axis, index)
    geo = mideepseg_method._Geometry(shape, spacing, plane)
    result = mideepseg_method.initial(read_image, geo, on_slice,
                                      mideepseg_method.MIDeepSegParams(encoding=params.encoding),
                                      None)
    plane_shape = tuple(_drop(shape, axis))
    prob = np.zeros(plane_shape, dtype=np.float32)
    roi2 = _in_plane(result.roi, axis)
    prob[roi2] = np.squeeze(result.probability, axis=axis)
    mask = prob > 0.5
    seeds = np.zeros(plane_shape, dtype=bool)
    seeds[tuple(plane.drop_axis(on_slice).T)] = True
    if not mask.any():
        raise InvalidPrompt("MIDeepSeg found no object from the points on the start slice")
    return StartSlice(index, _component_touching(mask, seeds), prob)


def make_predictor(params: SlicewiseParams, start_image: np.ndarray, start_mask: np.ndarray,
                   spacing2):
    if params.predictor == "propnet-2d":
        return PropNetPredictor(PropNetParams(), start_image, start_mask, spacing2)
    if params.predictor == "graphcut-seeds":
        return SeedGraphCut(SeedGraphCutParams(), start_image, start_mask, spacing2)
    return FusedPredictor(FusedParams(network_weight=params.network_weight), start_image,
                          start_mask, spacing2)


@dataclass
class Propagated:
    masks: dict[int, np.ndarray]  # slice index -> bool whole-slice mask (start slice included)
    probabilities: dict[int, np.ndarray]  # ... -> float32 whole-slice probability
    ends: dict[int, int | None]  # direction -> the slice where the object ended (None: bound)
    confidences: dict[int, float] = field(default_factory=dict)  # slice -> mean |2p - 1| near
    # its mask (propagation.predict_slice); the start slice has none
    refits: dict[int, np.ndarray] = field(default_factory=dict)  # slice -> what `refit`
    # answered for it (P-Net's whole-slice probability), where it answered one


# A first click's parts that run while the GIL is free (onnxruntime's runs, the numba geodesic
# scan, scipy.ndimage; PyMaxflow's cuts hold it, docs/benchmarks.md "slicewise first click:
# ... branch sw3fast") overlap on these threads: the two propagation directions and the
# geodesic cue. Each task's result depends only on its inputs, so the answer is the
# sequential one bit for bit; 0: everything runs on the calling thread, in order.
WORKERS = 2  # count: threads shared by every request of the process (a fixed, small pool)
_pools: dict[int, ThreadPoolExecutor] = {}  # WORKERS -> its pool (tests may change WORKERS)
_pools_lock = threading.Lock()


class _Inline:
    """An executor that runs each task at once on the calling thread (WORKERS = 0)."""

    def submit(self, fn, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to .result(), as a pool's future does
            future.set_exception(exc)
        return future


def set_workers(count: int) -> None:
    """The worker thread count of this process (the server's `MEDSEG_ENGINE_THREADS`): a busy
    server whose other requests already fill the cores gains nothing from overlapping one
    request's parts, and PyMaxflow's cuts holding the GIL then make it slower (0: in order)."""
    global WORKERS
    if count < 0:
        raise ValueError(f"worker threads must be >= 0, got {count}")
    WORKERS = int(count)


def _executor() -> ThreadPoolExecutor | _Inline:
    """The process's worker threads (made on first use: a compute process is spawned, so it
    inherits none), or `_Inline` when WORKERS is 0. Tasks submitted here never wait for other
    tasks of it, so requests sharing it queue but cannot deadlock."""
    if WORKERS < 1:
        return _Inline()
    with _pools_lock:
        if WORKERS not in _pools:
            _pools[WORKERS] = ThreadPoolExecutor(WORKERS, thread_name_prefix="medseg-slicewise")
        return _pools[WORKERS]


@dataclass
class _Walk:
    """One direction of a propagation: its slices in order, where it ended."""

    masks: dict[int, np.ndarray] = field(default_factory=dict)
    probabilities: dict[int, np.ndarray] = field(default_factory=dict)
    confidences: dict[int, float] = field(default_factory=dict)
    refits: dict[int, np.ndarray] = field(default_factory=dict)
    end: int | None = None


def _walk(read_image, shape, axis: int, start: StartSlice, predictor, lo: int, hi: int,
          cross: np.ndarray, params: SlicewiseParams, prop: PropagationParams, sp2,
          direction: int, refit) -> _Walk:
    """Propagate the start slice's mask one way until the object ends or lo..hi does;
    `refit(index, mask, confidence)` runs on each kept slice as soon as it is predicted."""
    out = _Walk()
    pixel = sp2[0] * sp2[1]
    prior, index = start.mask, start.index + direction
    while lo <= index <= hi:
        mask, confidence, prob = predict_slice(read_image, shape, axis, index, prior,
                                               predictor, sp2, prop)
        out.confidences[index] = confidence
        mask &= cross
        prob = np.where(cross, prob, 0).astype(np.float32)
        area = float(mask.sum()) * pixel
        if area < prop.min_area_mm2 or area < prop.min_area_ratio * prior.sum() * pixel:
            out.end = index
            out.probabilities[index] = np.minimum(prob, params.outside)
            break
        out.masks[index], out.probabilities[index] = mask, prob
        if refit is not None:
            fitted = refit(index, mask, confidence)
            if fitted is not None:
                out.refits[index] = fitted
        prior, index = mask, index + direction
    return out


def propagate_within(read_image: Callable[[Box], np.ndarray], shape, spacing, axis: int,
                     start: StartSlice, predictor, lo: int, hi: int, cross: np.ndarray,
                     params: SlicewiseParams, refit=None) -> Propagated:
    """Propagate the start slice's mask both ways within slices lo..hi and the in-plane
    `cross` section, slice by slice, until the object ends. The two ways are independent:
    towards -axis on a worker thread (`_executor`) while the caller walks towards +axis; the
    slices are merged in the sequential order (+axis, then -axis). `refit(index, mask,
    confidence)`, if given, runs on each kept propagated slice in its walk (a value other
    than None is kept in `refits`)."""
    sp2 = tuple(float(s) for s in _drop(spacing, axis))
    prop = PropagationParams(min_area_mm2=params.min_area_mm2,
                             min_area_ratio=params.min_area_ratio,
                             roi_margin_mm=params.roi_margin_mm)
    args = (read_image, shape, axis, start, predictor, lo, hi, cross, params, prop, sp2)
    down = _executor().submit(_walk, *args, -1, refit)
    walks = {1: _walk(*args, 1, refit), -1: down.result()}
    masks = {start.index: start.mask}
    probs = {start.index: np.where(cross, start.probability, 0).astype(np.float32)}
    done = Propagated(masks, probs, {})
    for direction in (1, -1):
        walk = walks[direction]
        done.masks.update(walk.masks)
        done.probabilities.update(walk.probabilities)
        done.confidences.update(walk.confidences)
        done.refits.update(walk.refits)
        done.ends[direction] = walk.end
    return done


def tie_slices(unary: np.ndarray, image: np.ndarray, spacing, allowed: np.ndarray,
               seed: np.ndarray, lamb: float, sigma: float) -> np.ndarray:
    """The 3D graph cut of the stacked slice-wise probabilities (ROI arrays (z, y, x)):
    outside `allowed` hard background; the components touching `seed` are kept."""
    norm = normalize_percentiles(np.asarray(image, dtype=np.float32))
    cut = banded_graph_cut if unary.size > COARSE_VOXELS else graph_cut
    mask = cut(unary, norm, list(spacing), None, ~allowed, lamb, sigma)
    if not mask.any():
        return mask
    return _component_touching(mask, seed)


def _geodesic_cue(read_image, read_mask, shape, spacing, marks: Marks,
                  kind: str) -> tuple[Box, np.ndarray]:
    """(ROI, float32 probability) of geodesic-graphcut's 3D unary from the same start (a box:
    its centre third as foreground seed, its outside as background; a click: the click, the
    ROI border as weak background). It depends on the marks only, not on the propagation, so
    a first click computes it on a worker thread meanwhile."""
    params = graphcut_method.GraphCutParams(max_grow=0)
    if kind == "click":  # only the unary is fused: no graph cut (graphcut_method.click_cue)
        return graphcut_method.click_cue(read_image, shape, spacing, marks, params)
    # a box start's unary depends on its cut (the refit to the first mask)
    result = graphcut_method.segment(read_image, read_mask, shape, spacing, marks, None,
                                     params, None, SegmentContext(kind))
    return result.roi, result.probability


def _fuse_geodesic(unary: np.ndarray, roi: Box, stored: tuple[Box, np.ndarray],
                   weight: float) -> np.ndarray:
    """(1 - weight) unary + weight x the geodesic cue `stored` (`_geodesic_cue`) where that
    cue covers the ROI; `unary` elsewhere."""
    q, known = stored_in(roi, stored)
    return np.where(known, (1 - weight) * unary + weight * q, unary).astype(np.float32)


def _volumetric(read_image, read_mask, shape, spacing, marks: Marks, params: SlicewiseParams,
                current_mask_bbox: Box | None, context: SegmentContext) -> MethodResult:
    """The 3D start this method stands in for: geodesic-graphcut's 3D box or click (a click on
    a segment with a mask: its 3D refinement), or MIDeepSeg's 3D network from the points."""
    if context.kind in ("box", "click"):
        if context.kind == "box" and not marks.boxes:
            raise InvalidPrompt(f"method {NAME!r} needs a box, points or a click")
        given = (Marks(boxes=[marks.boxes[-1]]) if context.kind == "box"
                 else Marks(np.asarray(marks.fg).reshape(-1, 3),
                            np.asarray(marks.bg).reshape(-1, 3)))
        return graphcut_method.segment(read_image, read_mask, shape, spacing, given, None,
                                       graphcut_method.GraphCutParams(), current_mask_bbox,
                                       context)
    return mideepseg_method.segment(read_image, read_mask, shape, spacing,
                                    Marks(points=np.asarray(marks.points).reshape(-1, 3)), None,
                                    mideepseg_method.MIDeepSegParams(encoding=params.encoding),
                                    current_mask_bbox, SegmentContext("points"))


def _plane_result(result: MethodResult, axis: int, plane_shape) -> tuple[np.ndarray, np.ndarray]:
    """(whole-slice bool mask, whole-slice float32 probability) of a 2D method's result."""
    roi2 = _in_plane(result.roi, axis)
    mask = np.zeros(plane_shape, dtype=bool)
    prob = np.zeros(plane_shape, dtype=np.float32)
    mask[roi2] = np.squeeze(result.mask, axis=axis)
    prob[roi2] = np.squeeze(result.probability, axis=axis)
    return mask, prob


def click_start(read_image: Callable[[Box], np.ndarray], read_mask, shape, spacing,
                marks: Marks, axis: int, params: SlicewiseParams) -> StartSlice:
    """A 3D click on an empty segment: the slice holding the most foreground clicks (ties:
    the first) is segmented in 2D by geodesic-graphcut's 2D click from the clicks on it; with
    `click_pnet` > 0, P-Net re-runs on the box of that mask (+ `refit_margin`) and its
    probability is averaged in with that weight (the 2D click finds the object, the network
    its edge)."""
    fg = np.asarray(marks.fg, dtype=np.int64).reshape(-1, 3)
    if len(fg) == 0:
        raise InvalidPrompt(f"a {NAME} click start needs a foreground click on the object")
    values, counts = np.unique(fg[:, axis], return_counts=True)
    index = int(values[np.argmax(counts)])
    plane = Plane(axis, index)
    on = marks.on_plane(plane)
    plane_shape = tuple(_drop(shape, axis))
    result = graphcut_method.segment(read_image, read_mask, shape, spacing,
                                     Marks(np.asarray(on.fg).reshape(-1, 3),
                                           np.asarray(on.bg).reshape(-1, 3)),
                                     plane, graphcut_method.GraphCutParams(), None,
                                     SegmentContext("click"))
    mask, prob = _plane_result(result, axis, plane_shape)
    seeds = np.zeros(plane_shape, dtype=bool)
    seeds[tuple(plane.drop_axis(on.fg).T)] = True
    if params.click_pnet > 0 and mask.any():
        rows, cols = np.nonzero(mask)
        m = params.refit_margin
        fit = _plane_box(shape, axis, index,
                         [max(int(rows.min()) - m, 0), max(int(cols.min()) - m, 0)],
                         [min(int(rows.max()) + m, plane_shape[0] - 1),
                          min(int(cols.max()) + m, plane_shape[1] - 1)])
        pnet = _pnet_slice(read_image, shape, spacing, fit, axis, index, params)
        prob = ((1 - params.click_pnet) * prob + params.click_pnet * pnet).astype(np.float32)
        mask = (prob > 0.5) | seeds
    if not mask.any():
        raise InvalidPrompt(f"{NAME} found no object at the click")
    return StartSlice(index, _component_touching(mask, seeds), prob)


def _click_extent(start: StartSlice, shape, spacing, axis: int, params: SlicewiseParams
                  ) -> tuple[int, int, list[int], list[int]]:
    """(lo, hi, in-plane lo, in-plane hi) a click start may reach: along the axis the image
    (or `click_reach_mm` each way), in-plane the start mask's box grown by the larger of
    `click_margin_mm` and `click_margin_fraction` x its extent."""
    plane_shape = tuple(_drop(shape, axis))
    sp2 = np.asarray(_drop(spacing, axis), dtype=float)
    rows, cols = np.nonzero(start.mask)
    lo2 = np.array([rows.min(), cols.min()])
    hi2 = np.array([rows.max(), cols.max()])
    extent_mm = ((hi2 - lo2 + 1) * sp2).max()
    grow_by = np.ceil(max(params.click_margin_mm, params.click_margin_fraction * extent_mm)
                      / sp2).astype(int)
    lo2 = np.maximum(lo2 - grow_by, 0)
    hi2 = np.minimum(hi2 + grow_by, np.asarray(plane_shape) - 1)
    lo, hi = 0, int(shape[axis]) - 1
    reaches = []
    if params.click_reach_mm > 0:
        reaches.append(params.click_reach_mm)
    if params.click_reach_ratio > 0:  # x the start mask's equivalent diameter
        diameter = 2.0 * np.sqrt(float(start.mask.sum()) * sp2[0] * sp2[1] / np.pi)
        reaches.append(params.click_reach_ratio * diameter)
    if reaches:
        reach = int(np.ceil(min(reaches) / float(spacing[axis])))
        lo, hi = max(start.index - reach, 0), min(start.index + reach, hi)
    return lo, hi, [int(v) for v in lo2], [int(v) for v in hi2]


def _start(read_image, read_mask, shape, spacing, marks: Marks, params: SlicewiseParams,
           current_mask_bbox: Box | None, context: SegmentContext,
           given: StartSlice | None = None) -> MethodResult:
    """A 3D box, points or first-click start, slice by slice (module doc); `given`: the
    start slice of a first click's second pass."""
    axis = slice_axis(spacing, params.axis)
    plane_shape = tuple(_drop(shape, axis))
    t0 = time.perf_counter()
    box = None
    if context.kind == "box":
        if not marks.boxes:
            raise InvalidPrompt(f"method {NAME!r} needs a box, points or a click")
        box = marks.boxes[-1]
        start = box_start(read_image, shape, spacing, box, axis, params)
        lo, hi = box.lo[axis], box.hi[axis]
        lo2, hi2 = _drop(box.lo, axis), _drop(box.hi, axis)
    elif context.kind == "points":
        points = np.asarray(marks.points, dtype=np.int64).reshape(-1, 3)
        if len(points) < mideepseg_method.MIN_POINTS:
            raise InvalidPrompt(f"{NAME} needs at least {mideepseg_method.MIN_POINTS} interior "
                                f"margin points, got {len(points)}")
        start = points_start(read_image, shape, spacing, points, axis, params)
        reach = np.ceil(params.points_margin_mm / np.asarray(spacing, dtype=float)).astype(int)
        plo = np.maximum(points.min(axis=0) - reach, 0)
        phi = np.minimum(points.max(axis=0) + reach, np.asarray(shape) - 1)
        lo, hi = int(plo[axis]), int(phi[axis])
        lo2, hi2 = _drop(plo, axis), _drop(phi, axis)
        # the start slice's mask may reach past the points: the cross-section covers it
        rows, cols = np.nonzero(start.mask)
        lo2 = [min(int(lo2[0]), int(rows.min())), min(int(lo2[1]), int(cols.min()))]
        hi2 = [max(int(hi2[0]), int(rows.max())), max(int(hi2[1]), int(cols.max()))]
    else:  # a click on an empty segment
        start = given or click_start(read_image, read_mask, shape, spacing, marks, axis, params)
        lo, hi, lo2, hi2 = _click_extent(start, shape, spacing, axis, params)
    cross = _cross_section(plane_shape, lo2, hi2)
    t1 = time.perf_counter()
    pool = _executor()
    # geodesic-graphcut's 3D unary depends on the marks only: computed while propagating
    cue: Future | None = None
    if params.geodesic_weight > 0 and box is not None:
        cue = pool.submit(_geodesic_cue, read_image, read_mask, shape, spacing,
                          Marks(boxes=[box]), "box")
    if params.click_geodesic_weight > 0 and context.kind == "click":
        cue = pool.submit(_geodesic_cue, read_image, read_mask, shape, spacing,
                          Marks(fg=np.asarray(marks.fg, dtype=np.int64).reshape(-1, 3),
                                bg=np.asarray(marks.bg).reshape(-1, 3)), "click")
    w = params.click_pnet_weight if context.kind == "click" else params.pnet_weight

    def refit(index: int, slice_mask: np.ndarray, confidence: float | None):
        """P-Net's whole-slice probability on the slice's propagated mask's box (+
        `refit_margin`, within the cross-section), or None where it is not re-fitted."""
        if context.kind == "click" and index == start.index and params.click_pnet > 0:
            return None  # the start slice had its P-Net already
        if (context.kind == "click" and index != start.index
                and confidence is not None and confidence >= params.click_refit_confidence):
            return None  # a confident slice: P-Net's re-fit (7-8 ms a slice) changed little
        rows, cols = np.nonzero(slice_mask)
        grown = params.refit_margin
        blo = [max(rows.min() - grown, lo2[0]), max(cols.min() - grown, lo2[1])]
        bhi = [min(rows.max() + grown, hi2[0]), min(cols.max() + grown, hi2[1])]
        fit = _plane_box(shape, axis, index, blo, bhi)
        return _pnet_slice(read_image, shape, spacing, fit, axis, index, params)

    start_fit = pool.submit(refit, start.index, start.mask, None) if w > 0 else None
    whole = Plane(axis, start.index).whole(shape)
    start_image = np.squeeze(np.asarray(read_image(whole), dtype=np.float32), axis=axis)
    predictor = make_predictor(params, start_image, start.mask, tuple(_drop(spacing, axis)))
    done = propagate_within(read_image, shape, spacing, axis, start, predictor, lo, hi, cross,
                            params, refit if w > 0 else None)
    if start_fit is not None:
        fitted = start_fit.result()
        if fitted is not None:
            done.refits[start.index] = fitted
    if context.kind == "click":  # no box bounds it: the ROI spans the slices reached
        lo, hi = min(done.probabilities), max(done.probabilities)
    t2 = time.perf_counter()

    # the ROI: the box (points: their extent) with the cross-section, a voxel wider in-plane
    # so that the cut sees background around the object
    roi_lo, roi_hi = list(lo2), list(hi2)
    roi_lo = [max(int(v) - 1, 0) for v in roi_lo]
    roi_hi = [min(int(v) + 1, n - 1) for v, n in zip(roi_hi, plane_shape)]
    roi_lo.insert(axis, lo)
    roi_hi.insert(axis, hi)
    roi = Box(tuple(roi_lo), tuple(roi_hi))
    sl2 = (slice(roi_lo[a], roi_hi[a] + 1) for a in range(3) if a != axis)
    in_plane = tuple(sl2)
    unary = np.full(roi.shape, params.outside, dtype=np.float32)
    allowed = np.zeros(roi.shape, dtype=bool)
    seed = np.zeros(roi.shape, dtype=bool)
    stacked = np.zeros(roi.shape, dtype=bool)
    for index in range(lo, hi + 1):
        at: list[slice | int] = [slice(None)] * 3
        at[axis] = index - lo
        allowed[tuple(at)] = cross[in_plane]
        if index in done.probabilities:
            unary[tuple(at)] = done.probabilities[index][in_plane]
        if index in done.masks:
            stacked[tuple(at)] = done.masks[index][in_plane]
    at = [slice(None)] * 3
    at[axis] = start.index - lo
    seed[tuple(at)] = start.mask[in_plane]
    refitted: list[int] = []  # the slices P-Net re-fitted
    for index in done.masks:
        if index not in done.refits:
            continue
        refitted.append(index)
        at = [slice(None)] * 3
        at[axis] = index - lo
        unary[tuple(at)] = (1 - w) * unary[tuple(at)] + w * done.refits[index][in_plane]
    if cue is not None:
        unary = _fuse_geodesic(unary, roi, cue.result(), params.geodesic_weight
                               if context.kind == "box" else params.click_geodesic_weight)
    if params.tie:
        image = np.asarray(read_image(roi), dtype=np.float32).reshape(roi.shape)
        mask = tie_slices(unary, image, spacing, allowed, seed, params.lamb, params.sigma)
    else:
        mask = stacked
    t3 = time.perf_counter()
    if current_mask_bbox is not None and context.kind == "box":
        # a box re-segments its inside only: outside it the head is kept
        head = np.asarray(read_mask(roi), dtype=bool).reshape(roi.shape)
        mask = np.where(allowed, mask, mask | head)
    info = {"start": "slicewise", "axis": "zyx"[axis], "start_slice": start.index,
            "slices": sorted(int(i) for i in done.masks),
            "ended_at": {("+" if d > 0 else "-"): e for d, e in done.ends.items()},
            "refit_slices": sorted(int(i) for i in refitted)}
    if start.areas:
        info["candidate_areas"] = {str(k): v for k, v in sorted(start.areas.items())}
    return MethodResult(roi=roi, mask=mask, probability=unary,
                        timings={"start": t1 - t0, "propagate": t2 - t1, "tie": t3 - t2},
                        info=info)


class _Slices:
    """Whole slices along `axis` of the head mask (read once each) and of the new mask being
    built (the slices changed so far)."""

    def __init__(self, read_mask, shape, axis: int):
        self.read_mask, self.shape, self.axis = read_mask, tuple(shape), axis
        self.head: dict[int, np.ndarray] = {}
        self.new: dict[int, np.ndarray] = {}

    def old(self, index: int) -> np.ndarray:
        if index not in self.head:
            box = Plane(self.axis, index).whole(self.shape)
            self.head[index] = np.squeeze(np.asarray(self.read_mask(box), dtype=bool)
                                          .reshape(box.shape), axis=self.axis)
        return self.head[index]

    def current(self, index: int) -> np.ndarray:
        return self.new[index] if index in self.new else self.old(index)

    def read(self, box: Box) -> np.ndarray:
        """The new mask inside `box` (3D, box-shaped) where a changed slice holds it, the
        head elsewhere."""
        out = np.asarray(self.read_mask(box), dtype=bool).reshape(box.shape).copy()
        for index, plane in self.new.items():
            if box.lo[self.axis] <= index <= box.hi[self.axis]:
                at: list[slice | int] = [slice(None)] * 3
                at[self.axis] = index - box.lo[self.axis]
                cut = tuple(slice(box.lo[a], box.hi[a] + 1) for a in range(3) if a != self.axis)
                out[tuple(at)] = plane[cut]
        return out


def _plane_marks(points: np.ndarray, axis: int, index: int, plane_shape) -> np.ndarray:
    out = np.zeros(plane_shape, dtype=bool)
    pts = np.asarray(points, dtype=np.int64).reshape(-1, 3)
    on = pts[pts[:, axis] == index]
    out[tuple(np.delete(on, axis, axis=1).T)] = True
    return out


def _touching2(change: np.ndarray, near: np.ndarray) -> np.ndarray:
    """The connected components (8-connected) of `change` that touch `near`."""
    if not (change & near).any():
        return np.zeros(change.shape, dtype=bool)
    labels, _ = ndimage.label(change, np.ones((3, 3), dtype=bool))
    hit = np.unique(labels[change & near])
    return np.isin(labels, hit[hit > 0])


def correct(read_image: Callable[[Box], np.ndarray], read_mask: Callable[[Box], np.ndarray],
            shape, spacing, marks: Marks, params: SlicewiseParams, current_mask_bbox: Box,
            context: SegmentContext) -> MethodResult:
    """A 3D click on a segment with a mask (issue 13 item 2): the click corrects its own slice
    in 2D, then only the neighbouring slices it changes are re-propagated (module doc).

    The marks the head contradicts (engine/refinement.py `contradicted`) name the slices to
    correct (along the slice axis). Each such slice gets geodesic-graphcut's 2D refinement
    under the refinement contract (the head's slice and stored probability as prior, the
    change local to the clicked error component). Then, both ways, slice by slice: the fused
    propagation predicts the next slice from the corrected one; its additions (removals) that
    touch the previous slice's additions (removals), dilated by `correct_margin` voxels, are
    applied, and the walk stops at the first slice where nothing changes or at the end of the
    object's extent (the head's extent along the axis with the marked slices), inside the
    corrected slice's change column and reach (`correct_reach_ratio`). Every other
    voxel is the head's, bit for bit; a slice corrected by foreground marks only gains, by
    background marks only loses, and so do the slices it reaches."""
    axis = slice_axis(spacing, params.axis)
    plane_shape = tuple(_drop(shape, axis))
    sp2 = tuple(float(s) for s in _drop(spacing, axis))
    t0 = time.perf_counter()
    fg = np.asarray(marks.fg, dtype=np.int64).reshape(-1, 3)
    bg = np.asarray(marks.bg, dtype=np.int64).reshape(-1, 3)
    slices = _Slices(read_mask, shape, axis)
    targets = []
    signs: dict[int, tuple[bool, bool]] = {}  # per corrected slice: (may add, may remove)
    for index in sorted(set(fg[:, axis].tolist()) | set(bg[:, axis].tolist())):
        head = slices.old(index)
        new_fg, new_bg = contradicted(_plane_marks(fg, axis, index, plane_shape),
                                      _plane_marks(bg, axis, index, plane_shape), head)
        if new_fg.any() or new_bg.any():
            targets.append(index)
            signs[index] = (bool(new_fg.any()), bool(new_bg.any()))
    ext_lo = min([current_mask_bbox.lo[axis], *targets])
    ext_hi = max([current_mask_bbox.hi[axis], *targets])
    prop = PropagationParams(min_area_mm2=params.min_area_mm2,
                             min_area_ratio=params.min_area_ratio,
                             roi_margin_mm=params.roi_margin_mm)
    structure = np.ones((3, 3), dtype=bool)
    reached: dict[int, list[int]] = {}
    stored = context.head_probability()
    volume: MethodResult | None = None  # correct_slice "3d": the 3D refinement click, once
    for index in targets:
        plane = Plane(axis, index)
        on = marks.on_plane(plane)
        before = slices.current(index)
        found = _plane_bbox(before)
        bbox = (None if found is None else
                _plane_box(shape, axis, index, found[0], found[1]))
        after = before.copy()
        if params.correct_slice in ("3d", "both"):
            if volume is None:
                volume = graphcut_method.segment(
                    read_image, slices.read, shape, spacing,
                    Marks(fg, bg), None, graphcut_method.GraphCutParams(), current_mask_bbox,
                    SegmentContext("click", dict(context.head_interaction), lambda: stored))
            r = volume.roi
            if r.lo[axis] <= index <= r.hi[axis]:
                roi2 = _in_plane(r, axis)
                at3: list[slice | int] = [slice(None)] * 3
                at3[axis] = index - r.lo[axis]
                after[roi2] = volume.mask[tuple(at3)]
        if params.correct_slice in ("2d", "both"):
            wide = after ^ before  # the 3D click's change on this slice ("both")
            after = before.copy()
            result = graphcut_method.segment(
                read_image, slices.read, shape, spacing,
                Marks(np.asarray(on.fg).reshape(-1, 3), np.asarray(on.bg).reshape(-1, 3)),
                plane, graphcut_method.GraphCutParams(), bbox,
                SegmentContext("click", dict(context.head_interaction), lambda: stored))
            roi2 = _in_plane(result.roi, axis)
            after[roi2] = np.squeeze(result.mask, axis=axis)
            if params.correct_slice == "both":  # the 2D boundary; its additions only within
                # the 3D click's change (+ `correct_margin`): a 2D click leaks on a slice where
                # the object's boundary is faint, the 3D click sees the neighbours too
                keep = ndimage.binary_dilation(wide, structure, iterations=params.correct_margin)
                after &= before | keep
        may_add, may_remove = signs[index]
        # the correction's sign, on its slice and every slice it reaches: a foreground
        # click only adds, a background click only removes (both: as the 2D refinement did)
        if not may_remove:
            after |= before
        if not may_add:
            after &= before
        slices.new[index] = after
        if not after.any():
            reached[index] = []
            continue
        image = np.squeeze(np.asarray(read_image(plane.whole(shape)), dtype=np.float32),
                           axis=axis)
        predictor = make_predictor(params, image, after, sp2)
        walked = []
        lo_n, hi_n = ext_lo, ext_hi
        if params.correct_reach_ratio > 0:
            area_mm2 = float((after ^ before).sum()) * sp2[0] * sp2[1]
            reach = int(params.correct_reach_ratio * 2.0 * np.sqrt(area_mm2 / np.pi)
                        / float(spacing[axis]))
            lo_n, hi_n = max(lo_n, index - reach), min(hi_n, index + reach)
        column = ndimage.binary_dilation(after ^ before, structure,
                                         iterations=params.correct_margin)
        for direction in (1, -1):
            prev, added, removed = after, after & ~before, before & ~after
            prev_old = before
            n = index + direction
            while lo_n <= n <= hi_n and (added.any() or removed.any()) and prev.any():
                old = slices.current(n)
                pred = predict_slice(read_image, shape, axis, n, prev, predictor, sp2, prop)[0]
                near_add = ndimage.binary_dilation(added, structure,
                                                   iterations=params.correct_margin)
                near_rem = ndimage.binary_dilation(removed, structure,
                                                   iterations=params.correct_margin)
                fg_n = _plane_marks(fg, axis, n, plane_shape)
                bg_n = _plane_marks(bg, axis, n, plane_shape)
                gain = pred & ~old & ~bg_n if may_add else np.zeros_like(old)
                loss = old & ~pred & ~fg_n if may_remove else np.zeros_like(old)
                if params.correct_compare != "none" and prev_old.any() and (
                        params.correct_compare == "both" or (loss & near_rem).any()):
                    # what the click changed: where the prediction from the corrected slice
                    # differs from the one from that slice before the click (the old mask
                    # may differ from both: the 3D tie and the re-fit made it)
                    was = predict_slice(read_image, shape, axis, n, prev_old, predictor, sp2,
                                        prop)[0]
                    loss &= was
                    if params.correct_compare == "both":
                        gain &= ~was
                if params.correct_components:
                    add, rem = _touching2(gain, near_add), _touching2(loss, near_rem)
                else:
                    add, rem = gain & near_add, loss & near_rem
                if params.correct_reach_ratio > 0:
                    add, rem = add & column, rem & column
                if int(add.sum() + rem.sum()) < params.correct_min_voxels:
                    break
                new = (old | add) & ~rem
                slices.new[n] = new
                walked.append(n)
                prev, added, removed, prev_old = new, add, rem, old
                n += direction
        reached[index] = sorted(walked)
    t1 = time.perf_counter()
    changed = {i: slices.new[i] ^ slices.old(i) for i in slices.new}
    changed = {i: c for i, c in changed.items() if c.any()}
    if changed:
        corners2 = np.concatenate([np.argwhere(c) for c in changed.values()])
        lo, hi = list(corners2.min(axis=0)), list(corners2.max(axis=0))
        lo.insert(axis, min(changed))
        hi.insert(axis, max(changed))
        roi = Box(tuple(int(v) for v in lo), tuple(int(v) for v in hi))
    else:  # nothing changed (every mark agrees with the head): the newest mark's voxel
        last = np.concatenate([fg, bg])[-1]
        roi = Box(tuple(int(v) for v in last), tuple(int(v) for v in last))
    mask = slices.read(roi)
    q, known = stored_in(roi, stored)
    probability = mask_prior(mask, q, known)
    info = {"start": "slicewise", "corrected": "slice", "axis": "zyx"[axis],
            "corrected_slices": targets,
            "repropagated": {str(k): v for k, v in reached.items()},
            "changed_slices": sorted(int(i) for i in changed)}
    return MethodResult(roi=roi, mask=mask, probability=probability,
                        timings={"correct": t1 - t0, "store": time.perf_counter() - t1},
                        info=info)


def _plane_bbox(mask: np.ndarray) -> tuple[list[int], list[int]] | None:
    """(lo, hi) inclusive corners of a 2D mask's bounding box; None when empty."""
    idx = np.argwhere(mask)
    if len(idx) == 0:
        return None
    return [int(v) for v in idx.min(axis=0)], [int(v) for v in idx.max(axis=0)]


def segment(read_image: Callable[[Box], np.ndarray], read_mask: Callable[[Box], np.ndarray],
            shape, spacing, marks: Marks, plane: Plane | None,
            params: SlicewiseParams = SlicewiseParams(), current_mask_bbox: Box | None = None,
            context: SegmentContext | None = None) -> MethodResult:
    """A 3D `box` (the newest), `points` or first `click` start, slice by slice; a `click` on
    a segment with a mask corrects its slice and re-propagates the neighbours it changes
    (`correct`). `start` picks the slice-by-slice or the volumetric way per case type."""
    context = context or SegmentContext()
    if plane is not None:
        raise InvalidPrompt(f"method {NAME!r} is 3D: use bifseg or mideepseg on a plane")
    if context.kind not in ("box", "points", "click"):
        raise InvalidPrompt(f"method {NAME!r} takes a box, points or a click, "
                            f"not a {context.kind}")
    shape = tuple(int(s) for s in shape)
    kind = ("correct" if context.kind == "click" and current_mask_bbox is not None
            else context.kind)
    chosen = auto_start(kind, spacing) if params.start == "auto" else params.start
    if chosen == "volumetric":
        result = _volumetric(read_image, read_mask, shape, spacing, marks, params,
                             current_mask_bbox, context)
        result.info["start"] = "volumetric"
        return result
    if kind == "correct":
        assert current_mask_bbox is not None
        return correct(read_image, read_mask, shape, spacing, marks, params, current_mask_bbox,
                       context)
    result = _start(read_image, read_mask, shape, spacing, marks, params, current_mask_bbox,
                    context)
    if kind == "click" and params.click_passes > 1:
        result = _second_pass(read_image, read_mask, shape, spacing, marks, params, context,
                              result)
    return result


def _second_pass(read_image, read_mask, shape, spacing, marks: Marks, params: SlicewiseParams,
                 context: SegmentContext, first: MethodResult) -> MethodResult:
    """A first click's 2D mask may leak (the model-free 2D click on a low-contrast slice);
    the 3D tie, with P-Net's re-fit and the 3D geodesic cue, cleans its start slice. When that
    slice moved (Dice to the 2D mask below `click_pass_dice`), propagate again from it."""
    axis = slice_axis(spacing, params.axis)
    index = int(first.info["start_slice"])
    plane_shape = tuple(_drop(shape, axis))
    whole = np.zeros(plane_shape, dtype=bool)
    prob = np.zeros(plane_shape, dtype=np.float32)
    at: list[slice | int] = [slice(None)] * 3
    at[axis] = index - first.roi.lo[axis]
    cut = tuple(slice(first.roi.lo[a], first.roi.hi[a] + 1) for a in range(3) if a != axis)
    whole[cut] = first.mask[tuple(at)]
    prob[cut] = first.probability[tuple(at)]
    seeds = _plane_marks(marks.fg, axis, index, plane_shape)
    if not (whole & seeds).any():
        return first
    before = click_start(read_image, read_mask, shape, spacing, marks, axis, params).mask
    tied = _component_touching(whole, seeds)
    overlap = 2.0 * float((tied & before).sum()) / float(tied.sum() + before.sum())
    if overlap >= params.click_pass_dice:
        return first
    second = _start(read_image, read_mask, shape, spacing, marks, params, None, context,
                    StartSlice(index, tied, np.where(tied, np.maximum(prob, 0.5), prob)))
    second.info["passes"] = 2
    for key, seconds in first.timings.items():
        second.timings[key] = second.timings.get(key, 0.0) + seconds
    return second


METHOD = Method(
    name=NAME,
    description="3D from the 2D networks, slice by slice in the plane of the highest "
                "resolution: a 3D box (P-Net on its cross-section) or 3D interior margin points "
                "(MIDeepSeg 2D) segment the slice where the object is largest; the fused "
                "propagation (propnet-2d-seeds) carries it slice by slice inside the box's "
                "extent until the object ends, P-Net re-fits each propagated slice, and one 3D "
                "graph cut ties the slices (a box: fused with geodesic-graphcut's 3D box cue). "
                "A first 3D click starts the same way from its slice (geodesic-graphcut 2D). "
                "A click on a mask refines it: geodesic-graphcut's 3D click by default, or "
                "(`start: slicewise`) it corrects its own slice in 2D and re-propagates only "
                "the neighbouring slices it changes. Any click method refines it too.",
    interaction_types=("box", "points", "click"),
    dims=("3d",),
    params_type=SlicewiseParams,
    run=segment,
)
