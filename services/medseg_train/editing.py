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

Second version (issue 14's unmet targets): the paper's robustness test (sec. 3.3: an "add" edit
in clear background or a "remove" edit deep inside the organ changes little) is trained, not
hoped for: "refuse" samples put a selection click or a short brush stroke that asks for the
wrong thing (add 4-24 mm outside the object, remove deep inside it) on a mostly correct mask,
and the target stays the reference. Selection gets the largest share of samples (the served
`adjust` does not use the adjustment channel, so it gets less), and the objects also come from
the newly licensed sets that may train shipped weights (EXTRA_SETS; ../shared/data/README.md):
the mirp_sts sarcomas of patients 1 and 2 (CT and T1 MR), dcmqi_ct3slice (vertebra, heart: its
liver is a held-out organ) and the voxelmorph brain MR's structures less its deep grey ones.
Held-out organs and volumes, ct_dicom and the evaluation-only sets never train. A run may
start from the shipped weights (`--init-from`) and continue them on this recipe.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from scipy import ndimage
from torch.nn import functional as F

from medseg.algorithms.editing import Edits, simulate_edits
from medseg.algorithms.metrics import dice
from medseg.models import editing_io
from medseg_train import augment
from medseg_train.data import (
    EXTRA_SETS,
    evaluation_organs,
    load_case,
)
from medseg_train.networks.unet import UNet
from medseg_train.objects import largest_component
from medseg_train.propagation import Objects, Samples

NETWORK = {"base": 16, "levels": 4}
MIN_AREA = 30  # voxels of the object on the slice
# "refuse": an edit that asks for the wrong thing (module doc); the target is the reference
KIND_WEIGHTS = {"none": 0.08, "select": 0.42, "brush": 0.25, "adjust": 0.1, "refuse": 0.15}
PERTURBATIONS = ("boundary", "bite", "bulge", "false_blob")
REFUSE_ON_REFERENCE = 0.7  # refuse samples whose imperfect mask is the reference itself
REFUSE_ADD_MM = (4.0, 12.0, 12.0)  # add marks: from d .. d + 12 mm outside, d drawn in 4-12 mm
REFUSE_DEPTH = 3  # voxels: remove marks only on objects at least this thick, in their deeper half
# newly licensed sets that may train shipped weights: data.EXTRA_SETS (../shared/data/README.md),
# with the same held-out volumes and structures as the other recipes (issue 13 item 5); their
# axial-only sets (3.27 mm sarcoma slices, the 3-slice dcmqi CT) are cut axially only
EXTRA_FRACTION = 0.35  # of the objects; the rest: the propagation recipe's (synthetic, totalseg)
# by set; this order is the draw order of the shipped run (keep it: same samples per seed)
EXTRA_WEIGHTS = {"mirp_sts": 0.45, "dcmqi_ct3slice": 0.2, "voxelmorph_testscan": 0.35}
SELECT_WEIGHT = 3.0  # cross-entropy weight of the error components a selection click lands in
EXTRA_MARGIN_MM = 40.0  # each extra object is kept cut to its box + this, for memory and speed


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


@functools.cache
def extra_objects(folder: str, stem: str) -> tuple[tuple[str, np.ndarray, np.ndarray,
                                                         tuple[float, float, float]], ...]:
    """(structure, image, mask, spacing) of every trainable labelled structure of one extra
    volume (its largest component, >= 50 voxels, never a held-out organ or structure),
    each cut to its box
    + EXTRA_MARGIN_MM; arrays (Z, Y, X) as a session reads the file."""
    case = load_case(f"{folder}/{stem}")  # the recipes' one reader of the extra sets
    image, labels, spacing = case.image, case.labels, case.spacing
    margin = np.ceil(EXTRA_MARGIN_MM / np.asarray(spacing)).astype(int)
    boxes = ndimage.find_objects(np.clip(labels, 0, None))
    out = []
    for value, name in sorted(case.organs.items()):
        if case.is_held_out(name) or value > len(boxes) or boxes[value - 1] is None:
            continue
        box = tuple(slice(max(b.start - m, 0), b.stop + m)
                    for b, m in zip(boxes[value - 1], margin))
        mask = largest_component(labels[box] == value)
        if mask.sum() >= 50:
            out.append((name, np.ascontiguousarray(image[box]), mask,
                        (spacing[0], spacing[1], spacing[2])))
    return tuple(out)


class EditObjects:
    """The propagation recipe's `Objects` (synthetic volumes, seen organs of the totalseg
    training volumes) and, EXTRA_FRACTION of the time, a structure of an EXTRA_SETS volume,
    as (image, mask, in-plane spacing) with the slicing axis first."""

    def __init__(self, rng: np.random.Generator, real: bool = True):
        self.rng, self.base = rng, Objects(rng, real=real)
        self.extra: dict[str, list] = {}
        for extra in EXTRA_SETS if real else ():
            if 2 not in extra.dims:
                continue
            axes = (0,) if extra.axial_only else (0, 1, 2)
            for case in extra.case_names():
                stem = case.split("/", 1)[1]
                self.extra.setdefault(extra.folder, []).extend(
                    (obj, axes) for obj in extra_objects(extra.folder, stem))

    def __call__(self) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
        if not self.extra or self.rng.random() >= EXTRA_FRACTION:
            return self.base()
        folders = [f for f in EXTRA_WEIGHTS if f in self.extra]
        weights = np.asarray([EXTRA_WEIGHTS[f] for f in folders])
        pool = self.extra[folders[int(self.rng.choice(len(folders), p=weights / weights.sum()))]]
        (_, image, mask, spacing), axes = pool[int(self.rng.integers(len(pool)))]
        axis = int(self.rng.choice(axes))
        sy, sx = (s for k, s in enumerate(spacing) if k != axis)
        return np.moveaxis(image, axis, 0), np.moveaxis(mask, axis, 0), (sy, sx)


def refused_edit(auto: np.ndarray, gt: np.ndarray, spacing, rng: np.random.Generator,
                 add: bool | None = None) -> Edits | None:
    """An edit the network must (mostly) ignore (the paper's sec. 3.3): a selection click
    (60 %) or a 3-10 voxel brush stroke that adds in clear background (d .. d + 12 mm away
    from both masks, d in 4-12 mm) or removes deep inside the object (where both masks agree,
    in the deeper half of an object at least REFUSE_DEPTH voxels thick). None when the slice
    has no such place. `add` forces the sign."""
    add = bool(rng.random() < 0.5) if add is None else add
    if add:
        outside = ndimage.distance_transform_edt(~(gt | auto), sampling=spacing)
        low = rng.uniform(*REFUSE_ADD_MM[:2])
        allowed = outside >= 2.0
        where = np.argwhere((outside >= low) & (outside <= low + REFUSE_ADD_MM[2]))
    else:
        inside = ndimage.distance_transform_edt(np.pad(gt & auto, 1))[1:-1, 1:-1]
        if inside.max() < REFUSE_DEPTH:
            return None
        allowed = inside >= 1
        where = np.argwhere(inside >= inside.max() * rng.uniform(0.5, 0.9))
    if len(where) == 0:
        return None
    point = where[int(rng.integers(len(where)))]
    select = bool(rng.random() < 0.6)
    if select:
        points = point[None]
    else:
        angle = rng.uniform(0, np.pi)
        steps = np.arange(int(rng.integers(3, 11)))[:, None] - 1
        line = np.rint(point + steps * np.array([np.sin(angle), np.cos(angle)])).astype(np.int64)
        line = line[np.all((line >= 0) & (line < np.asarray(gt.shape)), axis=1)]
        points = np.unique(line[allowed[tuple(line.T)]], axis=0)
        if len(points) == 0:
            return None
    empty = np.zeros((0, 2), np.int64)
    fg, bg = (points, empty) if add else (empty, points)
    if select:
        return Edits(select_add=fg, select_remove=bg)
    return Edits(brush_add=fg, brush_remove=bg)


def make_sample(image: np.ndarray, mask: np.ndarray, spacing, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray] | None:
    """(input (5, 96, 96), target uint8 (96, 96): bit 0 the reference, bit 1 the error
    components a selection click lands in) from a (Z, Y, X) object, or None."""
    picked = augment.flipped_slice(image, mask, rng, MIN_AREA)
    if picked is None:
        return None
    img, gt = picked
    names = list(KIND_WEIGHTS)
    kind = str(rng.choice(names, p=np.asarray([KIND_WEIGHTS[n] for n in names])))
    if kind == "refuse" and rng.random() < REFUSE_ON_REFERENCE:
        auto = gt.copy()
    else:
        auto = perturb(gt, rng)
        if rng.random() < 0.3:
            auto = perturb(auto & gt if rng.random() < 0.5 else auto, rng)
    if not auto.any() and not gt.any():
        return None
    if kind == "refuse":
        refused = refused_edit(auto, gt, spacing, rng)
        if refused is None:
            return None
        edits = refused
    else:
        edits = simulate_edits(auto, gt, [kind], rng) if kind != "none" else Edits()
    if not auto.any() and not edits.kinds() & {"select", "brush"}:
        return None  # nothing to crop around
    img = augment.intensity(img, rng)
    x, crop = editing_io.network_input(img, auto, edits, spacing)
    target = editing_io.target_on_grid(gt, crop).astype(np.uint8)
    if kind == "select":  # bit 1: the clicked error components, weighted in the loss
        target |= editing_io.target_on_grid(clicked_errors(auto, gt, edits), crop).astype(
            np.uint8) << 1
    return x, target


def clicked_errors(auto: np.ndarray, gt: np.ndarray, edits: Edits) -> np.ndarray:
    """The connected error components (auto XOR gt, 8-connected) that hold a selection click:
    the region one click should fill or erase."""
    labels, _ = ndimage.label(auto ^ gt, structure=np.ones((3, 3), bool))
    points = np.concatenate([edits.select_add, edits.select_remove]).reshape(-1, 2)
    hit = np.unique(labels[tuple(points.T)])
    return np.isin(labels, hit[hit > 0])


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The propagation recipe's loss (cross entropy + batch soft Dice) on bit 0 of the target,
    the cross entropy weighted SELECT_WEIGHT on the clicked error components (bit 1): what a
    selection click must fill or erase counts more than the rest of the slice."""
    label = (target % 2).long()
    weight = 1.0 + (SELECT_WEIGHT - 1.0) * (target >= 2).float()
    cross = (F.cross_entropy(logits, label, reduction="none") * weight).sum() / weight.sum()
    prob = torch.softmax(logits, dim=1)[:, 1]
    target_f = label.float()
    dice = (2 * (prob * target_f).sum() + 1) / (prob.sum() + target_f.sum() + 1)
    return cross + (1 - dice)


def samples(batch_size: int, seed: int, real: bool = True) -> Samples:
    """Endless batches of simulated edits (the propagation recipe's objects and batching)."""
    return Samples(batch_size, seed, real, sample=make_sample, objects=EditObjects)


def validation_slices(seed: int = 0, per_organ: int = 2):
    """(group, name, image, gt, auto, spacing) on held-out organs of every volume and seen
    organs of the validation volume: the organ's largest slice and its quartile slices, each
    with one fixed perturbation."""
    rng = np.random.default_rng(seed)
    for group, case, organ in evaluation_organs():
        mask = largest_component(case.mask(organ))
        for t, kind, start in perturbed_slices(mask, rng, per_organ):
            yield (group, f"{case.name}/{organ}/{t}/{kind}", case.image[t], mask[t], start,
                   case.spacing[1:])


def perturbed_slices(mask: np.ndarray, rng, per_organ: int, min_area: int = MIN_AREA):
    """(z, kind, start) on validation slices of an organ's (Z, Y, X) mask: its largest axial
    slice and its quartile slices among those with at least `min_area` voxels (at most
    `per_organ` of them), each started from one perturbation of `kind` drawn from `rng`.
    Shared by this recipe's and the refiner's validation (refinenet.validate_refiner)."""
    areas = mask.sum(axis=(1, 2))
    shown = np.flatnonzero(areas >= min_area)
    if len(shown) == 0:
        return
    picks = [int(np.argmax(areas))] + [int(shown[len(shown) * q // 4]) for q in (1, 3)]
    for t in picks[:per_organ]:
        kind = PERTURBATIONS[int(rng.integers(len(PERTURBATIONS)))]
        yield t, kind, perturb(mask[t], rng, kind)


def validate(forward) -> dict:
    """Dice of the network's answer to each simulated edit kind against the perturbed mask's,
    and the share of a correct mask that a refused edit changes, per group (the benchmark,
    benchmarks/medseg_bench/editing.py, measures the served tools)."""
    groups: dict[str, dict[str, list[float]]] = {}
    for group, _name, image, gt, auto, spacing in validation_slices():
        scores = groups.setdefault(group, {"start": []})
        scores["start"].append(dice(auto, gt))
        for kind in ("none", "select", "brush", "adjust"):
            edits = simulate_edits(auto, gt, [kind]) if kind != "none" else Edits()
            probability, _ = editing_io.predict_slice(forward, image, auto, edits, spacing)
            scores.setdefault(kind, []).append(dice(probability > 0.5, gt))
        # the paper's robustness test on the reference itself: changed share of its area
        for sign in ("add", "remove"):
            refused = refused_edit(gt, gt, spacing, np.random.default_rng(len(scores["start"])),
                                   add=sign == "add")
            if refused is not None:
                probability, _ = editing_io.predict_slice(forward, image, gt, refused, spacing)
                changed = float(((probability > 0.5) ^ gt).sum() / max(gt.sum(), 1))
                scores.setdefault(f"refuse_{sign}", []).append(changed)
    # refuse_*: the changed share (small is good), not a Dice
    return {f"{'changed' if kind.startswith('refuse') else 'dice'}_{group}_{kind}":
            round(float(np.mean(v)), 4)
            for group, scores in groups.items() for kind, v in scores.items()}


def torch_forward(model: torch.nn.Module):
    model.eval()

    def forward(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    return forward
