"""The `bifseg` interactive method: P-Net (2D) / PC-Net (3D) segments the object inside a box
(BIFSeg, Wang et al. 2018), on one plane (2D) or in the volume (3D).

A box interaction crops the box grown by `margin` voxels, runs the network (engine/bifseg.py)
and answers its argmax inside that crop (the ROI); the foreground probability is stored with
the revision. When the segment carries adapted block-6 weights from an image-specific
fine-tuning job (usecases/finetune.py), the network's stored features go through those weights
instead of the trained block 6, so a new box or a re-run on that segment uses the adaptation.

No torch here: the API process serves this method, and importing torch costs seconds; block 6
(two 1x1 convolutions) is evaluated with NumPy and adapted weights are read with `np.load`
(models/block6.py).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from medseg.engine.bifseg import BoxCrop, BoxState, run_network
from medseg.engine.method import Method, MethodResult, SegmentContext
from medseg.engine.params import Range, check_params
from medseg.engine.prompts import Box, Marks, Plane, check_on_plane
from medseg.errors import InvalidPrompt, plain
from medseg.models import bifseg_io, block6
from medseg.models.loader import default_loader

NAME = "bifseg"
TASK = "bifseg"
# image-specific fine-tuning stores its adapted block 6 with the revision it commits, under
# this artifact name (see usecases/finetune.py); later boxes on the segment use it
ADAPTED_BLOCK6 = "bifseg.block6.{dims}d"


def adapted_block6_name(dims: int) -> str:
    return ADAPTED_BLOCK6.format(dims=dims)


@dataclass(frozen=True)
class BifsegParams:
    margin: int = bifseg_io.BOX_MARGIN  # voxels added to every side of the box (paper: 5)
    threshold: float = 0.5  # foreground where the network's p exceeds it (argmax: 0.5)

    def __post_init__(self) -> None:
        # margin: the network sees box + margin resized to its input; past 64 voxels the box
        # shrinks to a few pixels of it. threshold: a probability strictly inside (0, 1)
        check_params(self, {"margin": Range(0, 64), "threshold": Range(0.0, 1.0, lo_open=True)})
        if self.threshold >= 1.0:
            raise ValueError(f"threshold must be < 1, got {plain(self.threshold)}")


@dataclass(frozen=True)
class Network:
    """A loaded P-Net / PC-Net: its ONNX session and its trained block-6 weights."""

    name: str
    session: Any  # onnxruntime.InferenceSession
    block6: dict[str, np.ndarray]


def load_network(dims: int) -> Network:
    """The newest P-Net (2D) / PC-Net (3D) with its trained block 6, through the model loader
    (cached per process); ModelUnavailable when the weights are not there."""
    loader = default_loader()
    card = loader.find(TASK, dims)
    return Network(card.name, loader.load(card).session, _trained_block6(loader, card))


_BLOCK6: dict[tuple[str, str], dict[str, np.ndarray]] = {}  # (file, sha256) -> weights
_BLOCK6_LOCK = threading.Lock()


def _trained_block6(loader, card) -> dict[str, np.ndarray]:
    """The card's trained block-6 weights, read, verified and parsed once per process: a
    slicewise first click runs P-Net on ~25 slices, and each run re-read and re-parsed the
    .npz (~0.5 ms). Each caller gets its own copies (a few kB): none can alter the cache."""
    path, sha256 = card.companions.get("block6_weights", (card.file, ""))
    key = (str(path), sha256)
    with _BLOCK6_LOCK:
        weights = _BLOCK6.get(key)
    if weights is None:
        weights = block6.weights_from_bytes(loader.companion(card, "block6_weights"))
        with _BLOCK6_LOCK:
            _BLOCK6[key] = weights
    return {name: array.copy() for name, array in weights.items()}


def weights_from_bytes(blob: bytes | None) -> dict[str, np.ndarray] | None:
    """Block-6 weights from an .npz blob (models.block6.weights_to_bytes); None for None."""
    return None if blob is None else block6.weights_from_bytes(blob)


def block6_probability(weights: dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
    """Foreground p (float32, grid shape) of block 6 with `weights` on `features` (F, *grid)
    (models.block6.probability, as engine.finetune.run_block6)."""
    return block6.probability(weights, features)


@dataclass
class BoxRun:
    """One network run on a box, in image terms: the ROI (crop) box and the grid state."""

    roi: Box  # inclusive (z, y, x) voxels of the crop; 2D: one voxel thick along the plane axis
    plane: Plane | None
    state: BoxState  # its crop is crop-local (lo = 0): grid <-> ROI
    network: Network

    @property
    def dims(self) -> int:
        return 2 if self.plane is not None else 3

    def squeeze(self, a: np.ndarray) -> np.ndarray:
        return a if self.plane is None else np.squeeze(a, axis=self.plane.axis)

    def unsqueeze(self, a: np.ndarray) -> np.ndarray:
        return a if self.plane is None else np.expand_dims(a, axis=self.plane.axis)

    def marks_to_grid(self, voxels: np.ndarray) -> np.ndarray | None:
        """Image voxels (N, 3) -> bool grid mask (None when none falls inside the crop)."""
        local = np.asarray(voxels, dtype=int).reshape(-1, 3) - np.asarray(self.roi.lo)
        if self.plane is not None:
            local = np.delete(local, self.plane.axis, axis=1)
        return self.state.crop.marks_to_grid(local)

    def to_roi(self, grid_values: np.ndarray) -> np.ndarray:
        """A grid array resized to the ROI (float32, (z, y, x) ROI shape)."""
        return self.unsqueeze(self.state.crop.to_crop(grid_values))


def run_box(read_image: Callable[[Box], np.ndarray], shape, spacing, box: Box,
            plane: Plane | None, margin: int = bifseg_io.BOX_MARGIN) -> BoxRun:
    """Crop the box (+ margin) of the image, run P-Net (plane given) or PC-Net on it."""
    keep = [a for a in range(3) if plane is None or a != plane.axis]
    pick = lambda v: tuple(int(v[a]) for a in keep)
    try:
        crop = BoxCrop.around(pick(shape), pick(box.lo), pick(box.hi),
                              tuple(float(spacing[a]) for a in keep), margin)
    except ValueError as exc:
        raise InvalidPrompt(str(exc)) from None
    lo, hi = list(crop.lo), list(crop.hi)
    if plane is not None:
        lo.insert(plane.axis, plane.index)
        hi.insert(plane.axis, plane.index)
    roi = Box(tuple(lo), tuple(hi))
    image = np.asarray(read_image(roi), dtype=np.float32)
    if plane is not None:
        image = np.squeeze(image, axis=plane.axis)
    local = dataclasses.replace(crop, lo=(0,) * len(keep), hi=tuple(n - 1 for n in crop.shape))
    network = load_network(len(keep))
    return BoxRun(roi, plane, run_network(network.session, image, local), network)


def segment(read_image: Callable[[Box], np.ndarray], read_mask, shape, spacing, marks: Marks,
            plane: Plane | None, params: BifsegParams = BifsegParams(),
            current_mask_bbox: Box | None = None,
            context: SegmentContext | None = None) -> MethodResult:
    """Segment the newest box of `marks` (2D on `plane`, else 3D).
    `context.artifact(adapted_block6_name(dims))` is the segment's fine-tuned block 6, if any. Other
    marks are not used: the result is the network's on the box (refine it with a `finetune`
    job, or with any method's clicks). On a segment that has a mask, the box re-segments its
    inside only: in the crop's margin outside the box the head mask is kept, and the network's
    foreground is added to it (a box never removes work outside itself, engine/refinement.py)."""
    t0 = time.perf_counter()
    if not marks.boxes:
        raise InvalidPrompt(f"method {NAME!r} needs a box interaction")
    box = marks.boxes[-1]
    check_on_plane(Marks(boxes=[box]), plane)
    run = run_box(read_image, shape, spacing, box, plane, params.margin)
    t1 = time.perf_counter()
    adapted = (context or SegmentContext()).artifact(adapted_block6_name(run.dims))
    weights = weights_from_bytes(adapted)
    prob = (run.state.probability if weights is None
            else block6_probability(weights, run.state.features))
    probability = np.clip(run.to_roi(prob), 0.0, 1.0)
    mask = run.to_roi((prob > params.threshold).astype(np.float32)) > 0.5
    if current_mask_bbox is not None:
        head = np.asarray(read_mask(run.roi), dtype=bool).reshape(mask.shape)
        inside = np.zeros(mask.shape, dtype=bool)
        box_in_roi = box.intersect(run.roi)
        if box_in_roi is not None:
            inside[box_in_roi.slices_in(run.roi)] = True
        mask = np.where(inside, mask, mask | head)
    return MethodResult(roi=run.roi, mask=mask, probability=probability,
                        timings={"network": t1 - t0, "block6": time.perf_counter() - t1})


METHOD = Method(
    name=NAME,
    description="BIFSeg (Wang et al. 2018): P-Net (2D, on a plane) or PC-Net (3D) segments the "
                "object inside a box (grown by `margin` voxels), including objects never seen "
                "in training; the probability is kept with the revision. Refine it with a "
                "`finetune` job (POST .../segments/{seg}/finetune); later boxes on the segment "
                "use its adapted weights.",
    interaction_types=("box",),
    dims=("2d", "3d"),
    params_type=BifsegParams,
    run=segment,
)
