"""Automatic organ segmentation (RefineNet's backbone, issue 14 item 4a): the organ network
`organnet-2d` run on every axial slice of a volume. Pure: arrays in, arrays out (no FastAPI,
no Redis), so the server's `organ` start, the benchmark and other engine code (hints) share it.

    probability = organ_probability(image, spacing, "liver")   # (Z, Y, X) float32 in [0, 1]
    mask = organ_mask(probability)                              # bool, largest 3D component

The contract around the network (grid, intensities, channel order) is
medseg.models.refinenet_io.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from medseg.models import refinenet_io
from medseg.models.loader import default_loader

TASK = "organ"
BATCH = 4  # slices per network call

Forward = Callable[[np.ndarray], np.ndarray]  # (N, 1, *GRID_SIZE) -> (N, organs, *GRID_SIZE)


def load_backbone():
    """(card, forward) of the organ network through the model loader (one session per
    process, verified against its card); ModelUnavailable when it is not there."""
    loader = default_loader()
    card = loader.find(TASK, 2)
    session = loader.load(card).session
    name = session.get_inputs()[0].name
    return card, lambda x: session.run(None, {name: np.ascontiguousarray(x, np.float32)})[0]


def organ_probability(image: np.ndarray, spacing, organ: str,
                      forward: Forward | None = None) -> np.ndarray:
    """(Z, Y, X) float32 probability that each voxel of `image` ((Z, Y, X), spacing (sz, sy,
    sx) mm, axial slices along z) belongs to `organ` (one of refinenet_io.ORGANS; ValueError
    otherwise). `forward`: the network (default: the served `organnet-2d`)."""
    channel = refinenet_io.organ_index(organ)
    if forward is None:
        _, forward = load_backbone()
    image = np.asarray(image, dtype=np.float32)
    in_plane = (float(spacing[1]), float(spacing[2]))
    out = np.zeros(image.shape, dtype=np.float32)
    for start in range(0, image.shape[0], BATCH):
        stop = min(start + BATCH, image.shape[0])
        x = np.stack([refinenet_io.backbone_input(image[z], in_plane)
                      for z in range(start, stop)])
        logits = np.asarray(forward(x), dtype=np.float32)[:, channel]
        grid = 1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))
        for k, z in enumerate(range(start, stop)):
            out[z] = refinenet_io.from_grid(grid[k], image.shape[1:], in_plane)
    return out


def organ_mask(probability: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """The largest 3D connected component (full connectivity) of probability >= threshold:
    one organ is one object, so stray islands elsewhere are dropped."""
    mask = np.asarray(probability) >= threshold
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    labels, count = ndimage.label(mask, structure)
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return labels == int(np.argmax(sizes)) + 1
