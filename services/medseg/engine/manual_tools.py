"""Manual editing tools (issue 14): `paint`, `erase` and `fill`, no network, no image.

- paint / erase: a stroke (a polyline, rasterised without gaps into the prompt's foreground
  marks for paint, background marks for erase) with a radius in mm (`radius_mm` option): every
  voxel whose centre lies within the radius of the stroke is set (paint) or cleared (erase). A
  2D interaction paints a disc on its plane, a 3D one a ball.
- threshold: a paint stroke that adds only the voxels whose intensity lies within
  [`low`, `high`] (options; HU for CT): the window an annotator sets for bone, contrast or
  fat, applied under the brush.
- fill: 2D only; each foreground click floods the closed region of background it lands in
  (4-connected on the slice); a click whose region reaches the slice's edge (the region is not
  closed) or that lands on the mask is refused (422), rather than painting the whole slice.

The result covers only the stroke's (or the filled regions') bounding box, so a paint costs
what its footprint costs, whatever the image size. The stored probability is the edited mask
(1 / 0): a person said so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medseg.algorithms.editing import closed_region, stroke_footprint
from medseg.engine.method import Method, MethodResult, SegmentContext
from medseg.engine.prompts import Box, Marks, Plane, plane_spacing
from medseg.errors import InvalidPrompt

NAME = "manual"
MAX_RADIUS_MM = 200.0  # a brush wider than a torso is a mistake (and would cost seconds in 3D)
# voxels of the box a stroke's footprint is computed in (a distance transform, 8 bytes a voxel):
# 16 M is a 256^3 box, about a second and 130 MB; a larger stroke is refused, not run for minutes
MAX_STROKE_BOX_VOXELS = 2**24


@dataclass(frozen=True)
class ManualParams:
    """The manual tools have no tunables: the stroke's radius comes with the interaction."""


def _stroke_box(points: np.ndarray, radius_mm: float, spacing, shape, plane: Plane | None) -> Box:
    reach = np.ceil(radius_mm / np.asarray(spacing, dtype=float)).astype(np.int64)
    if plane is not None:
        reach[plane.axis] = 0
    lo = np.maximum(points.min(axis=0) - reach, 0)
    hi = np.minimum(points.max(axis=0) + reach, np.asarray(shape) - 1)
    return Box(tuple(int(v) for v in lo), tuple(int(v) for v in hi))


def _squeeze(array: np.ndarray, plane: Plane | None) -> np.ndarray:
    return array if plane is None else array.squeeze(plane.axis)


def stroke(read_mask, shape, spacing, points: np.ndarray, plane: Plane | None,
           radius_mm: float, add: bool, read_image=None,
           window: tuple[float, float] | None = None) -> MethodResult:
    """Paint (add) or erase the voxels within `radius_mm` of the stroke voxels `points`;
    with a `window` (low, high), paint only those whose intensity lies within it."""
    if not 0.0 <= radius_mm <= MAX_RADIUS_MM:
        raise InvalidPrompt(f"radius_mm must lie between 0 and {MAX_RADIUS_MM:g} mm")
    roi = _stroke_box(points, radius_mm, spacing, shape, plane)
    if int(np.prod(roi.shape, dtype=np.int64)) > MAX_STROKE_BOX_VOXELS:
        raise InvalidPrompt(f"the stroke's box holds {int(np.prod(roi.shape)):,} voxels, more "
                            f"than {MAX_STROKE_BOX_VOXELS:,}: paint shorter strokes or a "
                            "smaller radius (or in 2D)")
    centre = np.zeros(roi.shape, dtype=bool)
    centre[tuple((points - np.asarray(roi.lo)).T)] = True
    footprint = stroke_footprint(_squeeze(centre, plane), plane_spacing(spacing, plane), radius_mm)
    footprint = footprint.reshape(roi.shape)
    if window is not None:
        image = np.asarray(read_image(roi))
        footprint &= (image >= window[0]) & (image <= window[1])
    head = read_mask(roi)
    mask = head | footprint if add else head & ~footprint
    return MethodResult(roi=roi, mask=mask, probability=mask.astype(np.float32),
                        info={"voxels_changed": int((mask ^ head).sum())})


def fill(read_mask, shape, clicks: np.ndarray, plane: Plane | None) -> MethodResult:
    if plane is None:
        raise InvalidPrompt("fill works on a 2D slice: send dim '2d' with a plane")
    whole = plane.whole(shape)
    head = read_mask(whole)
    flat = head.squeeze(plane.axis)
    region = np.zeros(flat.shape, dtype=bool)
    for click in clicks:
        seed = [int(v) for k, v in enumerate(click) if k != plane.axis]
        if region[tuple(seed)]:
            continue
        found = closed_region(flat, seed)
        if found is None:
            where = "on the mask already" if flat[tuple(seed)] else \
                "in a region of background that is not closed (it reaches the slice's edge)"
            raise InvalidPrompt(f"fill: the click {[int(v) for v in click]} (z, y, x) lands "
                                f"{where}; nothing to fill")
        region |= found
    filled = np.expand_dims(flat | region, plane.axis)
    # only the filled regions' bounding box changes
    points = np.argwhere(np.expand_dims(region, plane.axis)) + np.asarray(whole.lo)
    roi = Box(tuple(int(v) for v in points.min(axis=0)), tuple(int(v) for v in points.max(axis=0)))
    mask = filled[roi.slices_in(whole)]
    return MethodResult(roi=roi, mask=mask, probability=mask.astype(np.float32),
                        info={"voxels_changed": int(region.sum())})


def run(read_image, read_mask, shape, spacing, marks: Marks, plane: Plane | None,
        params: ManualParams, current_mask_bbox: Box | None,
        context: SegmentContext) -> MethodResult:
    kind = context.kind
    if kind == "fill":
        if len(marks.fg) == 0:
            raise InvalidPrompt("fill needs a click")
        return fill(read_mask, shape, np.asarray(marks.fg), plane)
    if kind not in ("paint", "erase", "threshold"):
        raise InvalidPrompt(f"method {NAME!r} does not take {kind!r} interactions")
    points = np.asarray(marks.bg if kind == "erase" else marks.fg, dtype=np.int64)
    if len(points) == 0:
        raise InvalidPrompt(f"{kind} needs a stroke")
    radius = float(context.options.get("radius_mm", 0.0))
    window = None
    if kind == "threshold":
        if "low" not in context.options or "high" not in context.options:
            raise InvalidPrompt("threshold needs `low` and `high` intensities")
        window = (float(context.options["low"]), float(context.options["high"]))
        if window[0] > window[1]:
            raise InvalidPrompt(f"threshold: low {window[0]:g} exceeds high {window[1]:g}")
    return stroke(read_mask, shape, spacing, points, plane, radius, add=kind != "erase",
                  read_image=read_image, window=window)


METHOD = Method(
    name=NAME,
    description="Manual tools, no network: paint and erase (a stroke with a radius in mm, a "
                "disc on a 2D plane or a ball in 3D), threshold (paint only the voxels within "
                "an intensity window, HU for CT) and fill (flood-fill the closed 2D "
                "region a click lands in). Each is a revision that undoes like any other.",
    interaction_types=("paint", "erase", "threshold", "fill"),
    dims=("2d", "3d"),
    params_type=ManualParams,
    run=run,
)
