"""BIFSeg on one box: the crop and its grid, the network's initial result and stored features,
scribbles onto the grid, results back into the image.

The flow an interaction follows (2D: `image` is one (Y, X) slice; 3D: the (Z, Y, X) volume):

    crop = BoxCrop.around(image.shape, lo, hi, spacing_mm)        # box grown by BOX_MARGIN
    state = run_network(session, image, crop)                      # initial p, features
    mask = crop.to_image(state.probability > 0.5)                  # box-only result
    fg, bg = crop.marks_to_grid(fg_voxels), crop.marks_to_grid(bg_voxels)
    out = finetune(state.features, state.image_norm, weights, fg, bg, crop.grid_spacing,
                   params_for(dims))
    mask = crop.to_image(out.mask, fg_voxels, bg_voxels)           # scribbles kept exactly

`session` is anything with onnxruntime's `run(None, {"input": x})` answering [logits,
features] (the P-Net / PC-Net ONNX files); `weights` start as
`models.block6.load_block6(path)` and later are a segment's adapted ones
(`models.block6.weights_to_bytes` / `weights_from_bytes` store them). A later interaction on
the same segment runs `finetune.run_block6(adapted, state.features)` instead of the network's
own block 6.

Coordinates: `lo`, `hi` are inclusive voxel corners in the image's axis order; marks are
(N, ndim) int voxel indices in the image.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from medseg.algorithms.normalize import normalize_percentiles
from medseg.algorithms.resample import resize_linear
from medseg.models import bifseg_io as io
from medseg.models.mideepseg_io import to_grid


class OnnxSession(Protocol):
    def run(self, output_names, input_feed: dict) -> list: ...


@dataclass(frozen=True)
class BoxCrop:
    lo: tuple[int, ...]  # inclusive voxel corners of the crop in the image (box + margin)
    hi: tuple[int, ...]
    grid: tuple[int, ...]  # the network's input size
    grid_spacing: tuple[float, ...]  # grid spacing per axis / the finest one (d_ij of eq. 2)

    @classmethod
    def around(cls, shape, lo, hi, spacing_mm, margin: int = io.BOX_MARGIN) -> BoxCrop:
        """The box (lo, hi) grown by `margin` voxels per side, clipped to `shape`, on the grid
        of its dimensionality. spacing_mm: voxel spacing per axis of the image."""
        dims = len(shape)
        if dims not in (2, 3) or len(lo) != dims or len(hi) != dims or len(spacing_mm) != dims:
            raise ValueError("shape, box corners and spacing need 2 or 3 values each")
        if any(a > b or a < 0 or b >= n for a, b, n in zip(lo, hi, shape)):
            raise ValueError(f"box {list(lo)}..{list(hi)} is empty or outside {list(shape)}")
        lo, hi = io.grow_box(lo, hi, shape, margin)
        grid = io.INPUT_SIZE[dims]
        mm = [s * max(b - a, 1) / max(g - 1, 1) for s, a, b, g in zip(spacing_mm, lo, hi, grid)]
        return cls(tuple(int(v) for v in lo), tuple(int(v) for v in hi), tuple(grid),
                   tuple(float(m / min(mm)) for m in mm))

    @property
    def slices(self) -> tuple[slice, ...]:
        return io.box_slices(self.lo, self.hi)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(b - a + 1 for a, b in zip(self.lo, self.hi))

    def marks_to_grid(self, voxels) -> np.ndarray | None:
        """Bool grid mask of image voxels (N, ndim) inside the crop (others dropped); None
        when no voxel falls inside."""
        voxels = np.asarray(voxels, dtype=int).reshape(-1, len(self.grid)) - np.asarray(self.lo)
        voxels = voxels[((voxels >= 0) & (voxels < np.asarray(self.shape))).all(axis=1)]
        if len(voxels) == 0:
            return None
        out = np.zeros(self.grid, dtype=bool)
        out[tuple(to_grid(voxels, self.shape, self.grid).T)] = True
        return out

    def to_crop(self, grid_values: np.ndarray) -> np.ndarray:
        """A grid array (probability or mask) resized to the crop, float32."""
        return resize_linear(np.asarray(grid_values, dtype=np.float32), self.shape, antialias=False)

    def to_image(self, grid_mask: np.ndarray, image_shape, fg_voxels=None,
                 bg_voxels=None) -> np.ndarray:
        """Image-shaped bool mask: the grid mask resized into the crop (nothing outside it),
        then the scribbled voxels set to their labels at full resolution."""
        out = np.zeros(image_shape, dtype=bool)
        out[self.slices] = self.to_crop(grid_mask) > 0.5
        for voxels, value in ((bg_voxels, False), (fg_voxels, True)):
            if voxels is not None and len(voxels):
                v = np.asarray(voxels, dtype=int).reshape(-1, len(image_shape))
                inside = ((v >= 0) & (v < np.asarray(image_shape))).all(axis=1)
                out[tuple(v[inside].T)] = value
        return out


@dataclass
class BoxState:
    """What one run of the network leaves for fine-tuning (all on the grid)."""

    crop: BoxCrop
    probability: np.ndarray  # float32 (*grid): the network's foreground p
    features: np.ndarray  # float32 (F, *grid): block 6's input
    raw: np.ndarray  # float32: the crop of the image, in its own units (not on the grid)

    @functools.cached_property
    def image_norm(self) -> np.ndarray:
        """float32 (*grid): the crop normalised to [0, 1] (graph cut, geodesics). Made on
        first use: only fine-tuning reads it, and slicewise's re-fits (~25 P-Net runs a
        first click) paid ~0.6 ms each for it."""
        return normalize_percentiles(resize_linear(self.raw, self.crop.grid))


def run_network(session: OnnxSession, image: np.ndarray, crop: BoxCrop) -> BoxState:
    """Run P-Net / PC-Net on the crop of `image` ((Y, X) or (Z, Y, X))."""
    raw = np.asarray(image[crop.slices], dtype=np.float32)
    x = io.network_input(raw, crop.grid)[None]
    logits, features = session.run(None, {"input": x})
    logits = logits[0].astype(np.float64)
    prob = 1.0 / (1.0 + np.exp(logits[0] - logits[1]))  # softmax over the two classes
    return BoxState(crop, prob.astype(np.float32), np.ascontiguousarray(features[0]), raw)
