"""MIDeepSeg recipe (Luo et al. 2021): samples, network, loss and validation for the 2D and 3D
networks that segment an object from its interior margin points and their cue map.

A sample: an object patch (objects.py), augmented (rotation, scaling, flipping in space and
intensity), simulated interior margin points, the relaxed-box crop resized to the input size
with the cue map (models/mideepseg_io.py), and the object's mask on the same grid.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from medseg.algorithms.metrics import dice
from medseg.algorithms.resample import resize_linear
from medseg.models.mideepseg_io import network_input, probability_in_crop, relaxed_box
from medseg_train import augment
from medseg_train.data import evaluation_organs, extra_evaluation_objects
from medseg_train.networks.unet import UNet
from medseg_train.objects import MIN_AREA_2D, ObjectSampler, largest_component
from medseg_train.simulate import interior_margin_points

INPUT_SIZE = {2: (64, 64), 3: (32, 64, 64)}
# U-Net (5 levels) and 3D U-Net (4 levels) with the paper's channels divided by four
NETWORK = {2: {"base": 16, "levels": 5}, 3: {"base": 8, "levels": 4}}


def build_network(dims: int) -> UNet:
    return UNet(dims=dims, in_channels=2, **NETWORK[dims])


def box_slices(lo, hi) -> tuple[slice, ...]:
    return tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi))


Sample = tuple[np.ndarray, np.ndarray]  # (network input, target)


def make_sample(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, dims: int,
                encoding: str) -> Sample | None:
    """(input (2, *size), target bool (*size)) or None when augmentation lost the object."""
    image, mask = augment.spatial(image, mask, rng)
    mask = largest_component(mask)
    if mask.sum() < (MIN_AREA_2D if dims == 2 else 100):
        return None
    image = augment.intensity(image, rng)
    points = interior_margin_points(mask, rng)
    lo, hi = relaxed_box(points, mask.shape)
    box = box_slices(lo, hi)
    size = INPUT_SIZE[dims]
    x = network_input(image[box], points - lo, size, encoding)
    y = resize_linear(mask[box].astype(np.float32), size, antialias=False) > 0.5
    return x, y


class Samples(torch.utils.data.IterableDataset):
    """Endless batches; each DataLoader worker seeds its own generator from `seed`.

    reuse > 1: samples go through a buffer of 32 and each is drawn about `reuse` times (with
    a random flip each time). A 3D sample costs ~0.5 s of CPU (patch augmentation, 3D EGD)
    against ~0.2 s of network step per sample, so on a 2-core machine reuse keeps the network
    busy instead of waiting for data."""

    def __init__(self, dims: int, encoding: str, batch_size: int, seed: int, real: bool = True,
                 reuse: int = 1, extra: bool = False):
        self.dims, self.encoding, self.batch_size, self.seed, self.real = (
            dims, encoding, batch_size, seed, real)
        self.reuse, self.extra = reuse, extra

    def _fresh(self, objects: ObjectSampler, rng: np.random.Generator) -> Sample:
        while True:
            sample = make_sample(*objects(), rng, self.dims, self.encoding)
            if sample is not None:
                return sample

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        objects = ObjectSampler(self.dims, rng, real=self.real, extra=self.extra)
        buffer: list[Sample] = []
        while True:
            if self.reuse <= 1:
                batch = [self._fresh(objects, rng) for _ in range(self.batch_size)]
            else:
                fresh = max(1, round(self.batch_size / self.reuse))
                for _ in range(fresh if len(buffer) >= 32 else 32):
                    sample = self._fresh(objects, rng)
                    if len(buffer) >= 32:
                        buffer[int(rng.integers(len(buffer)))] = sample
                    else:
                        buffer.append(sample)
                batch = [_flipped(*buffer[int(rng.integers(len(buffer)))], rng)
                         for _ in range(self.batch_size)]
            yield (torch.from_numpy(np.stack([x for x, _ in batch])),
                   torch.from_numpy(np.stack([y for _, y in batch])))


def _flipped(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> Sample:
    """The sample mirrored along a random subset of its spatial axes (the cue map with it)."""
    axes = [a for a in range(y.ndim) if rng.random() < 0.5]
    if not axes:
        return x, y
    return (np.ascontiguousarray(np.flip(x, tuple(a + 1 for a in axes))),
            np.ascontiguousarray(np.flip(y, tuple(axes))))


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft Dice loss (the paper's) plus cross entropy, which steadies the first steps of a
    short CPU training run."""
    prob = torch.softmax(logits, dim=1)[:, 1]
    target_f = target.float()
    dims = tuple(range(1, prob.ndim))
    dice = (2 * (prob * target_f).sum(dims) + 1) / (prob.sum(dims) + target_f.sum(dims) + 1)
    return (1 - dice).mean() + F.cross_entropy(logits, target.long())


def validation_objects(dims: int, new_sets: bool = False
                       ) -> list[tuple[str, str, str, np.ndarray, np.ndarray]]:
    """(group, case, organ, image, mask): seen organs of the validation volume (never trained
    on) and held-out organs of every volume. 2D: three axial slices per organ (quartiles of its
    z extent), 3D: the organ's largest component. new_sets: also the held-out volumes and
    structures of the licensed extra sets (group "held_out_new_sets"; 3D: those of a set the
    3D recipes draw from)."""
    items = []
    extra = [(g, c, o) for g, c, o in extra_evaluation_objects()
             if dims == 2 or c.image.shape[0] >= 8] if new_sets else []
    for group, case, organ in [*evaluation_organs(), *extra]:
        mask = largest_component(case.mask(organ))
        if dims == 3:
            items.append((group, case.name, organ, case.image, mask))
            continue
        areas = mask.sum(axis=(1, 2))
        slices = np.flatnonzero(areas >= MIN_AREA_2D)
        for z in sorted({int(np.percentile(slices, q, method="nearest"))
                         for q in (25, 50, 75)} if len(slices) else ()):
            items.append((group, case.name, organ, case.image[z], largest_component(mask[z])))
    return items


def segment_from_points(predict, image, points, encoding: str, dims: int) -> np.ndarray:
    """Initial mask (image-shaped bool) from interior margin points with `predict`, which
    maps a (1, 2, *size) input to a (1, *size) foreground probability."""
    lo, hi = relaxed_box(points, image.shape)
    box = box_slices(lo, hi)
    crop = image[box]
    prob = predict(network_input(crop, points - lo, INPUT_SIZE[dims], encoding)[None])[0]
    out = np.zeros(image.shape, dtype=bool)
    out[box] = probability_in_crop(prob, crop.shape) > 0.5
    return out


def validate(predict, dims: int, encoding: str, seed: int = 1234,
             new_sets: bool = False) -> dict:
    """Dice of the initial segmentation from simulated points (no random extra points,
    a fixed generator per object), averaged per organ and per group."""
    scores = []
    for k, (group, case_name, organ, image, mask) in enumerate(validation_objects(dims,
                                                                                  new_sets)):
        points = interior_margin_points(mask, np.random.default_rng([seed, k]), extra=(0, 0))
        score = dice(segment_from_points(predict, image, points, encoding, dims), mask)
        scores.append((group, f"{case_name}/{organ}", score))
    return validation_summary(scores)


def validation_summary(scores: list[tuple[str, str, float]]) -> dict:
    """Card metrics from (group "seen" | "held_out", "case/organ", Dice) per object."""
    per_organ: dict[str, list[float]] = {}
    groups: dict[str, list[float]] = {"seen": [], "held_out": []}
    for group, key, score in scores:
        per_organ.setdefault(key, []).append(score)
        groups.setdefault(group, []).append(score)
    return {
        **{f"dice_{g}": round(float(np.mean(v)), 4) for g, v in groups.items()},
        "objects": {g: len(v) for g, v in groups.items()},
        "per_organ": {k: round(float(np.mean(v)), 4) for k, v in sorted(per_organ.items())},
    }


def torch_predictor(model: torch.nn.Module):
    def predict(x: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            logits = model(torch.from_numpy(x))
        return torch.softmax(logits, dim=1)[:, 1].numpy()
    return predict
