"""A method added the way docs/plugins.md shows: this one file plus one registration line.

`threshold`: a click grows the region of voxels whose intensity lies within `tolerance` of
the clicked voxel's, connected to it, inside a cube of `radius` voxels around the click.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medseg.engine.method import Method, MethodResult
from medseg.engine.prompts import Box
from medseg.errors import InvalidPrompt


@dataclass(frozen=True)
class ThresholdParams:
    tolerance: float = 100.0  # intensity units (HU on CT)
    radius: int = 20  # voxels around the click

    def __post_init__(self) -> None:
        if self.tolerance <= 0 or self.radius < 1:
            raise ValueError("need tolerance > 0 and radius >= 1")


def segment(read_image, read_mask, shape, spacing, marks, plane, params, current_mask_bbox,
            context) -> MethodResult:
    if len(marks.fg) == 0:
        raise InvalidPrompt("threshold needs a foreground click")
    seed = np.asarray(marks.fg[-1])
    lo = np.maximum(seed - params.radius, 0)
    hi = np.minimum(seed + params.radius, np.asarray(shape) - 1)
    if plane is not None:
        lo[plane.axis] = hi[plane.axis] = plane.index
    roi = Box(tuple(int(v) for v in lo), tuple(int(v) for v in hi))
    image = read_image(roi)
    local = tuple(seed - lo)
    similar = np.abs(image - image[local]) <= params.tolerance
    labels, _ = ndimage.label(similar)
    mask = labels == labels[local]
    return MethodResult(roi=roi, mask=mask, probability=mask.astype(np.float32))


METHOD = Method(name="threshold", description="Region growing from a click (a test plug-in).",
                interaction_types=("click",), dims=("2d", "3d"), params_type=ThresholdParams,
                run=segment)


def register(plugins) -> None:
    plugins.methods.register(METHOD)
