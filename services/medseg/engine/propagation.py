"""Slice-by-slice propagation: one slice's mask grows into a 3D mask, slice after slice.

From a start slice whose mask is given, along one axis (0=z, 1=y, 2=x), in both directions,
a slice predictor segments the next slice with the previous slice's mask as its prior, until
the object vanishes (empty or tiny prediction), a locked slice, `max_slices` or the image edge.
`propagate` is a generator: each finished slice is yielded at once, so a job can stream it.

Shapes: the volume is (Z, Y, X); a slice along `axis` is the 2D array with that axis removed,
(Y', X') in the remaining axes' order, with their spacing (mm). Predictors see an ROI of the
slice around the prior (cost follows the object): image float32 (h, w), prior bool (h, w),
spacing (sy', sx') mm -> foreground probability float32 (h, w); >= 0.5 is foreground.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy import ndimage

from medseg.engine.params import (
    FRACTION,
    MARGIN_MM,
    Range,
    check_params,
    defaults,
    parse_dataclass_params,
)
from medseg.engine.prompts import Box
from medseg.engine.volume import MAX_INDEX
from medseg.errors import InvalidPrompt, plain


class SlicePredictor(Protocol):
    def predict(self, image: np.ndarray, prior: np.ndarray,
                spacing: tuple[float, float]) -> np.ndarray: ...


@dataclass(frozen=True)
class PredictorSpec:
    """A slice predictor a propagation can use (the composition root registers it).
    `build(params, start_image, start_mask, spacing)` makes one for a propagation; the start
    slice (full, float32 / bool) is the trusted reference."""

    name: str
    description: str
    params_type: type  # frozen dataclass with defaults
    build: Callable[..., SlicePredictor]

    def defaults(self) -> dict[str, Any]:
        return defaults(self.params_type)


@dataclass(frozen=True)
class PropagationParams:
    """Generic propagation settings (any predictor)."""

    min_area_mm2: float = 30.0  # a prediction smaller than this: the object has ended
    min_area_ratio: float = 0.1  # ... or smaller than this fraction of the previous slice's
    max_slices: int = 0  # per direction; 0 = up to the image edge
    roi_margin_mm: float = 30.0  # the predictor sees the prior's bbox plus this margin
    clear_beyond_end: bool = True  # past the object's end, empty the slices up to the bound
    flag_area_change: float = 0.5  # ratio: flag |area / previous area - 1| above this
    flag_centroid_mm: float = 10.0  # flag a centroid moving more than this from the previous
    flag_confidence: float = 0.5  # mean |2p - 1| 0..1 near the mask: flag it below this

    def __post_init__(self) -> None:
        check_params(self, _RANGES)
        if self.min_area_ratio >= 1:  # every slice would end the object
            raise ValueError(f"min_area_ratio must be < 1, got {plain(self.min_area_ratio)}")


# Why each bound: engine/params.py for the shared ones; the others here.
_RANGES = {
    # 1e6 mm2 is a square metre: no slice of a body holds more
    "min_area_mm2": Range(0.0, 1e6), "min_area_ratio": FRACTION,
    "max_slices": Range(0, MAX_INDEX),  # an axis has at most MAX_INDEX + 1 slices
    "roi_margin_mm": MARGIN_MM,
    # a ratio of areas: a change of 100x is flagged by anything below it
    "flag_area_change": Range(0.0, 100.0),
    "flag_centroid_mm": Range(0.0, 1000.0),  # a metre: beyond any body
    # confidence is in [0, 1]: a bound above 1 flags every slice (tests use 1.01 for that)
    "flag_confidence": Range(0.0, 2.0),
}


@dataclass
class SliceResult:
    index: int  # slice index along the axis
    direction: int  # +1 or -1 (away from the start slice)
    mask: np.ndarray  # bool (Y', X'): the whole slice
    area_mm2: float
    confidence: float  # mean |2p - 1| near the object, 0..1 (1 = certain)
    flags: list[str] = field(default_factory=list)  # reasons to look at it again
    end: str | None = None  # "vanished" on the slice where the object ended
    cleared: bool = False  # emptied past the object's end (not predicted)
    estimated_total: int = 0  # slices this propagation will yield, as now estimated
    seconds: float = 0.0


def split_params(predictor: PredictorSpec, overrides: dict[str, Any]):
    """(PropagationParams, predictor params) from one flat dict of overrides."""
    generic = {f.name for f in dataclasses.fields(PropagationParams)}
    own = {k: v for k, v in overrides.items() if k not in generic}
    # named here, not by the predictor's parse: its "known" list would leave out the generic
    # names, and be empty for a predictor without parameters of its own
    known = generic | {f.name for f in dataclasses.fields(predictor.params_type)}
    unknown = sorted(set(own) - known)
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:10])
        raise InvalidPrompt(f"unknown parameter(s) {shown} for {predictor.name!r}; "
                            f"known: {', '.join(sorted(known))}")
    return (parse_dataclass_params(PropagationParams, {k: v for k, v in overrides.items()
                                                       if k in generic}, "propagation"),
            parse_dataclass_params(predictor.params_type, own, predictor.name))


def slice_box(shape, axis: int, index: int, lo2, hi2) -> Box:
    """3D inclusive box of one slice's in-plane ROI (lo2, hi2 in the slice's two axes)."""
    lo, hi = list(lo2), list(hi2)
    lo.insert(axis, index)
    hi.insert(axis, index)
    return Box(tuple(int(v) for v in lo), tuple(int(v) for v in hi))


def bounds(n: int, start: int, direction: int, locked: Iterable[int], max_slices: int) -> int:
    """How many slices lie between `start` and the first locked slice / edge / max_slices."""
    locked = set(locked)
    count, i = 0, start + direction
    while 0 <= i < n and i not in locked and (max_slices == 0 or count < max_slices):
        count, i = count + 1, i + direction
    return count


def propagate(read_image: Callable[[Box], np.ndarray], shape, spacing, axis: int, start: int,
              start_mask: np.ndarray, predictor: SlicePredictor, params: PropagationParams,
              locked: Iterable[int] = ()) -> Iterator[SliceResult]:
    """Yield every slice the propagation decides, first towards +axis, then towards -axis.

    read_image(box) -> (z, y, x) array of the volume inside an inclusive box; shape (Z, Y, X);
    spacing (sz, sy, sx) mm; start_mask bool (Y', X'), the start slice's mask (not yielded).
    Locked slices are never yielded: a direction stops before the first one."""

    shape = tuple(int(s) for s in shape)
    n = shape[axis]
    plane_shape = tuple(s for a, s in enumerate(shape) if a != axis)
    sp2 = tuple(float(s) for a, s in enumerate(spacing) if a != axis)
    if not 0 <= start < n or np.shape(start_mask) != plane_shape:
        raise InvalidPrompt(f"start slice {start} / mask {np.shape(start_mask)} do not fit "
                            f"axis {'zyx'[axis]} of shape {shape}")
    if not np.any(start_mask):
        raise InvalidPrompt(f"slice {start} on axis {'zyx'[axis]} is empty: nothing to propagate")
    locked = set(locked) - {start}
    budget = {d: bounds(n, start, d, locked, params.max_slices) for d in (1, -1)}
    for direction in (1, -1):
        prior = np.asarray(start_mask, bool)
        for step in range(budget[direction]):
            t0 = time.perf_counter()
            index = int(start + direction * (step + 1))
            mask, confidence, _ = predict_slice(read_image, shape, axis, index, prior,
                                                predictor, sp2, params)
            area = float(mask.sum()) * sp2[0] * sp2[1]
            prior_area = float(prior.sum()) * sp2[0] * sp2[1]
            if area < params.min_area_mm2 or area < params.min_area_ratio * prior_area:
                break
            flags = _flags(mask, prior, area, prior_area, confidence, sp2, params)
            yield SliceResult(index, direction, mask, area, confidence, flags,
                              estimated_total=sum(budget.values()),
                              seconds=time.perf_counter() - t0)
            prior = mask
        else:
            continue
        # the object ended on slice `index`: it and (optionally) the rest up to the bound
        if not params.clear_beyond_end:
            budget[direction] = step + 1
        for rest in range(step, budget[direction]):
            yield SliceResult(int(start + direction * (rest + 1)), direction,
                              np.zeros(plane_shape, bool), 0.0, confidence,
                              end="vanished" if rest == step else None, cleared=rest > step,
                              estimated_total=sum(budget.values()),
                              seconds=time.perf_counter() - t0 if rest == step else 0.0)


def predict_slice(read_image, shape, axis, index, prior, predictor, sp2, params):
    """(full-slice bool mask, confidence, full-slice float32 probability (0 outside the
    predictor's ROI)) of slice `index` from `prior` (full-slice bool). The mask keeps only the
    parts of the prediction that touch the prior."""
    rows, cols = np.nonzero(prior)
    margin = [int(np.ceil(params.roi_margin_mm / s)) for s in sp2]
    plane_shape = prior.shape
    lo2 = (max(rows.min() - margin[0], 0), max(cols.min() - margin[1], 0))
    hi2 = (min(rows.max() + margin[0], plane_shape[0] - 1),
           min(cols.max() + margin[1], plane_shape[1] - 1))
    box = slice_box(shape, axis, index, lo2, hi2)
    image = np.squeeze(np.asarray(read_image(box), dtype=np.float32), axis=axis)
    roi = (slice(lo2[0], hi2[0] + 1), slice(lo2[1], hi2[1] + 1))
    prob = np.asarray(predictor.predict(image, prior[roi], sp2), dtype=np.float32)
    local = prob >= 0.5
    # keep the parts that touch the prior: an island elsewhere is another object
    labels, count = ndimage.label(local)
    if count > 1:
        keep = np.unique(labels[local & prior[roi]])
        local = np.isin(labels, keep[keep > 0])
    near = ndimage.binary_dilation(local | prior[roi], iterations=2)
    confidence = float(np.mean(np.abs(2.0 * prob[near] - 1.0))) if near.any() else 0.0
    mask = np.zeros(plane_shape, bool)
    mask[roi] = local
    probability = np.zeros(plane_shape, np.float32)
    probability[roi] = prob
    return mask, confidence, probability


def _flags(mask, prior, area, prior_area, confidence, sp2, params) -> list[str]:
    flags = []
    if prior_area > 0 and abs(area / prior_area - 1.0) > params.flag_area_change:
        flags.append("area_jump")
    shift = (np.subtract(ndimage.center_of_mass(mask), ndimage.center_of_mass(prior))
             * np.asarray(sp2))
    if float(np.hypot(*shift)) > params.flag_centroid_mm:
        flags.append("centroid_jump")
    if confidence < params.flag_confidence:
        flags.append("low_confidence")
    return flags
