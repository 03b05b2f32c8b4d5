"""Registry of interactive segmentation methods: adding a method is registering it here."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medseg.engine.errors import InvalidPrompt
from medseg.engine.prompts import Box


@dataclass
class MethodResult:
    roi: Box  # inclusive voxel box (z, y, x); for 2D lo[axis] == hi[axis] == plane.index
    mask: np.ndarray  # bool, ROI shape (z, y, x): the new mask inside the ROI
    probability: np.ndarray  # float32, ROI shape: foreground probability (stored with the revision)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage of the method
    info: dict[str, Any] = field(default_factory=dict)  # JSON facts for the audit trail


def _no_probability() -> tuple[Box, np.ndarray] | None:
    return None


def _no_adapted_weights(dims: int) -> dict[str, np.ndarray] | None:
    return None


@dataclass(frozen=True)
class SegmentContext:
    """What a method may know besides the image, the marks and the current mask's bbox.

    kind: the request's interaction type ("click", "points", ...).
    head_interaction: the head revision's interaction record ({"method", "plane", ...}; {} for
    a new segment), e.g. to tell which method made it.
    head_probability: loads the probability map stored with the head revision, as
    (inclusive Box, float32 array of the box's shape), or None (called only when needed).
    adapted_weights: loads the segment's fine-tuned BIFSeg block-6 weights for a network of
    `dims` (2 or 3) on the head's line of history, or None (usecases/finetune.py).
    """

    kind: str = "click"
    head_interaction: dict[str, Any] = field(default_factory=dict)
    head_probability: Callable[[], tuple[Box, np.ndarray] | None] = _no_probability
    adapted_weights: Callable[[int], dict[str, np.ndarray] | None] = _no_adapted_weights


@dataclass(frozen=True)
class Method:
    name: str
    description: str
    interaction_types: tuple[str, ...]
    dims: tuple[str, ...]
    params_type: type  # a frozen dataclass of parameters with defaults
    run: Callable[..., MethodResult]  # engine entry point, see graphcut_method.segment

    def defaults(self) -> dict[str, Any]:
        return dataclasses.asdict(self.params_type())

    def parse_params(self, overrides: dict[str, Any]) -> Any:
        return parse_dataclass_params(self.params_type, overrides, self.name)


def parse_dataclass_params(params_type: type, overrides: dict[str, Any], owner: str) -> Any:
    """Defaults of the frozen dataclass `params_type` with the request's overrides; unknown
    names or wrong types -> InvalidPrompt naming `owner` (a method)."""
    fields = {f.name: f for f in dataclasses.fields(params_type)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise InvalidPrompt(f"unknown parameter(s) {unknown} for {owner!r}; known: {sorted(fields)}")
    values = {}
    for name, value in overrides.items():
        kind = type(getattr(params_type(), name))
        try:
            if isinstance(value, bool) and kind is not bool or kind is bool and not isinstance(value, bool):
                raise TypeError
            values[name] = kind(value)
        except (TypeError, ValueError):
            raise InvalidPrompt(f"parameter {name!r} must be a {kind.__name__}, got {value!r}") from None
    try:
        return params_type(**values)
    except ValueError as exc:
        raise InvalidPrompt(f"invalid parameters for {owner!r}: {exc}") from None


_REGISTRY: dict[str, Method] = {}
DEFAULT_METHOD = "geodesic-graphcut"


def register(method: Method) -> Method:
    _REGISTRY[method.name] = method
    return method


def get_method(name: str) -> Method:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InvalidPrompt(f"unknown method {name!r}; available: {sorted(_REGISTRY)}") from None


def all_methods() -> list[Method]:
    _load_builtin()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def _load_builtin() -> None:
    if DEFAULT_METHOD in _REGISTRY:
        return
    from medseg.engine import bifseg_method, graphcut_method, mideepseg_method

    register(Method(
        name=DEFAULT_METHOD,
        description="Model-free: geodesic distance from the marks (GeodisTK) as unary, "
                    "graph cut (PyMaxflow) with BIFSeg eq. 2 pairwise term, marks as hard "
                    "constraints, inside a region of interest around the marks and mask.",
        interaction_types=("click", "scribble", "box"),
        dims=("2d", "3d"),
        params_type=graphcut_method.GraphCutParams,
        run=graphcut_method.segment,
    ))
    register(Method(
        name=mideepseg_method.NAME,
        description="MIDeepSeg (Luo et al. 2021): a `points` interaction (interior margin "
                    "points, >= 3) runs our trained 2D/3D U-Net on their relaxed box with a cue "
                    "map (`encoding` picks the model, see /v1/models); `click`s then refine it "
                    "by information fusion of the CNN probability with geodesic distances of "
                    "all clicks and a graph cut (IF-GC, or `refinement: gc`).",
        interaction_types=("points", "click"),
        dims=("2d", "3d"),
        params_type=mideepseg_method.MIDeepSegParams,
        run=mideepseg_method.segment,
    ))
    register(Method(
        name=bifseg_method.NAME,
        description="BIFSeg (Wang et al. 2018): P-Net (2D, on a plane) or PC-Net (3D) segments "
                    "the object inside a box (grown by `margin` voxels), including objects never "
                    "seen in training; the probability is kept with the revision. Refine it "
                    "with a `finetune` job (POST .../segments/{seg}/finetune); later boxes on "
                    "the segment use its adapted weights.",
        interaction_types=("box",),
        dims=("2d", "3d"),
        params_type=bifseg_method.BifsegParams,
        run=bifseg_method.segment,
    ))
