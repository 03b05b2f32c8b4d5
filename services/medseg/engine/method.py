"""The interface of an interactive segmentation method. A method is one module that builds a
`Method` value; the composition root (`medseg.builtin`) registers it. Methods import this
module, never a registry.

Arrays cross this boundary as (z, y, x) voxels, spacing (sz, sy, sx) in mm. A 2D interaction
works on one `Plane`: its ROI is one voxel thick along the plane's axis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from medseg.engine.params import defaults, parse_dataclass_params
from medseg.engine.prompts import Box, Marks, Plane


@dataclass
class MethodResult:
    roi: Box  # inclusive voxel box (z, y, x); for 2D lo[axis] == hi[axis] == plane.index
    mask: np.ndarray  # bool, ROI shape (z, y, x): the new mask inside the ROI
    probability: np.ndarray  # float32, ROI shape: foreground probability (stored with the revision)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage of the method
    info: dict[str, Any] = field(default_factory=dict)  # JSON facts for the audit trail


def _no_probability() -> tuple[Box, np.ndarray] | None:
    return None


def _no_artifact(name: str) -> bytes | None:
    return None


@dataclass(frozen=True)
class SegmentContext:
    """What a method may know besides the image, the marks and the current mask.

    kind: the request's interaction type ("click", "points", ...).
    head_interaction: the head revision's interaction record ({"method", "plane", ...}; {} for
    a new segment), e.g. to tell which method made it.
    head_probability: loads the probability map stored with the head revision, as
    (inclusive Box, float32 array of the box's shape), or None (called only when needed).
    artifact: loads the newest blob stored under a name with a revision on the head's line of
    history (a job's by-product such as adapted network weights), or None. Its owner (the job
    kind that writes it) defines the name and the bytes.
    options: the scalars a direct edit carries (`Prompt.options`: `radius_mm`, `amount`, ...).
    """

    kind: str = "click"
    head_interaction: dict[str, Any] = field(default_factory=dict)
    head_probability: Callable[[], tuple[Box, np.ndarray] | None] = _no_probability
    artifact: Callable[[str], bytes | None] = _no_artifact
    options: dict[str, Any] = field(default_factory=dict)


class RunMethod(Protocol):
    def __call__(self, read_image: Callable[[Box], np.ndarray],
                 read_mask: Callable[[Box], np.ndarray], shape: tuple[int, int, int],
                 spacing: tuple[float, float, float], marks: Marks, plane: Plane | None,
                 params: Any, current_mask_bbox: Box | None,
                 context: SegmentContext) -> MethodResult:
        """Segment from all the segment's marks.

        read_image(box) / read_mask(box): the image (float32) / the head mask (bool) inside an
        inclusive voxel box, (z, y, x) box-shaped. current_mask_bbox: the head mask's tight
        bounding box (on `plane` for 2D), or None when empty. Raises InvalidPrompt for marks
        the method cannot act on."""
        ...


@dataclass(frozen=True)
class Method:
    name: str
    description: str
    interaction_types: tuple[str, ...]
    dims: tuple[str, ...]
    params_type: type  # a frozen dataclass of parameters with defaults
    run: RunMethod

    def defaults(self) -> dict[str, Any]:
        return defaults(self.params_type)

    def parse_params(self, overrides: dict[str, Any]) -> Any:
        return parse_dataclass_params(self.params_type, overrides, self.name)
