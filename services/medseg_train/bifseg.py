"""BIFSeg recipe (Wang et al. 2018, sec. II-B): P-Net (2D) and PC-Net (3D) trained to segment
the object inside its bounding box, whatever the object is.

A sample: an object patch (objects.py: synthetic, or a seen organ of the training volumes;
held-out organs never), augmented (augment.py), its bounding box grown by a random margin of
0-10 voxels per side, the crop resized to the input size and z-scored (models/bifseg_io.py),
and the object's mask on the same grid. Loss: cross entropy, as the paper.

Validation: Dice of the box-only initial result on the held-out organs of every volume and the
seen organs of the validation volume (never trained on), with the reference mask's box grown
by BOX_MARGIN voxels.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from medseg.algorithms.metrics import dice
from medseg.algorithms.resample import resize_linear
from medseg.models import bifseg_io as io
from medseg_train import augment
from medseg_train.mideepseg import validation_objects, validation_summary
from medseg_train.networks.pcnet import PCNet
from medseg_train.networks.pnet import PNet
from medseg_train.objects import MIN_AREA_2D, ObjectSampler, largest_component

MAX_TRAIN_MARGIN = 10


def build_network(dims: int) -> PNet | PCNet:
    return PNet(**io.NETWORK[2]) if dims == 2 else PCNet(**io.NETWORK[3])


def make_sample(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                dims: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(input (1, *size), target bool (*size)) or None when augmentation lost the object."""
    image, mask = augment.spatial(image, mask, rng)
    mask = largest_component(mask)
    if mask.sum() < (MIN_AREA_2D if dims == 2 else 100):
        return None
    image = augment.intensity(image, rng)
    margin = rng.integers(0, MAX_TRAIN_MARGIN + 1, size=(2, mask.ndim))
    lo, hi = io.grow_box(*io.mask_box(mask), mask.shape, margin)
    box = io.box_slices(lo, hi)
    size = io.INPUT_SIZE[dims]
    x = io.network_input(image[box], size)
    y = resize_linear(mask[box].astype(np.float32), size, antialias=False) > 0.5
    return x, y


class Samples(torch.utils.data.IterableDataset):
    """Endless batches; each DataLoader worker seeds its own generator from `seed`."""

    def __init__(self, dims: int, batch_size: int, seed: int, real: bool = True,
                 extra: bool = False):
        self.dims, self.batch_size, self.seed, self.real = dims, batch_size, seed, real
        self.extra = extra

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0, 17])
        objects = ObjectSampler(self.dims, rng, real=self.real, extra=self.extra)
        while True:
            xs: list[np.ndarray] = []
            ys: list[np.ndarray] = []
            while len(xs) < self.batch_size:
                sample = make_sample(*objects(), rng, self.dims)
                if sample is not None:
                    xs.append(sample[0])
                    ys.append(sample[1])
            yield torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def loss_fn(outputs: tuple[torch.Tensor, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(outputs[0], target.long())


def segment_box(predict, image: np.ndarray, lo, hi, dims: int,
                margin: int = io.BOX_MARGIN) -> np.ndarray:
    """Initial mask (image-shaped bool) of the object in box (lo, hi) grown by `margin`;
    `predict` maps a (1, 1, *size) input to a (1, *size) foreground probability."""
    lo, hi = io.grow_box(lo, hi, image.shape, margin)
    box = io.box_slices(lo, hi)
    crop = image[box]
    prob = predict(io.network_input(crop, io.INPUT_SIZE[dims])[None])[0]
    out = np.zeros(image.shape, dtype=bool)
    out[box] = io.probability_in_crop(prob, crop.shape) > 0.5
    return out


def validate(predict, dims: int, margin: int = io.BOX_MARGIN, new_sets: bool = False) -> dict:
    """Dice of the box-only initial result per organ and per group (seen / held_out, and
    held_out_new_sets with `new_sets`)."""
    scores = [(group, f"{case_name}/{organ}",
               dice(segment_box(predict, image, *io.mask_box(mask), dims, margin), mask))
              for group, case_name, organ, image, mask in validation_objects(dims, new_sets)]
    return {**validation_summary(scores), "box_margin_voxels": margin}


def torch_predictor(model: torch.nn.Module):
    def predict(x: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            logits, _ = model(torch.from_numpy(x))
        return torch.softmax(logits, dim=1)[:, 1].numpy()
    return predict
