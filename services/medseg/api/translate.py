"""Interaction request bodies -> engine prompts (voxel marks, plane)."""

from __future__ import annotations

import numpy as np

from medseg.api.schemas import (
    AdjustInteraction,
    BoxInteraction,
    BrushInteraction,
    ClickInteraction,
    EraseInteraction,
    FillInteraction,
    OrganInteraction,
    PaintInteraction,
    PointsInteraction,
    ScribbleInteraction,
    SelectInteraction,
    ThresholdInteraction,
)
from medseg.engine.prompts import (
    AXES,
    Box,
    Marks,
    Plane,
    Prompt,
    check_inside,
    check_polyline_budget,
    image_plane,
    rasterize_polyline,
)
from medseg.errors import InvalidPrompt


def _points(rows: list[list[int]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


Body = (ClickInteraction | ScribbleInteraction | BoxInteraction | PointsInteraction
        | PaintInteraction | EraseInteraction | FillInteraction | SelectInteraction
        | BrushInteraction | AdjustInteraction | ThresholdInteraction
        | OrganInteraction)


def to_prompt(body: Body, shape: tuple[int, int, int], max_marks: int) -> Prompt:
    """The engine's prompt; scribbles are rasterised only once their points lie inside the
    image and their traced length fits `max_marks` (both cheap), so a bogus request costs
    milliseconds, not the seconds rasterising and merging it would."""
    plane = None
    if body.dim == "2d":
        if body.plane is not None:
            plane = Plane(AXES[body.plane.axis], body.plane.index)
        elif (own := image_plane(shape)) is not None:  # a 2D image: its only slice
            plane = own
        else:
            raise InvalidPrompt("dim '2d' on a volume needs `plane` ({axis, index})")
    elif body.plane is not None:
        # `plane` means nothing in 3D; most often the client meant a 2D interaction and left
        # out `dim` (whose default is "3d" for click, scribble, box and points)
        raise InvalidPrompt(
            f"`plane` {{axis: {body.plane.axis}, index: {body.plane.index}}} was sent with dim "
            "'3d': a 3D interaction works on the whole volume and has no plane. Send dim '2d' "
            "to work on that plane only, or leave `plane` out for 3D")
    fg: list[np.ndarray] = []
    bg: list[np.ndarray] = []
    points: list[np.ndarray] = []
    boxes: list[Box] = []
    options: dict[str, float | bool | str] = {}
    if isinstance(body, PointsInteraction):
        points.append(_points(body.points))
    elif isinstance(body, ClickInteraction | SelectInteraction):
        for click in body.clicks:
            (fg if click.foreground else bg).append(_points([click.zyx]))
    elif isinstance(body, PaintInteraction | EraseInteraction | ThresholdInteraction):
        path = _points(body.path)
        check_inside(path, shape, body.type)
        check_polyline_budget([path], max_marks, f"{body.type} stroke")
        (bg if body.type == "erase" else fg).append(rasterize_polyline(path))
        options["radius_mm"] = body.radius_mm
        if isinstance(body, ThresholdInteraction):
            if body.low > body.high:
                raise InvalidPrompt(f"threshold: low {body.low:g} exceeds high {body.high:g}")
            options["low"], options["high"] = body.low, body.high
    elif isinstance(body, FillInteraction):
        fg.append(_points(body.clicks))
    elif isinstance(body, AdjustInteraction):
        options["amount"] = body.amount
    elif isinstance(body, OrganInteraction):
        options["organ"] = body.organ
    elif isinstance(body, ScribbleInteraction | BrushInteraction):
        paths = [_points(scribble.path) for scribble in body.scribbles]
        for path in paths:
            check_inside(path, shape, "scribble")
        check_polyline_budget(paths, max_marks)
        for scribble, path in zip(body.scribbles, paths):
            (fg if scribble.foreground else bg).append(rasterize_polyline(path))
    else:
        boxes.append(Box(tuple(body.box.lo), tuple(body.box.hi)))
    stack = lambda parts: np.concatenate(parts) if parts else np.zeros((0, 3), np.int64)
    return Prompt(body.type, Marks(stack(fg), stack(bg), boxes, stack(points)), plane, options)
