"""Slice predictors for propagation (see engine/propagation.py for the interface).

`graphcut-seeds`, model-free (the RefineNet paper's slice-by-slice experiment, section 3.4):
on the next slice, the skeleton of the previous slice's mask is the foreground seed and the
boundary of its dilation the background seed; the foundation's geodesic unary and BIFSeg graph
cut (graphcut_method / algorithms) solve the slice. Seeds are hard constraints, so to notice
that the object has ended, skeleton pixels whose intensity is unlike the object on the start
slice are dropped first; with too few left the slice is empty (the object has vanished).
Adding a predictor is one module with a `PredictorSpec` and one line in `medseg.builtin`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

from medseg.algorithms.graphcut import banded_graph_cut, graph_cut
from medseg.engine.graphcut_method import GraphCutParams, unary_probability
from medseg.engine.params import (
    FRACTION,
    LAMB,
    MARGIN_MM,
    SIGMA,
    STD_WIDTH,
    VOXEL_BUDGET,
    Range,
    check_params,
)
from medseg.engine.propagation import PredictorSpec
from medseg.errors import InvalidPrompt, plain


@dataclass(frozen=True)
class SeedGraphCutParams:
    dilation_mm: float = 12.0  # background seeds: boundary of the prior dilated this far
    seed_k: float = 2.5  # fg seeds within this many std of the start slice's object intensity
    min_seed_fraction: float = 0.2  # fewer surviving skeleton pixels: the object has ended
    lamb: float = 2.0  # graph-cut pairwise weight (as geodesic-graphcut)
    sigma: float = 0.1  # pairwise intensity scale on [0, 1] intensities
    intensity_gate: float = 0.5  # ratio 0..1, as geodesic-graphcut: unlike tissue is less fg
    # objects wider than this (equivalent radius, mm): geodesic bg seeds only where the tissue
    # is unlike the object (in a large homogeneous organ the ring lies inside it)
    unlike_bg_radius_mm: float = 30.0
    coarse_pixels: int = 40_000  # larger ROIs: half-resolution geodesics, banded graph cut
    intensity_k: float = 2.5  # fg intensity model: start slice's mean +- this many std (0: seeds')

    def __post_init__(self) -> None:
        check_params(self, SEED_RANGES)
        if 0 < self.intensity_k < STD_WIDTH.lo:  # a near-zero width divides by ~0 (NaN)
            raise ValueError(f"intensity_k must be 0 or {STD_WIDTH.describe()}, "
                             f"got {plain(self.intensity_k)}")


# Why each bound: engine/params.py for the shared ones; the others here.
SEED_RANGES = {
    # the background ring lies this far out: more than 100 mm from the previous slice's
    # object it says nothing about the next slice's
    "dilation_mm": Range(0.0, 100.0, lo_open=True),
    "seed_k": Range(0.0, 100.0, lo_open=True),  # in std; 100 admits every intensity already
    "min_seed_fraction": FRACTION, "lamb": LAMB, "sigma": SIGMA, "intensity_gate": FRACTION,
    "unlike_bg_radius_mm": MARGIN_MM, "coarse_pixels": VOXEL_BUDGET,
    # 0 means "the seeds' own model" (see `unary`), else a width as geodesic-graphcut's
    "intensity_k": Range(0.0, STD_WIDTH.hi),  # and not between 0 and STD_WIDTH.lo
}


@dataclass(frozen=True)
class Seeds:
    fg: np.ndarray  # bool: the prior's skeleton on tissue like the object
    bg: np.ndarray  # bool: the ring around the dilated prior (and beyond)
    geo_bg: np.ndarray  # bool: the background seeds the geodesic unary starts from


@dataclass(frozen=True)
class SeedCandidates:
    """What a prior offers as seeds on the next slice, before the foreground is chosen: the
    costly part (skeleton, smoothing, distance transform), computed once per slice even when
    seeds are chosen twice (the fused predictor: with and without the network's mask)."""

    skeleton: np.ndarray  # bool: the prior's skeleton
    plausible: np.ndarray  # bool: tissue like the object (start slice's intensity)
    outer: np.ndarray  # bool: the ring, the ROI edge inside the dilation, and beyond it
    wide: bool  # an object wider than unlike_bg_radius_mm

    def choose(self, min_fraction: float, allowed: np.ndarray | None = None) -> Seeds | None:
        """The seeds, or None where the object has ended (fewer than `min_fraction` of the
        skeleton left on tissue like the object, and inside `allowed` if given)."""
        seed_fg = self.skeleton & self.plausible
        if allowed is not None:
            seed_fg &= allowed
        if seed_fg.sum() < max(min_fraction * self.skeleton.sum(), 1):
            return None
        seed_bg = self.outer & ~seed_fg
        # background seeds lying on tissue like the object pull the boundary inwards (half-way
        # between skeleton and ring in a homogeneous organ): the geodesic unary starts only
        # from unlike ones; every seed still bounds the graph cut
        geo_bg = seed_bg & ~self.plausible if self.wide else seed_bg
        if not geo_bg.any():
            geo_bg = seed_bg
        return Seeds(seed_fg, seed_bg, geo_bg)


def unit_range(image: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(image mapped from its 1st..99th percentiles to [0, 1] float32, lo, scale)."""
    lo, hi = np.percentile(image, [1.0, 99.0])
    scale = max(float(hi - lo), 1e-6)
    norm = np.clip((image - np.float32(lo)) / np.float32(scale), 0, 1).astype(np.float32)
    return norm, float(lo), scale


class SeedGraphCut:
    """One propagation's predictor: keeps the object's intensity (mean, std) from the start
    slice, which the user gave or accepted, to vet the seeds of every later slice."""

    def __init__(self, params: SeedGraphCutParams, start_image: np.ndarray,
                 start_mask: np.ndarray, spacing):
        self.params = params
        if not np.any(start_mask):
            raise InvalidPrompt("the start slice is empty: nothing to propagate")
        inner = ndimage.binary_erosion(start_mask)
        values = np.asarray(start_image, np.float32)[inner if inner.sum() >= 5 else start_mask]
        self.mean = float(values.mean())
        self.std = max(float(values.std()), 1e-3 * max(abs(self.mean), 1.0))
        self.cut_params = GraphCutParams(lamb=params.lamb, sigma=params.sigma,
                                         intensity_gate=params.intensity_gate,
                                         coarse_geodesic_voxels=params.coarse_pixels)

    def predict(self, image: np.ndarray, prior: np.ndarray, spacing) -> np.ndarray:
        """image float32 (h, w), prior bool (h, w), spacing (mm, mm) -> probability (h, w)."""
        seeds = self.candidates(image, prior, spacing).choose(self.params.min_seed_fraction)
        if seeds is None:
            return np.zeros(image.shape, np.float32)
        return self.solve(image, seeds, spacing)

    def candidates(self, image: np.ndarray, prior: np.ndarray, spacing) -> SeedCandidates:
        """The prior's seed candidates on this slice (`SeedCandidates.choose` picks seeds)."""
        p = self.params
        skeleton = skeletonize(prior) & prior
        # 1 mm, but never wider than the slice (its cost grows with the width in pixels)
        smooth = ndimage.gaussian_filter(
            image, [min(1.0 / max(s, 1e-6), n) for s, n in zip(spacing, image.shape)])
        plausible = np.abs(smooth - self.mean) <= p.seed_k * self.std
        # dilation and its boundary from one distance transform (a disk footprint costs 5x more)
        distance = ndimage.distance_transform_edt(~prior, sampling=spacing)
        dilated = distance <= p.dilation_mm
        ring = dilated & (distance > p.dilation_mm - max(spacing))
        # the ROI edge bounds the dilation where it was clipped: it is background too
        edge = np.zeros(image.shape, bool)
        edge[[0, -1], :] = edge[:, [0, -1]] = True
        radius = np.sqrt(prior.sum() * spacing[0] * spacing[1] / np.pi)
        return SeedCandidates(skeleton, plausible, ring | (edge & dilated) | ~dilated,
                              bool(radius > p.unlike_bg_radius_mm))

    def solve(self, image: np.ndarray, seeds: Seeds, spacing,
              ranged: tuple[np.ndarray, float, float] | None = None) -> np.ndarray:
        """The model-free answer from the seeds: geodesic unary, then the graph cut.
        `ranged`: `unit_range(image)` when the caller has it (the fused predictor cuts the
        same slice twice: one percentile pass instead of three)."""
        ranged = ranged or unit_range(image)
        return self.cut(self.unary(image, seeds, spacing, ranged), image, seeds, spacing,
                        ranged)

    def unary(self, image: np.ndarray, seeds: Seeds, spacing,
              ranged: tuple[np.ndarray, float, float] | None = None) -> np.ndarray:
        """Foreground probability from the seeds' geodesic distances and the start slice's
        intensity model (float32, image's shape)."""
        p = self.params
        norm, lo, scale = ranged or unit_range(image)
        model = ((self.mean - lo) / scale, p.intensity_k * self.std / scale)
        border = np.zeros(image.shape, bool)
        return unary_probability(norm, seeds.fg, seeds.geo_bg, border, list(spacing),
                                 self.cut_params, model if p.intensity_k > 0 else None)

    def cut(self, prob: np.ndarray, image: np.ndarray, seeds: Seeds, spacing,
            ranged: tuple[np.ndarray, float, float] | None = None) -> np.ndarray:
        """The graph cut of `prob` with the seeds as hard constraints, as a probability
        consistent with the cut (>= 0.5 exactly on the mask)."""
        p = self.params
        norm = (ranged or unit_range(image))[0]
        cut = banded_graph_cut if prob.size > p.coarse_pixels else graph_cut
        mask = cut(prob, norm, list(spacing), seeds.fg, seeds.bg, p.lamb, p.sigma)
        return np.where(mask, np.maximum(prob, 0.5), np.minimum(prob, 0.499)).astype(np.float32)


PREDICTOR = PredictorSpec(
    name="graphcut-seeds",
    description="Model-free (RefineNet section 3.4): skeleton of the previous slice's mask as "
                "foreground seeds, boundary of its dilation as background seeds, geodesic "
                "unary + BIFSeg graph cut on the next slice.",
    params_type=SeedGraphCutParams,
    build=SeedGraphCut,
)
