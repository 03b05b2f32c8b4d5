"""Hints (issue 14 item 5): where is a segment's mask most likely wrong? Pure NumPy/SciPy +
PyMaxflow (+ the optional 2D editing network); 2D (a (1, Y, X) volume) or 3D. How it works and
why: docs/methods.md "Hints"; how often right: `python -m medseg_bench.hints`.

The mask is compared with re-segmentations of the same object made without trusting its
boundary; where they disagree with it, and the image backs them, are the candidates:

1. `graphcut`, model-free: an intensity model learnt from the mask's deep core (foreground)
   and a ring of background 6-15 mm around it (far enough from the boundary that one moved by
   a few voxels does not poison either), smoothed histograms -> p_int, the probability that a
   voxel's intensity is the object's. A graph cut (BIFSeg pairwise term: the cut follows image
   edges) on logit(p_int) + a spatial prior from the mask's signed distance (inside at most
   +PRIOR_LOGIT, so strong image evidence may remove; outside falling to -PRIOR_FAR, so it
   does not leak into a touching organ of the same intensity), the deep core hard foreground
   and the crop's outer layer hard background.
2. `shape`: concavities a closing with a large ball fills (a bite) scored by p_int,
   protrusions an opening removes (a bulge) by 1 - p_int, separate pieces and enclosed holes.
3. `editnet` (not in the served defaults), where its model is given: the 2D editing network's
   answer with no edits, slice by slice.

Error likelihood per voxel = the maximum over the sources (`combine`) of how sure each is that
the mask is wrong there. Connected components of likelihood >= `min_likelihood` (split into
`missing`: outside the mask, and `extra`: inside) of at least `min_voxels`, ranked by score =
the sum of the likelihood over the region (size x mean likelihood); those under
`relative_score` x the first one's are dropped. Each hint carries a centre (the region's voxel
farthest from its edge: inside the region even when it is a ring), its bounding box, its size
in voxels and mL and its mean likelihood. Few or no hints on a mask the sources agree with is
the intended answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from medseg.algorithms.graphcut import graph_cut
from medseg.algorithms.normalize import normalize_percentiles
from medseg.engine.params import FRACTION, Range, check_params

KINDS = ("missing", "extra")
SOURCES = ("graphcut", "shape", "editnet")
# the served default: model-free, ~5 ms on a slice; editnet added nothing measurable (benchmark)
DEFAULT_SOURCES = ("graphcut", "shape")
MAX_HINTS = 20
MAX_VOXELS = 2**24  # of the crop around the mask; a larger one is refused (as adjust's)
BINS = 32
PRIOR_LOGIT = 1.0  # the mask's own vote inside it, at most this many nats
PRIOR_FAR = 8.0  # ... and outside
HOLE_LIKELIHOOD = 0.9
P_CLIP = 0.02


@dataclass(frozen=True)
class HintParams:
    min_voxels: int = 20  # smaller disagreements are boundary noise, not an error to fix
    min_likelihood: float = 0.5  # voxels below this error likelihood belong to no hint
    core_mm: float = 6.0  # the intensity model's foreground: mask voxels this deep
    ring_mm: tuple[float, float] = (6.0, 15.0)  # ... background: this far outside the mask
    margin_mm: float = 15.0  # the crop around the mask the re-segmentation may change
    lamb: float = 1.0  # graph cut pairwise weight
    sigma: float = 0.1  # graph cut intensity scale
    prior_voxels: float = 4.0  # the spatial prior changes by one nat over this many voxels
    shape_radius: float = 0.2  # x the object's largest extent: concavities this wide count
    relative_score: float = 0.5  # a hint scoring below this share of the first one is dropped
    combine: str = "max"  # how the sources' maps make one: max | mean
    sources: tuple[str, ...] = DEFAULT_SOURCES

    def __post_init__(self) -> None:
        check_params(self, {"min_voxels": Range(1, 10**6), "min_likelihood": FRACTION,
                            "core_mm": Range(0.0, 100.0), "margin_mm": Range(1.0, 200.0),
                            "lamb": Range(0.0, 100.0), "sigma": Range(1e-3, 10.0)})


@dataclass
class Hint:
    rank: int
    kind: str  # "missing" (the mask should cover it) | "extra" (it should not)
    centre: tuple[int, ...]  # (z, y, x) voxel inside the region
    lo: tuple[int, ...]  # bounding box, inclusive
    hi: tuple[int, ...]
    voxels: int
    ml: float
    likelihood: float  # mean error likelihood over the region, 0..1
    score: float  # voxels x likelihood: the ranking key
    sources: dict[str, float] = field(default_factory=dict)  # share of the region each flags


@dataclass
class HintResult:
    hints: list[Hint]
    likelihood: np.ndarray  # float32 error likelihood on the crop
    crop: tuple[slice, ...]
    sources: list[str]


def _crop(mask: np.ndarray, spacing, margin_mm: float) -> tuple[slice, ...]:
    idx = np.argwhere(mask)
    out = []
    for axis, n in enumerate(mask.shape):
        margin = int(np.ceil(margin_mm / float(spacing[axis]))) + 2
        lo = max(int(idx[:, axis].min()) - margin, 0)
        hi = min(int(idx[:, axis].max()) + margin + 1, n)
        out.append(slice(lo, hi))
    return tuple(out)


def _histogram(values: np.ndarray) -> np.ndarray:
    hist = np.bincount(np.clip((values * BINS).astype(np.int64), 0, BINS - 1),
                       minlength=BINS).astype(np.float64)
    hist = ndimage.gaussian_filter1d(hist, 1.0, mode="nearest") + 1.0
    return hist / hist.sum()


def _signed_distance(mask: np.ndarray, spacing) -> np.ndarray:
    """mm to the boundary, positive inside the mask."""
    inside = ndimage.distance_transform_edt(mask, sampling=spacing)
    outside = ndimage.distance_transform_edt(~mask, sampling=spacing)
    return (inside - outside).astype(np.float32)


def _deepest_fraction(sd: np.ndarray, region: np.ndarray, want_mm: float) -> np.ndarray:
    """`region` & (sd beyond want_mm), backing off to half the region's depth when that is
    empty (a thin object has no 6 mm core)."""
    depth = np.abs(sd[region]).max() if region.any() else 0.0
    limit = min(want_mm, 0.5 * float(depth))
    return region & (np.abs(sd) >= limit)


def graphcut_source(image: np.ndarray, mask: np.ndarray, spacing, params: HintParams
                    ) -> np.ndarray:
    """Error likelihood of the model-free re-segmentation (see the module doc), crop-shaped."""
    norm = normalize_percentiles(image)
    sd = _signed_distance(mask, spacing)
    core = _deepest_fraction(sd, mask, params.core_mm)
    outside = ~mask
    ring = outside & (-sd > params.ring_mm[0]) & (-sd <= params.ring_mm[1])
    if ring.sum() < 10:
        ring = outside & (-sd > 0.5 * params.ring_mm[0])
    if ring.sum() < 10 or core.sum() < 3:
        return np.zeros(mask.shape, np.float32)
    h_fg, h_bg = _histogram(norm[core]), _histogram(norm[ring])
    bins = np.clip((norm * BINS).astype(np.int64), 0, BINS - 1)
    p_int = np.clip(h_fg[bins] / (h_fg[bins] + h_bg[bins]), P_CLIP, 1 - P_CLIP)
    step = float(min(spacing))
    # inside: bounded (strong image evidence may remove); outside: falls on with the distance,
    # so the re-segmentation checks the boundary's course and does not leak into a touching
    # organ of the same intensity (a far-out miss is the shape source's)
    prior = np.clip(sd / (params.prior_voxels * step), -PRIOR_FAR, PRIOR_LOGIT)
    logit = np.log(p_int / (1 - p_int)) + prior
    p = 1.0 / (1.0 + np.exp(-logit))
    hard_fg = _deepest_fraction(sd, mask, 2.0 * params.core_mm)
    hard_bg = np.zeros(mask.shape, bool)
    for axis in range(mask.ndim):
        if mask.shape[axis] > 2:
            index = [slice(None)] * mask.ndim
            index[axis] = slice(0, 1)
            hard_bg[tuple(index)] = True
            index[axis] = slice(-1, None)
            hard_bg[tuple(index)] = True
    hard_bg &= ~mask
    cut = graph_cut(p, norm, spacing, hard_fg=hard_fg, hard_bg=hard_bg,
                    lamb=params.lamb, sigma=params.sigma)
    flipped = cut != mask
    # how sure the re-segmentation is where it disagrees: its unary's distance from the mask's
    # label, floored so a flip the pairwise term made (an edge-following cut) still counts
    strength = np.maximum(np.abs(p_int - mask), 0.5)
    return np.where(flipped, strength, 0.0).astype(np.float32)


def _intensity_model(norm: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """p_int: probability that a voxel's intensity is the object's, from smoothed histograms
    of the `fg` and `bg` voxels (0.5 everywhere when either is too small)."""
    if fg.sum() < 3 or bg.sum() < 10:
        return np.full(norm.shape, 0.5, np.float32)
    h_fg, h_bg = _histogram(norm[fg]), _histogram(norm[bg])
    bins = np.clip((norm * BINS).astype(np.int64), 0, BINS - 1)
    return np.clip(h_fg[bins] / (h_fg[bins] + h_bg[bins]), P_CLIP, 1 - P_CLIP).astype(np.float32)


def shape_source(image: np.ndarray, mask: np.ndarray, spacing, params: HintParams
                 ) -> np.ndarray:
    """Error likelihood of shape anomalies the image confirms: concavities a closing with a
    ball of `shape_radius` x the object's extent fills (a bite: missing if its intensity is the
    object's), protrusions an opening removes and pieces apart from the largest one (a bulge or
    a false blob: extra if its intensity is not the object's)."""
    norm = normalize_percentiles(image)
    sd = _signed_distance(mask, spacing)
    idx = np.argwhere(mask)
    extent = (np.ptp(idx, axis=0) + 1) * np.asarray(spacing, dtype=float)
    radius = max(params.shape_radius * float(extent.max()), 2.0 * float(max(spacing)))
    outside_d = -np.minimum(sd, 0)
    dilated = outside_d <= radius
    closed = ndimage.distance_transform_edt(dilated, sampling=spacing) > radius
    inside_d = np.maximum(sd, 0)
    opened = ndimage.distance_transform_edt(inside_d <= radius, sampling=spacing) > radius
    labels, count = ndimage.label(mask)
    apart = np.zeros(mask.shape, bool)
    if count > 1:
        sizes = np.bincount(labels.ravel())[1:]
        apart = mask & (labels != 1 + int(np.argmax(sizes)))
    missing = closed & ~mask
    extra = (mask & ~opened) | apart
    core = _deepest_fraction(sd, mask & ~extra, params.core_mm)
    ring = ~mask & ~missing & (-sd > params.ring_mm[0]) & (-sd <= params.ring_mm[1])
    p_int = _intensity_model(norm, core, ring)
    out = np.zeros(mask.shape, np.float32)
    out[missing] = p_int[missing]
    out[extra] = 1.0 - p_int[extra]
    out[apart] = np.maximum(out[apart], 0.5)  # a separate piece is suspect whatever its look
    holes = ndimage.binary_fill_holes(mask) & ~mask
    out[holes] = np.maximum(out[holes], HOLE_LIKELIHOOD)  # an enclosed hole: rarely anatomy
    return out


def editnet_source(image: np.ndarray, mask: np.ndarray, spacing,
                   forward: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Error likelihood of the editing network's no-edit answer, slice by slice (axis 0)."""
    from medseg.algorithms.editing import Edits
    from medseg.models import editing_io

    out = np.zeros(mask.shape, np.float32)
    for z in range(mask.shape[0]):
        if not mask[z].any():
            continue
        prob, _ = editing_io.predict_slice(forward, image[z], mask[z], Edits(), spacing[1:])
        flipped = (prob >= 0.5) != mask[z]
        out[z] = np.where(flipped, np.abs(prob - mask[z]), 0.0)
    return out


def combine(maps: list[np.ndarray], how: str = "mean") -> np.ndarray:
    if not maps:
        return np.zeros(0, np.float32)
    stack = np.stack(maps)
    return (stack.max(axis=0) if how == "max" else stack.mean(axis=0)).astype(np.float32)


def find_hints(image: np.ndarray, mask: np.ndarray, spacing, k: int = 3,
               params: HintParams | None = None,
               editnet: Callable[[np.ndarray], np.ndarray] | None = None) -> HintResult:
    """The `k` regions of `mask` (bool (Z, Y, X), 2D as Z = 1) most likely wrong on `image`
    (same shape, any intensities), ranked. `editnet`: the editing network's forward function
    (None: the source is skipped)."""
    params = params or HintParams()
    image = np.asarray(image, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    if image.ndim != 3 or image.shape != mask.shape:
        raise ValueError(f"image {image.shape} and mask {mask.shape} must be equal 3D shapes")
    if not 1 <= k <= MAX_HINTS:
        raise ValueError(f"k must lie in 1..{MAX_HINTS}, got {k}")
    spacing = tuple(float(s) for s in spacing)
    if not mask.any():
        return HintResult([], np.zeros((0, 0, 0), np.float32), (slice(0, 0),) * 3, [])
    crop = _crop(mask, spacing, params.margin_mm)
    sub_image, sub_mask = image[crop], mask[crop]
    if sub_mask.size > MAX_VOXELS:
        raise ValueError(f"hints would examine {sub_mask.size:,} voxels, more than "
                         f"{MAX_VOXELS:,}")
    flat = sub_mask.shape[0] == 1  # a 2D object: work on the slice
    maps: dict[str, np.ndarray] = {}
    if "graphcut" in params.sources:
        if flat:
            maps["graphcut"] = graphcut_source(sub_image[0], sub_mask[0], spacing[1:],
                                               params)[None]
        else:
            maps["graphcut"] = graphcut_source(sub_image, sub_mask, spacing, params)
    if "shape" in params.sources:
        if flat:
            maps["shape"] = shape_source(sub_image[0], sub_mask[0], spacing[1:], params)[None]
        else:
            maps["shape"] = shape_source(sub_image, sub_mask, spacing, params)
    if "editnet" in params.sources and editnet is not None:
        maps["editnet"] = editnet_source(sub_image, sub_mask, spacing, editnet)
    likelihood = combine(list(maps.values()), params.combine)
    hints = rank_regions(likelihood, sub_mask, spacing, params, maps)
    offset = np.asarray([s.start for s in crop])
    for hint in hints:
        hint.centre = tuple(int(v) for v in np.asarray(hint.centre) + offset)
        hint.lo = tuple(int(v) for v in np.asarray(hint.lo) + offset)
        hint.hi = tuple(int(v) for v in np.asarray(hint.hi) + offset)
    return HintResult(hints[:k], likelihood, crop, list(maps))


def rank_regions(likelihood: np.ndarray, mask: np.ndarray, spacing, params: HintParams,
                 maps: dict[str, np.ndarray]) -> list[Hint]:
    """Connected components of `likelihood >= min_likelihood` per kind, largest score first."""
    hot = likelihood >= params.min_likelihood
    voxel_ml = float(np.prod(spacing)) / 1000.0
    found: list[Hint] = []
    for kind, side in (("missing", ~mask), ("extra", mask)):
        labels, count = ndimage.label(hot & side)
        if count == 0:
            continue
        ids = np.arange(1, count + 1)
        sizes = ndimage.sum_labels(np.ones(labels.shape), labels, ids)
        scores = ndimage.sum_labels(likelihood, labels, ids)
        boxes = ndimage.find_objects(labels)
        for i, (size, score, box) in enumerate(zip(sizes, scores, boxes), start=1):
            if size < params.min_voxels or box is None:
                continue
            region = labels[box] == i
            # pad only the axes the region spans (a 2D region's one slice has no edge in z)
            pad = [(0, 0) if n == 1 else (1, 1) for n in region.shape]
            inner = tuple(slice(a, n + a) for (a, _), n in zip(pad, region.shape))
            depth = ndimage.distance_transform_edt(np.pad(region, pad))[inner]
            centre = np.unravel_index(int(np.argmax(depth)), region.shape)
            found.append(Hint(
                rank=0, kind=kind,
                centre=tuple(int(c + s.start) for c, s in zip(centre, box)),
                lo=tuple(int(s.start) for s in box), hi=tuple(int(s.stop - 1) for s in box),
                voxels=int(size), ml=round(float(size) * voxel_ml, 4),
                likelihood=round(float(score / size), 4),
                score=round(float(score), 3),
                sources={name: round(float((m[box][region] > 0).mean()), 3)
                         for name, m in maps.items()}))
    found.sort(key=lambda h: -h.score)
    if found:
        found = [h for h in found if h.score >= params.relative_score * found[0].score]
    for rank, hint in enumerate(found, start=1):
        hint.rank = rank
    return found
