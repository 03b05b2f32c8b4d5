"""Editing-network recipe (deep-editing-tools paper, sec. 2.3-2.4; issue 14): a 2D U-Net that
takes the image, the current (imperfect) mask and the three edit channels, and answers the
corrected mask.

A sample: a 2D slice of an object (a seen organ of the training volumes along any axis, or an
object of a synthetic volume: the propagation recipe's `Objects`; held-out organs never), its
reference mask `gt`, and an imperfect mask `auto` made from it by one or two perturbations
(PERTURBATIONS: the boundary moved in or out by 1-3 voxels, a bite taken out, a blob added at
the boundary, a separate false blob; which errors the three tools are for). Then the edits a
user would make on it (medseg.algorithms.editing.simulate_edits), of ONE kind per sample
(KIND_WEIGHTS; none for some, so the network keeps its plain segmentation ability: the paper's
warning about over-reliance on edits): selection clicks on the core of each large error
component (at most two), one brush stroke on the largest error region, or K truncated to
+-0.5. The service's `adjust` amount is -K / (1 + K) (positive grows). Target: the
reference.
"""

from __future__ import annotations

import numpy as np
import torch

from medseg.algorithms.editing import Edits, simulate_edits
from medseg.algorithms.metrics import dice
from medseg.models import editing_io
from medseg_train import augment
from medseg_train.data import evaluation_organs
from medseg_train.networks.unet import UNet
from medseg_train.objects import largest_component
from medseg_train.propagation import Objects, Samples, loss_fn  # noqa: F401 - loss_fn: same recipe

NETWORK = {"base": 16, "levels": 4}
MIN_AREA = 30  # voxels of the object on the slice
KIND_WEIGHTS = {"none": 0.1, "select": 0.35, "brush": 0.3, "adjust": 0.25}
PERTURBATIONS = ("boundary", "bite", "bulge", "false_blob")


def build_network() -> UNet:
    return UNet(dims=2, in_channels=editing_io.IN_CHANNELS, **NETWORK)


def _disc(shape, centre, radius: float) -> np.ndarray:
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2


def perturb(gt: np.ndarray, rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """An imperfect version of the (Y, X) reference `gt` (see the module doc)."""
    from scipy import ndimage

    kind = kind or str(rng.choice(PERTURBATIONS))
    points = np.argwhere(gt)
    if len(points) == 0:
        return gt.copy()
    extent = float(max(np.ptp(points, axis=0).max(), 4))
    auto = gt.copy()
    if kind == "boundary":
        steps = int(rng.integers(1, 4))
        op = ndimage.binary_dilation if rng.random() < 0.5 else ndimage.binary_erosion
        auto = op(gt, iterations=steps)
    else:
        edge = np.argwhere(gt & ~ndimage.binary_erosion(gt))
        centre = edge[int(rng.integers(len(edge)))].astype(float)
        radius = rng.uniform(0.15, 0.35) * extent
        if kind == "bite":
            auto = gt & ~_disc(gt.shape, centre, radius)
        elif kind == "bulge":
            outward = centre - points.mean(axis=0)
            outward /= max(float(np.linalg.norm(outward)), 1e-6)
            auto = gt | _disc(gt.shape, centre + outward * radius * 0.5, radius)
        else:  # a separate false blob somewhere near the object
            away = centre + rng.normal(size=2) * extent * 0.6
            auto = gt | _disc(gt.shape, away, rng.uniform(0.08, 0.2) * extent)
    return auto


def make_sample(image: np.ndarray, mask: np.ndarray, spacing, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray] | None:
    """(input (5, 96, 96), target bool (96, 96)) from a (Z, Y, X) object, or None."""
    picked = augment.flipped_slice(image, mask, rng, MIN_AREA)
    if picked is None:
        return None
    img, gt = picked
    auto = perturb(gt, rng)
    if rng.random() < 0.3:
        auto = perturb(auto & gt if rng.random() < 0.5 else auto, rng)
    if not auto.any() and not gt.any():
        return None
    names = list(KIND_WEIGHTS)
    kind = str(rng.choice(names, p=np.asarray([KIND_WEIGHTS[n] for n in names])))
    edits = simulate_edits(auto, gt, [kind], rng) if kind != "none" else Edits()
    if not auto.any() and not edits.kinds() & {"select", "brush"}:
        return None  # nothing to crop around
    img = augment.intensity(img, rng)
    x, crop = editing_io.network_input(img, auto, edits, spacing)
    return x, editing_io.target_on_grid(gt, crop)


def samples(batch_size: int, seed: int, real: bool = True) -> Samples:
    """Endless batches of simulated edits (the propagation recipe's objects and batching)."""
    return Samples(batch_size, seed, real, sample=make_sample)


def validation_slices(seed: int = 0, per_organ: int = 2):
    """(group, name, image, gt, auto, spacing) on held-out organs of every volume and seen
    organs of the validation volume: the organ's largest slice and its quartile slices, each
    with one fixed perturbation."""
    rng = np.random.default_rng(seed)
    for group, case, organ in evaluation_organs():
        mask = largest_component(case.mask(organ))
        areas = mask.sum(axis=(1, 2))
        shown = np.flatnonzero(areas >= MIN_AREA)
        if len(shown) == 0:
            continue
        picks = [int(np.argmax(areas))] + [int(shown[len(shown) * q // 4]) for q in (1, 3)]
        for t in picks[:per_organ]:
            kind = PERTURBATIONS[int(rng.integers(len(PERTURBATIONS)))]
            gt = mask[t]
            yield (group, f"{case.name}/{organ}/{t}/{kind}", case.image[t], gt,
                   perturb(gt, rng, kind), case.spacing[1:])


def validate(forward) -> dict:
    """Dice of the network's answer to each simulated edit kind against the perturbed mask's,
    per group (the benchmark, benchmarks/medseg_bench/editing.py, measures the served tools)."""
    groups: dict[str, dict[str, list[float]]] = {}
    for group, _name, image, gt, auto, spacing in validation_slices():
        scores = groups.setdefault(group, {"start": []})
        scores["start"].append(dice(auto, gt))
        for kind in ("none", "select", "brush", "adjust"):
            edits = simulate_edits(auto, gt, [kind]) if kind != "none" else Edits()
            probability, _ = editing_io.predict_slice(forward, image, auto, edits, spacing)
            scores.setdefault(kind, []).append(dice(probability > 0.5, gt))
    return {f"dice_{group}_{kind}": round(float(np.mean(v)), 4)
            for group, scores in groups.items() for kind, v in scores.items()}


def torch_forward(model: torch.nn.Module):
    model.eval()

    def forward(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    return forward
