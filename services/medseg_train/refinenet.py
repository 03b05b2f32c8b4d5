"""RefineNet recipes (refinenet-interactive-deep-refinement paper; issue 14 item 4): the organ
backbone (`medseg-train organ`) and the seed-guided refinement network (`medseg-train refine`).

Data split: the click and editing recipes keep liver, spleen and kidneys out of training
(HELD_OUT_ORGANS); an organ model must see those organs, so RefineNet holds out a *volume*
instead: it trains on the axial slices of totalseg ct_3mm and mr_3mm (every organ) and the
liver of dcmqi_ct3slice (its other organs are not labelled: their channels carry no loss
there), and is validated on totalseg/ct_dicom, which no recipe trains on.

Backbone sample: an axial slice on the network grid (refinenet_io: 3 mm, 160 x 160) under a
random rotation (+-15 deg), anisotropic scale (0.85..1.2), shift (+-20 mm) and flips of either
axis (the shared volumes' arrays come in both left-right orientations: ct_3mm has the liver at
high x, mr_3mm and ct_dicom at low x, so the kidneys' side must be learnt from the anatomy,
e.g. the liver's side, not from the array; a flip keeps the labels); intensity: gamma,
contrast, noise. Target:
one channel per organ of refinenet_io.ORGANS, -1 where the volume does not label the organ.
Loss: binary cross entropy + soft Dice per channel on the full-size output, the paper's pyramid
side outputs (1/2, 1/4) supervised with weights 0.5 and 0.25.

Refiner sample (paper sec. 2.2): a 2D slice (any axis) of an organ of the training volumes
(or a synthetic object, the propagation recipe's `Objects`), an imperfect initial result made
from its reference by the editing recipe's perturbations (or empty: a missed slice), and seeds
generated as eq. 1: delta = initial - reference; the skeleton of the over-segmented part
(delta > 0) gives background seeds, that of the under-segmented part (delta < 0) foreground
seeds. The paper uses whole skeleton lines; a user clicks points, so in SEED_MODES "skeleton"
samples keep every skeleton voxel, "points" samples keep one to three skeleton voxels (each
the one deepest inside its error component, biggest components first, as the robot user
clicks) and sometimes an old click that the initial result already satisfies; "none" samples
keep none (the refiner must then leave the initial result alone). The two networks are trained
separately (the paper trains them together): the refiner serves clicks on any start, not only
on the backbone's, so it learns from perturbed references rather than from the backbone's
(nearly perfect, on its own training volumes) results.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch.nn import functional as F

from medseg.algorithms.metrics import dice
from medseg.engine.imageio import ImageLimits, load_image, reorient_to
from medseg.engine.organ import organ_mask, organ_probability
from medseg.models import refinenet_io
from medseg_train import augment
from medseg_train.data import TRAIN_CASES, VALIDATION_CASE, data_root, load_case, load_nifti
from medseg_train.editing import perturb, perturbed_slices
from medseg_train.networks.refinenet import Backbone, Refiner
from medseg_train.objects import largest_component
from medseg_train.propagation import Objects

BACKBONE = {"base": 12, "levels": 4}
REFINER = {"base": 16}
EXTRA_CASE = "dcmqi_ct3slice"  # liver only
CASE_WEIGHTS = {"ct_3mm": 0.45, "mr_3mm": 0.35, EXTRA_CASE: 0.2,
                VALIDATION_CASE: 0.45}  # the last only in a fold model (`--fold`), never shipped
SIDE_WEIGHTS = (1.0, 0.5, 0.25)
SEED_MODES = {"skeleton": 0.3, "points": 0.6, "none": 0.1}
MIN_AREA = 30  # voxels of an object on a refiner slice
EMPTY_START = 0.05  # refiner samples whose initial result misses the slice entirely
# `--real-starts` (off by default: the committed refinenet-2d 1.0.0 was made without them)
CLICK_CROP = 0.6  # refiner samples cut as the served click crop around the robot's click
AXIAL_STARTS = 0.35  # refiner samples drawn from axial slices with the backbone's real starts
COARSE_START = 0.15  # other samples whose initial result is the reference on a coarse grid
# initial results of those: the backbone's own answer, the reference on a coarse grid, or a
# perturbed reference
AXIAL_KINDS = {"backbone": 0.5, "coarse": 0.3, "perturbed": 0.2}
EXTRA_WEIGHT = 0.3  # share of the axial draws from dcmqi_ct3slice's liver (0.8 mm CT)


# -- data -----------------------------------------------------------------------------------------
@functools.cache
def organ_volume(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, ...]]:
    """(image (Z, Y, X) float32, targets (Z, organs, Y, X) uint8, labelled (organs,) bool,
    spacing (sz, sy, sx)) of a training volume."""
    if name == EXTRA_CASE:
        root = data_root().parent / EXTRA_CASE
        path = root / "ct3slice_ct_image.nii.gz"
        volume = load_image([(path.name, path.read_bytes())], ImageLimits())
        seg = load_nifti(root / "ct3slice_ct_mask.nii.gz")
        raw = np.asarray(seg.dataobj).astype(np.int16).transpose(2, 1, 0)
        labels = reorient_to(volume.affine, volume.shape, raw, seg.affine)
        names = {int(k): v for k, v in json.loads(
            (root / "ct3slice_ct_labels.json").read_text()).items()}
        image, spacing = volume.array.astype(np.float32), tuple(float(s) for s in volume.spacing)
        value = {v: k for k, v in names.items()}
        masks = {"liver": labels == value["liver"]}
    else:
        case = load_case(name)
        image, spacing = case.image, case.spacing
        masks = {o: case.mask(o) for o in refinenet_io.ORGANS if o in case.organs.values()}
    targets = np.zeros((image.shape[0], len(refinenet_io.ORGANS), *image.shape[1:]), np.uint8)
    labelled = np.zeros(len(refinenet_io.ORGANS), dtype=bool)
    for k, organ in enumerate(refinenet_io.ORGANS):
        if organ in masks:
            targets[:, k] = masks[organ]
            labelled[k] = True
    return image, targets, labelled, spacing


def _affine(rng) -> np.ndarray:
    angle = np.deg2rad(rng.uniform(-15, 15))
    scale = rng.uniform(0.85, 1.2, size=2)
    c, s = np.cos(angle), np.sin(angle)
    flips = np.where(rng.random(2) < 0.5, -1.0, 1.0)  # volumes come in either orientation
    a = np.array([[c, -s], [s, c]]) @ np.diag(flips / scale)
    return np.concatenate([a, rng.uniform(-20, 20, size=(2, 1))], axis=1)


def organ_sample(rng, cases: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(input (1, *GRID_SIZE), target (organs, *GRID_SIZE) float32 in {-1, 0, 1})."""
    weights = np.asarray([CASE_WEIGHTS[c] for c in cases])
    name = cases[int(rng.choice(len(cases), p=weights / weights.sum()))]
    image, targets, labelled, spacing = organ_volume(name)
    z = int(rng.integers(image.shape[0]))
    affine = _affine(rng)
    unit = refinenet_io.to_grid(refinenet_io.unit_intensity(image[z]), spacing[1:], 1, affine)
    unit = np.clip(unit, 0, 1) ** rng.uniform(0.7, 1.4)
    unit = unit * rng.uniform(0.9, 1.1) + rng.uniform(-0.05, 0.05)
    unit = unit + rng.standard_normal(unit.shape).astype(np.float32) * rng.uniform(0, 0.03)
    target = np.stack([refinenet_io.to_grid(targets[z, k], spacing[1:], 0, affine)
                       if labelled[k] else -np.ones(refinenet_io.GRID_SIZE, np.float32)
                       for k in range(len(refinenet_io.ORGANS))])
    return (2.0 * unit - 1.0)[None].astype(np.float32), target.astype(np.float32)


def fold_cases(left_out: str) -> tuple[str, ...]:
    """The training volumes of a leave-one-volume-out fold model: every labelled abdominal
    volume (TRAIN_CASES, the validation volume, dcmqi_ct3slice) but `left_out` (one of
    TRAIN_CASES: the only volumes that label kidneys). Such a model is for measuring a
    held-out volume that has kidneys; it trains on the shipped model's held-out volume, so it
    is never shipped."""
    if left_out not in TRAIN_CASES:
        raise ValueError(f"a fold leaves out one of {', '.join(TRAIN_CASES)}, not {left_out!r}")
    return (*(c for c in TRAIN_CASES if c != left_out), VALIDATION_CASE, EXTRA_CASE)


class OrganSamples(torch.utils.data.IterableDataset):
    def __init__(self, batch_size: int, seed: int, real: bool = True,
                 cases: tuple[str, ...] | None = None):
        self.batch_size, self.seed = batch_size, seed
        self.cases = (cases or (*TRAIN_CASES, EXTRA_CASE)) if real else ()

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        while True:
            pairs = [organ_sample(rng, self.cases) if self.cases else _synthetic_organ(rng)
                     for _ in range(self.batch_size)]
            yield (torch.from_numpy(np.stack([p[0] for p in pairs])),
                   torch.from_numpy(np.stack([p[1] for p in pairs])))


def _synthetic_organ(rng) -> tuple[np.ndarray, np.ndarray]:
    """A blob per channel on noise: CI smoke runs without the shared data."""
    size = refinenet_io.GRID_SIZE
    yy, xx = np.mgrid[:size[0], :size[1]]
    target = np.zeros((len(refinenet_io.ORGANS), *size), np.float32)
    image = rng.standard_normal(size).astype(np.float32) * 0.1
    for k in range(len(refinenet_io.ORGANS)):
        cy, cx, r = rng.uniform(20, 108), rng.uniform(20, 108), rng.uniform(5, 20)
        target[k] = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        image += target[k] * (k + 1) / 6.0
    return image[None], target


def organ_loss(outputs, target: torch.Tensor) -> torch.Tensor:
    """BCE + soft Dice per labelled channel (target -1: no loss), on the pyramid outputs."""
    total = torch.zeros((), dtype=torch.float32, device=target.device)
    for weight, logits in zip(SIDE_WEIGHTS, outputs):
        t = target if logits.shape[-1] == target.shape[-1] else F.interpolate(
            target, size=logits.shape[-2:], mode="nearest")
        valid = (t >= 0).float()
        t = t.clamp(min=0)
        bce = F.binary_cross_entropy_with_logits(logits, t, weight=valid, reduction="sum")
        bce = bce / valid.sum().clamp(min=1)
        prob = torch.sigmoid(logits) * valid
        inter = (prob * t).sum(dim=(0, 2, 3))
        sums = prob.sum(dim=(0, 2, 3)) + (t * valid).sum(dim=(0, 2, 3))
        has = (valid.sum(dim=(0, 2, 3)) > 0).float()
        soft = 1 - (2 * inter + 1) / (sums + 1)
        total = total + weight * (bce + (soft * has).sum() / has.sum().clamp(min=1))
    return total


def build_backbone() -> Backbone:
    return Backbone(in_channels=1, classes=len(refinenet_io.ORGANS), **BACKBONE)


def torch_backbone(model: torch.nn.Module):
    model.eval()

    def forward(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(x, np.float32)))[0].numpy()

    return forward


def validate_organs(forward, case_name: str = VALIDATION_CASE) -> dict:
    """3D Dice per organ on a never-trained volume: the served post-processing (largest
    component of probability >= 0.5) of organ_probability."""
    case = load_case(case_name)
    scores = {}
    for organ in refinenet_io.ORGANS:
        if organ not in case.present():
            continue
        reference = case.mask(organ)
        mask = organ_mask(organ_probability(case.image, case.spacing, organ, forward))
        scores[organ] = round(dice(mask, reference), 4)
    return {"case": case_name, "dice": scores,
            "mean_dice": round(float(np.mean(list(scores.values()))), 4) if scores else None,
            "absent_organs": [o for o in refinenet_io.ORGANS if o not in scores]}


# -- refiner --------------------------------------------------------------------------------------
class RefineObjects(Objects):
    """The propagation recipe's objects (synthetic or real, any axis) with every organ of the
    training volumes (a volume is held out here, not organs)."""

    def __init__(self, rng: np.random.Generator, real: bool = True):
        super().__init__(rng, real=real)
        self.real = []
        for case in [load_case(n) for n in TRAIN_CASES] if real else []:
            for organ in case.present():
                mask = largest_component(case.mask(organ))
                if mask.sum() >= 50:
                    self.real.append((case, mask))


def _deepest(region: np.ndarray) -> tuple[int, int]:
    edt = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(edt)), region.shape)
    return int(y), int(x)


def generate_seeds(initial: np.ndarray, reference: np.ndarray, rng, mode: str
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(fg, bg) seed points (N, 2) from eq. 1: skeletons of the under-segmented (reference &
    ~initial: foreground) and over-segmented (initial & ~reference: background) regions."""
    from skimage.morphology import skeletonize

    empty = np.zeros((0, 2), np.int64)
    if mode == "none":
        return empty, empty
    under, over = reference & ~initial, initial & ~reference
    if mode == "skeleton":
        return (np.argwhere(skeletonize(under)) if under.any() else empty,
                np.argwhere(skeletonize(over)) if over.any() else empty)
    components = []
    for error, foreground in ((under, True), (over, False)):
        labels, count = ndimage.label(error)
        for k in range(1, count + 1):
            region = labels == k
            components.append((int(region.sum()), foreground, region))
    components.sort(key=lambda c: -c[0])
    fg: list[tuple[int, int]] = []
    bg: list[tuple[int, int]] = []
    for size, foreground, region in components[:int(rng.integers(1, 4))]:
        if size < 4:
            break
        (fg if foreground else bg).append(_deepest(region))
    if rng.random() < 0.3 and (initial & reference).any():  # an old, satisfied click
        inside = np.argwhere(initial & reference)
        y, x = inside[int(rng.integers(len(inside)))]
        fg.append((int(y), int(x)))
    as_array = lambda p: np.asarray(p, np.int64).reshape(-1, 2)
    return as_array(fg), as_array(bg)


def coarse(gt: np.ndarray, rng, spacing) -> np.ndarray:
    """The (Y, X) reference as a network on a coarse grid gives it (the backbone's 3.75 mm grid
    on a 1 mm slice: jagged boundary bands, a systematic shift in or out): the mask resampled
    to a 3-8 mm grid, noised there (fine and smooth noise), resampled back and thresholded
    at 0.35-0.65."""
    from medseg.algorithms.resample import resize_linear

    factor = max(float(rng.uniform(3.0, 8.0)) / float(min(spacing)), 1.3)
    small_shape = tuple(max(int(round(n / factor)), 4) for n in gt.shape)
    small = resize_linear(gt.astype(np.float32), small_shape)
    small = small + rng.normal(0.0, rng.uniform(0.0, 0.12), small.shape)
    small = small + ndimage.gaussian_filter(rng.normal(0.0, 1.0, small.shape), 2.0) * \
        rng.uniform(0.0, 0.6)
    back = resize_linear(small.astype(np.float32), gt.shape, antialias=False)
    return back >= rng.uniform(0.35, 0.65)


def _initial(gt: np.ndarray, rng) -> np.ndarray:
    if rng.random() < EMPTY_START:
        return np.zeros_like(gt)
    initial = perturb(gt, rng)
    if rng.random() < 0.4:
        initial = perturb(initial & gt if rng.random() < 0.5 else initial, rng)
    return initial


def sample_from(img: np.ndarray, gt: np.ndarray, initial: np.ndarray, spacing, rng,
                click_crop: float = CLICK_CROP) -> tuple[np.ndarray, np.ndarray] | None:
    """One refiner sample (input, target on the grid) of a (Y, X) slice, its reference and an
    initial result: seeds as eq. 1 (SEED_MODES); with probability `click_crop` (and a click the
    initial result contradicts) the served click crop around the robot's click, else the
    object crop."""
    modes = list(SEED_MODES)
    mode = str(rng.choice(modes, p=np.asarray([SEED_MODES[m] for m in modes])))
    fg, bg = generate_seeds(initial, gt, rng, mode)
    if not initial.any() and len(fg) == 0:
        return None
    crop = None
    click = (robot_seed(initial, gt) if click_crop > 0 and mode != "none"
             and rng.random() < click_crop else None)
    if click is not None:
        point = np.asarray([click[0]], np.int64)
        if click[1]:
            fg = np.concatenate([fg, point])
        else:
            bg = np.concatenate([bg, point])
        none = np.zeros((0, 2), np.int64)
        crop = refinenet_io.click_crop(initial, point if click[1] else none,
                                       none if click[1] else point, spacing)
    img = augment.intensity(img, rng)
    x, crop = refinenet_io.refine_input(img, initial.astype(np.float32), fg, bg, spacing, crop)
    return x, refinenet_io.target_on_grid(gt, crop)


def refine_sample(image: np.ndarray, mask: np.ndarray, spacing, rng, real_starts: bool = False
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    picked = augment.flipped_slice(image, mask, rng, MIN_AREA)
    if picked is None:
        return None
    img, gt = picked
    if real_starts and rng.random() < COARSE_START:
        initial = coarse(gt, rng, spacing)
    else:
        initial = _initial(gt, rng)
    return sample_from(img, gt, initial, spacing, rng, CLICK_CROP if real_starts else 0.0)


@functools.cache
def backbone_starts(real: bool = True) -> list[tuple[np.ndarray, np.ndarray, np.ndarray,
                                                     tuple[float, float], float]]:
    """(image, reference, backbone start, in-plane spacing, draw weight) (Z, Y, X) per organ of
    the backbone's training volumes (TRAIN_CASES and dcmqi_ct3slice's liver): the served organ
    start (organ_probability + organ_mask, the committed backbone) on volumes it was trained
    on, so its errors are real but small."""
    if not real:
        return []
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float], float]] = []
    for name in (*TRAIN_CASES, EXTRA_CASE):
        image, targets, labelled, spacing = organ_volume(name)
        organs = [k for k in range(len(refinenet_io.ORGANS)) if labelled[k]]
        for k in organs:
            gt = targets[:, k] > 0
            if gt.sum() < 50:
                continue
            start = organ_mask(organ_probability(image, spacing, refinenet_io.ORGANS[k]))
            weight = EXTRA_WEIGHT if name == EXTRA_CASE else \
                (1 - EXTRA_WEIGHT) / (len(TRAIN_CASES) * len(organs))
            rows.append((image, gt, start, (float(spacing[1]), float(spacing[2])), weight))
    return rows


def axial_sample(rng, rows) -> tuple[np.ndarray, np.ndarray] | None:
    """A refiner sample from an axial slice of `backbone_starts`, its initial result one of
    AXIAL_KINDS."""
    weights = np.asarray([r[4] for r in rows])
    image, gt3, start3, spacing, _ = rows[int(rng.choice(len(rows), p=weights / weights.sum()))]
    shown = np.flatnonzero(gt3.sum(axis=(1, 2)) >= MIN_AREA)
    if len(shown) == 0:
        return None
    z = int(rng.choice(shown))
    kinds = list(AXIAL_KINDS)
    kind = str(rng.choice(kinds, p=np.asarray([AXIAL_KINDS[k] for k in kinds])))
    gt = gt3[z]
    initial = (start3[z] if kind == "backbone" else coarse(gt, rng, spacing)
               if kind == "coarse" else _initial(gt, rng))
    img = image[z].astype(np.float32)
    for axis in (0, 1):
        if rng.random() < 0.5:
            img, gt, initial = (np.flip(a, axis) for a in (img, gt, initial))
    return sample_from(np.ascontiguousarray(img), np.ascontiguousarray(gt),
                       np.ascontiguousarray(initial), spacing, rng)


class RefineSamples(torch.utils.data.IterableDataset):
    def __init__(self, batch_size: int, seed: int, real: bool = True, real_starts: bool = False):
        self.batch_size, self.seed, self.real = batch_size, seed, real
        self.real_starts = real_starts

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        objects = RefineObjects(rng, real=self.real)
        rows = backbone_starts(self.real) if self.real_starts else []
        while True:
            xs: list[np.ndarray] = []
            ys: list[np.ndarray] = []
            while len(xs) < self.batch_size:
                sample = (axial_sample(rng, rows) if rows and rng.random() < AXIAL_STARTS
                          else refine_sample(*objects(), rng, self.real_starts))
                if sample is not None:
                    xs.append(sample[0])
                    ys.append(sample[1])
            yield torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def build_refiner() -> Refiner:
    return Refiner(**REFINER)


def torch_refiner(model: torch.nn.Module):
    model.eval()

    def forward(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()

    return forward


def robot_seed(pred: np.ndarray, ref: np.ndarray) -> tuple[tuple[int, int], bool] | None:
    """The robot user's next click on a (Y, X) slice: the deepest voxel of the largest error
    component (medseg_bench.robot's rule), or None when there is no error."""
    best = None
    for error, foreground in ((ref & ~pred, True), (pred & ~ref, False)):
        labels, count = ndimage.label(error)
        if count == 0:
            continue
        sizes = np.bincount(labels.ravel())[1:]
        k = int(np.argmax(sizes))
        if best is None or sizes[k] > best[0]:
            best = (sizes[k], labels == k + 1, foreground)
    if best is None:
        return None
    return _deepest(best[1]), best[2]


def robot_click_trace(mask: np.ndarray, reference: np.ndarray, clicks: int, answer
                      ) -> list[float]:
    """Dice of a (Y, X) slice after 0..clicks robot clicks (robot_seed). `answer(mask, fg, bg,
    click)` is the mask after a click: given the mask before it, every click so far as (N, 2)
    foreground / background seeds and the new click ((y, x), foreground?). A slice without
    errors keeps its Dice. The one robot loop of the refiner's validation (refine_with_clicks)
    and the benchmark's tuning proxy (medseg_bench.refinenet --proxy)."""
    scores = [dice(mask, reference)]
    fg: list[tuple[int, int]] = []
    bg: list[tuple[int, int]] = []
    for _ in range(clicks):
        click = robot_seed(mask, reference)
        if click is None:
            scores.append(scores[-1])
            continue
        (fg if click[1] else bg).append(click[0])
        mask = answer(mask, np.asarray(fg, np.int64).reshape(-1, 2),
                      np.asarray(bg, np.int64).reshape(-1, 2), click)
        scores.append(dice(mask, reference))
    return scores


def refine_with_clicks(forward, image: np.ndarray, initial: np.ndarray, reference: np.ndarray,
                       spacing, clicks: int = 3, threshold: float = 0.5,
                       click_crop: bool = False) -> list[float]:
    """Dice of a (Y, X) slice after 0..clicks robot clicks, each answered by the refiner on the
    current mask with all clicks so far as seeds, in the object crop (as served by default) or
    the click crop around the new click (no local merge, no snap: the network's own answer)."""

    def network_answer(mask: np.ndarray, fg: np.ndarray, bg: np.ndarray, click) -> np.ndarray:
        point, none = np.asarray([click[0]], np.int64), np.zeros((0, 2), np.int64)
        crop = None if not click_crop else refinenet_io.click_crop(
            mask, point if click[1] else none, none if click[1] else point, spacing)
        probability, _ = refinenet_io.predict_refinement(
            forward, image, mask.astype(np.float32), fg, bg, spacing, crop)
        return probability >= threshold

    return robot_click_trace(np.asarray(initial, dtype=bool), reference, clicks, network_answer)


def validate_refiner(forward, per_organ: int = 3, seed: int = 0, click_crop: bool = False
                     ) -> dict:
    """Dice after 0..3 robot clicks on axial slices of the never-trained volume's organs (the
    largest slice and its quartiles), each started from one fixed perturbation."""
    rng = np.random.default_rng(seed)
    case = load_case(VALIDATION_CASE)
    rows = []
    for organ in case.present():
        mask = largest_component(case.mask(organ))
        for t, _, start in perturbed_slices(mask, rng, per_organ, MIN_AREA):
            rows.append(refine_with_clicks(forward, case.image[t], start, mask[t],
                                           case.spacing[1:], click_crop=click_crop))
    means = np.mean(np.asarray(rows), axis=0) if rows else []
    return {"case": VALIDATION_CASE, "slices": len(rows),
            **{f"dice_after_{k}_clicks": round(float(v), 4) for k, v in enumerate(means)}}


def card_path(out: Path, name: str) -> Path:
    return Path(out) / f"{name}.onnx"
