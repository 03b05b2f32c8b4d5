"""Slice-propagation recipe (the slice-propagation paper, sec. 2.3): samples, network,
loss and one-shot validation for the 2D U-Net that segments slice t from its image and the mask
of a neighbouring slice (the prior).

A sample: a 3D object (a seen organ of the training volumes, sliced along any of the three
axes of these isotropic 3 mm volumes, or an object of a synthetic volume), a slice t where it
shows, the prior = its mask on slice t + d, d uniform in {-2, -1, 1, 2} (paper: +-2), and the
target = its mask on slice t. STOP_FRACTION of the samples put the prior on the object's last
slice and t past it, so the target is empty: the network learns to stop. Augmentation as the
paper: the same scaling (+-20 %, per axis), rotation (+-180 deg) and flips of image, prior and
target, then the prior alone perturbed (PRIOR_* below), then intensity (gamma, inversion,
noise; brightness and linear contrast are removed by the per-crop z-score anyway).

Prior perturbation: the paper's best setting is +-1 deg and +-10 %, and its ablation (Table 2)
finds +-10 deg just as good. With the paper's +-1 deg, our first 20-minute CPU run (1571
steps) learned to copy the prior and ignore the image: one-step Dice equal to the prior's own
overlap, no stop at the organ's end, one-shot Dice 0.64 on held-out organs. A copied prior must
be wrong often enough that reading the image pays, so the prior is rotated +-10 deg, scaled
+-15 % per axis, shifted up to 4 % of its crop and sometimes dilated or eroded by 1-2 voxels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage
from torch.nn import functional as F

from medseg.algorithms.metrics import dice
from medseg.models.propagation_io import (
    Crop,
    crop_around,
    cut,
    network_input,
    predict_slice,
    target_on_grid,
)
from medseg_train import augment
from medseg_train.data import TRAIN_CASES, RealCase, evaluation_organs, load_case
from medseg_train.networks.unet import UNet
from medseg_train.objects import ObjectSampler, largest_component
from medseg_train.synthetic import synthetic_case

NETWORK = {"base": 16, "levels": 4}
OFFSETS = (-2, -1, 1, 2)
STOP_FRACTION = 0.2
PRIOR_DEGREES = 10.0
PRIOR_SCALE = (0.85, 1.15)
PRIOR_SHIFT = 0.04  # of the crop's side
PRIOR_MORPHOLOGY = 0.3  # probability of a 1-2 voxel dilation or erosion
SYNTHETIC_FRACTION = 0.4
SYNTHETIC_SHAPE = (40, 96, 96)
SYNTHETIC_SPACING_MM = (0.8, 3.0)  # in-plane spacing drawn per synthetic case
MIN_PRIOR_VOXELS = 3
# One-shot propagation stops when a slice's prediction falls under this fraction of the start
# slice's area (or MIN_PRIOR_VOXELS): "empty or tiny".
STOP_AREA_FRACTION = 0.01


def build_network() -> UNet:
    return UNet(dims=2, in_channels=2, **NETWORK)


class Objects:
    """Random 3D objects as (image, mask, in-plane spacing) with the slicing axis first:
    synthetic with probability `synthetic_fraction`, else a seen organ of the training volumes
    (never a held-out one, ObjectSampler.training_organs) along a random axis."""

    def __init__(self, rng: np.random.Generator, real: bool = True, pool_size: int = 12):
        self.rng, self.pool_size = rng, pool_size
        # synthetic volumes: (image, its objects' masks, spacing)
        self.pool: list[tuple[np.ndarray, list[np.ndarray], tuple[float, float, float]]] = []
        self.synthetic_fraction = SYNTHETIC_FRACTION if real else 1.0
        self.real: list[tuple[RealCase, np.ndarray]] = []
        for case in [load_case(n) for n in TRAIN_CASES] if real else []:
            for organ in ObjectSampler.training_organs(case):
                mask = largest_component(case.mask(organ))
                if mask.sum() >= 50:
                    self.real.append((case, mask))

    def __call__(self) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
        if self.rng.random() < self.synthetic_fraction:
            image, mask, spacing = self._synthetic()
        else:
            case, mask = self.real[int(self.rng.integers(len(self.real)))]
            image, spacing = case.image, case.spacing
        axis = int(self.rng.integers(3))
        sy, sx = (float(s) for k, s in enumerate(spacing) if k != axis)
        return np.moveaxis(image, axis, 0), np.moveaxis(mask, axis, 0), (sy, sx)

    def _synthetic(self) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
        # a 3D case costs ~0.4 s: keep a pool and replace one case now and then
        if len(self.pool) < self.pool_size or self.rng.random() < 0.02:
            case = synthetic_case(self.rng, SYNTHETIC_SHAPE)
            masks = [largest_component(case.labels == v) for v in np.unique(case.labels) if v > 0]
            side = float(self.rng.uniform(*SYNTHETIC_SPACING_MM))
            spacing = (side, side, side)
            if len(self.pool) >= self.pool_size:
                self.pool.pop(int(self.rng.integers(len(self.pool))))
            self.pool.append((case.image, masks, spacing))
        image, masks, spacing = self.pool[int(self.rng.integers(len(self.pool)))]
        return image, masks[int(self.rng.integers(len(masks)))], spacing


def choose_slices(mask: np.ndarray, rng) -> tuple[int, int] | None:
    """(t, t + d) for a (Z, Y, X) object mask: a stop sample (prior on an end slice, t past
    it, possibly outside the volume: None then) or t where the object shows."""
    areas = mask.sum(axis=(1, 2))
    shown = np.flatnonzero(areas >= MIN_PRIOR_VOXELS)
    if len(shown) == 0:
        return None
    d = int(rng.choice(OFFSETS))
    if rng.random() < STOP_FRACTION:
        end = int(shown[-1] if d < 0 else shown[0])  # the prior sits d slices past t
        t = end - d
        return (t, end) if 0 <= t < len(areas) and areas[t] == 0 else None
    t = int(rng.choice(np.flatnonzero(areas > 0)))
    if not 0 <= t + d < len(areas) or areas[t + d] < MIN_PRIOR_VOXELS:
        return None
    return t, t + d


def _affine(shape, rng, degrees: float, scale: tuple[float, float], flip: bool,
            shift: float = 0.0):
    """(matrix, offset) for ndimage.affine_transform about the centre of a (Y, X) patch, then
    shifted by up to `shift` voxels per axis."""
    angle = np.deg2rad(rng.uniform(-degrees, degrees))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    factors = rng.uniform(*scale, size=2)
    signs = np.where(rng.random(2) < 0.5, -1.0, 1.0) if flip else np.ones(2)
    matrix = rotation @ np.diag(signs / factors)  # output -> input coordinates
    centre = (np.asarray(shape) - 1) / 2.0
    return matrix, centre - matrix @ centre + rng.uniform(-shift, shift, size=2)


def perturb_prior(prior: np.ndarray, crop_side: int, rng) -> np.ndarray:
    """The prior as a slightly wrong propagation would give it (see the module docstring)."""
    affine = _affine(prior.shape, rng, PRIOR_DEGREES, PRIOR_SCALE, False, PRIOR_SHIFT * crop_side)
    prior = _warp(prior, affine, 1) > 0.5
    if rng.random() < PRIOR_MORPHOLOGY:
        grow = rng.random() < 0.5
        operation = ndimage.binary_dilation if grow else ndimage.binary_erosion
        prior = operation(prior, iterations=int(rng.integers(1, 3)))
    return prior


def _warp(array: np.ndarray, affine, order: int) -> np.ndarray:
    matrix, offset = affine
    return ndimage.affine_transform(np.asarray(array, dtype=np.float32), matrix, offset,
                                    order=order, mode="nearest")


def make_sample(image: np.ndarray, mask: np.ndarray, spacing: tuple[float, float],
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """(input (2, 96, 96), target bool (96, 96)) from a (Z, Y, X) object or None."""
    chosen = choose_slices(mask, rng)
    if chosen is None:
        return None
    t, p = chosen
    prior, target = mask[p], mask[t]
    # a patch big enough that rotating and scaling never bring the edge into the crop
    crop = crop_around(prior, spacing)
    grow = np.ceil(np.asarray(crop.shape) * 0.55).astype(int)
    (y0, x0), (ny, nx) = np.asarray(crop.lo) - grow, np.asarray(crop.shape) + 2 * grow
    patch = Crop((int(y0), int(x0)), (int(ny), int(nx)))
    image, prior, target = (cut(a, patch) for a in (image[t], prior, target))
    both = _affine(image.shape, rng, 180.0, (0.8, 1.2), flip=True)
    image = _warp(image, both, 1)
    target = _warp(target, both, 1) > 0.5
    prior = perturb_prior(_warp(prior, both, 1) > 0.5, max(crop.shape), rng)
    if prior.sum() < MIN_PRIOR_VOXELS:
        return None
    image = augment.intensity(image, rng)
    x, crop = network_input(image, prior, spacing)
    return x, target_on_grid(target, crop)


# what an object source gives: (image, mask, in-plane spacing), the slicing axis first
ObjectDraw = tuple[np.ndarray, np.ndarray, tuple[float, float]]


class Samples(torch.utils.data.IterableDataset):
    """Endless batches; each DataLoader worker seeds its own generator from `seed`.
    `sample(image, mask, spacing, rng)` makes one (input, target) pair or None from an object
    of `objects(rng, real=...)` (default `Objects`; this recipe's `make_sample`; the editing
    recipe passes its own of both)."""

    def __init__(self, batch_size: int, seed: int, real: bool = True, sample=None,
                 objects: Callable[..., Callable[[], ObjectDraw]] | None = None):
        self.batch_size, self.seed, self.real = batch_size, seed, real
        self.sample = sample or make_sample
        self.objects = objects or Objects

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        objects = self.objects(rng, real=self.real)
        while True:
            xs: list[np.ndarray] = []
            ys: list[np.ndarray] = []
            while len(xs) < self.batch_size:
                sample = self.sample(*objects(), rng)
                if sample is not None:
                    xs.append(sample[0])
                    ys.append(sample[1])
            yield torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross entropy (the paper's) plus a soft Dice over the whole batch: Dice keeps small
    objects (pancreas, tips of organs) from drowning in background pixels, and pooling it over
    the batch keeps it defined for the empty targets of stop samples."""
    prob = torch.softmax(logits, dim=1)[:, 1]
    target_f = target.float()
    dice = (2 * (prob * target_f).sum() + 1) / (prob.sum() + target_f.sum() + 1)
    return F.cross_entropy(logits, target.long()) + (1 - dice)


def one_shot(predict, image: np.ndarray, reference: np.ndarray, spacing) -> np.ndarray:
    """The paper's one-shot evaluation (sec. 3.1): the reference mask of the object's largest
    slice along axis 0 of (Z, Y, X) `image`, propagated slice by slice both ways with
    `predict(image_slice, prior_mask, spacing_2d) -> probability` until the prediction is
    tiny (STOP_AREA_FRACTION of the start area) or the volume ends. Returns the bool mask.
    A stand-in for the engine's propagation loop, for validation and the benchmark."""
    start = int(np.argmax(reference.sum(axis=(1, 2))))
    floor = max(MIN_PRIOR_VOXELS, STOP_AREA_FRACTION * reference[start].sum())
    out = np.zeros(reference.shape, dtype=bool)
    out[start] = reference[start]
    for step in (1, -1):
        prior, t = reference[start], start + step
        while 0 <= t < len(image):
            mask = predict(image[t], prior, spacing[1:]) > 0.5
            if mask.sum() < floor:
                break
            out[t], prior, t = mask, mask, t + step
    return out


def validation_objects():
    """(group, case, organ, image, spacing, mask): held-out organs of every volume and seen
    organs of the validation volume (never trained on), each its largest 3D component."""
    for group, case, organ in evaluation_organs():
        yield (group, case.name, organ, case.image, case.spacing,
               largest_component(case.mask(organ)))


def validate(predict) -> dict:
    """One-shot propagation along z of every validation object: Dice per organ and group."""
    per_organ: dict[str, float] = {}
    groups: dict[str, list[float]] = {"seen": [], "held_out": []}
    for group, case_name, organ, image, spacing, mask in validation_objects():
        score = dice(one_shot(predict, image, mask, spacing), mask)
        per_organ[f"{case_name}/{organ}"] = round(score, 4)
        groups[group].append(score)
    return {
        "dice_seen": round(float(np.mean(groups["seen"])), 4),
        "dice_held_out": round(float(np.mean(groups["held_out"])), 4),
        "objects": {g: len(v) for g, v in groups.items()},
        "per_organ": dict(sorted(per_organ.items())),
    }


def torch_predictor(model: torch.nn.Module):
    """predict(image_slice, prior_mask, spacing_2d) -> probability with the torch model."""
    model.eval()

    def forward(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    return lambda image, prior, spacing: predict_slice(forward, image, prior, spacing)
