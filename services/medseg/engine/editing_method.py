"""The editing tools (issue 14; deep-editing-tools paper): `select`, `brush` and `adjust` on a
segment that has a mask, as two methods behind the same tool names.

- `deep-editing`: `select` and `brush` through the 2D editing network (`editnet-2d`: image,
  current mask and the paper's edit channels in, the corrected mask out; the contract is
  medseg.models.editing_io), applied as a local change under the refinement contract
  (engine/refinement.py): the network's answer is kept only in the connected components of
  additions that hold an "add" mark the head contradicts and of removals that hold a "remove"
  mark, so an edit never changes anything away from the error it lands in; the marked voxels
  themselves always change (the user said so).
- `classical-editing`: the same tools without a network: `select` is a model-free click and
  `brush` a model-free scribble of `geodesic-graphcut` on the head (its refinement contract
  makes them exactly a local change of the error component they land in).

`adjust` is the same in both: the boundary moves to about (1 + amount) x the mask's voxels,
voxels taken in the order of a signed geodesic distance to the boundary on the image
(medseg.algorithms.editing.boundary_order / adjust), so the boundary moves along similar tissue
first and is held by edges, and the result is monotone in the amount by construction (the
paper's network takes K as an input channel and gives no such guarantee; ours is trained with
that channel, but the served adjustment does not depend on it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from medseg.algorithms.editing import Edits, adjust, boundary_order
from medseg.engine import graphcut_method
from medseg.engine.method import Method, MethodResult, SegmentContext
from medseg.engine.params import FRACTION, Range, check_params
from medseg.engine.prompts import Box, Marks, Plane, plane_spacing
from medseg.engine.refinement import contradicted, local_merge
from medseg.errors import InvalidPrompt
from medseg.models import editing_io
from medseg.models.loader import default_loader

DEEP_NAME = "deep-editing"
CLASSICAL_NAME = "classical-editing"
TASK = "editing"
TOOLS = ("select", "brush", "adjust")
# voxels of the region adjust orders (two geodesic distance transforms): 16 M, a 256^3 box,
# takes several seconds; a larger one is refused (adjust the slices in 2D instead)
MAX_ADJUST_VOXELS = 2**24


@dataclass(frozen=True)
class AdjustParams:
    adjust_lambda: float = 0.5  # ratio 0..1: boundary distance Euclidean .. intensity-weighted

    def __post_init__(self) -> None:
        check_params(self, {"adjust_lambda": FRACTION})


@dataclass(frozen=True)
class DeepEditingParams(AdjustParams):
    # network probability that counts as foreground: the 12-minute network is under-confident
    # on what a click adds (one click recovered 76 % of a bitten-out region at 0.5, 82 % at
    # 0.35, with the same Dice; chosen on every second object of the editing benchmark)
    threshold: float = 0.35
    merge_margin: int = 1  # voxels: a change this close to the marked component joins it

    def __post_init__(self) -> None:
        super().__post_init__()
        # a margin of more than 16 voxels is no longer "the error the mark lands in"
        check_params(self, {"threshold": FRACTION, "merge_margin": Range(0, 16)})


@dataclass(frozen=True)
class ClassicalEditingParams(AdjustParams):
    pass


# -- adjust ---------------------------------------------------------------------------------------
def run_adjust(read_image, read_mask, shape, spacing, plane: Plane | None, amount: float,
               params: AdjustParams, current_mask_bbox: Box | None) -> MethodResult:
    if current_mask_bbox is None:
        raise InvalidPrompt("adjust needs a mask to grow or shrink (the segment is empty"
                            + (" on this slice)" if plane is not None else ")"))
    amount = float(amount)
    # the region the boundary moves in: half the mask's extent (+ 3 voxels) around it on every
    # side, room for about 4x the area in 2D, 8x the volume in 3D. It depends on the mask only,
    # never on the amount, so every amount orders the same voxels the same way (monotone); an
    # amount beyond what the region holds takes all of it
    extent = np.asarray(current_mask_bbox.shape, dtype=float)
    reach = np.ceil(extent / 2.0 + 3).astype(np.int64)
    if plane is not None:
        reach[plane.axis] = 0
    lo = np.maximum(np.asarray(current_mask_bbox.lo) - reach, 0)
    hi = np.minimum(np.asarray(current_mask_bbox.hi) + reach, np.asarray(shape) - 1)
    roi = Box(tuple(int(v) for v in lo), tuple(int(v) for v in hi))
    if int(np.prod(roi.shape, dtype=np.int64)) > MAX_ADJUST_VOXELS:
        raise InvalidPrompt(f"adjust would order {int(np.prod(roi.shape)):,} voxels, more than "
                            f"{MAX_ADJUST_VOXELS:,}: adjust slice by slice in 2D")
    head = read_mask(roi)
    image = read_image(roi)
    squeeze = (lambda a: a) if plane is None else (lambda a: a.squeeze(plane.axis))
    order = boundary_order(squeeze(image), squeeze(head), plane_spacing(spacing, plane),
                           params.adjust_lambda)
    mask = adjust(order, squeeze(head), amount).reshape(roi.shape)
    return MethodResult(roi=roi, mask=mask, probability=mask.astype(np.float32),
                        info={"amount": amount, "voxels_before": int(head.sum()),
                              "voxels_after": int(mask.sum())})


# -- deep-editing ---------------------------------------------------------------------------------
def load_network():
    """The editing network's onnxruntime session, through the model loader (one per process,
    verified against its card); ModelUnavailable when it is not there."""
    loader = default_loader()
    card = loader.find(TASK, 2)
    return card, loader.load(card).session


def network_edit(image: np.ndarray, head: np.ndarray, fg: np.ndarray, bg: np.ndarray, kind: str,
                 spacing, params: DeepEditingParams, session=None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(merged mask, changed region, probability) on a (Y, X) slice: the network's answer to
    one select (clicks) or brush (stroke voxels) edit, `fg` / `bg` (N, 2) the add / remove
    marks, kept only where the refinement contract allows."""
    if session is None:
        _, session = load_network()
    name = session.get_inputs()[0].name
    empty = np.zeros((0, 2), np.int64)
    edits = Edits(fg, bg, empty, empty) if kind == "select" else Edits(empty, empty, fg, bg)
    probability, _ = editing_io.predict_slice(
        lambda x: session.run(None, {name: x})[0], image, head, edits, spacing)
    new = probability >= params.threshold
    fg_mask = np.zeros(head.shape, bool)
    bg_mask = np.zeros(head.shape, bool)
    fg_mask[tuple(np.asarray(fg).reshape(-1, 2).T)] = True
    bg_mask[tuple(np.asarray(bg).reshape(-1, 2).T)] = True
    new = (new | fg_mask) & ~bg_mask  # the marked voxels change whatever the network says
    new_fg, new_bg = contradicted(fg_mask, bg_mask, head)
    merged, changed = local_merge(head, new, new_fg, new_bg, params.merge_margin)
    return merged, changed, probability


def run_deep(read_image, read_mask, shape, spacing, marks: Marks, plane: Plane | None,
             params: DeepEditingParams, current_mask_bbox: Box | None,
             context: SegmentContext) -> MethodResult:
    kind = context.kind
    if kind == "adjust":
        return run_adjust(read_image, read_mask, shape, spacing, plane,
                          context.options.get("amount", 0.0), params, current_mask_bbox)
    _check_tool(kind, DEEP_NAME)
    if plane is None:
        raise InvalidPrompt(f"{DEEP_NAME} {kind} works on a 2D slice: send dim '2d' with a plane")
    if len(marks.fg) + len(marks.bg) == 0:
        raise InvalidPrompt(f"{kind} needs a click or a stroke")
    card, session = load_network()
    whole = plane.whole(shape)
    image = read_image(whole).squeeze(plane.axis)
    head = read_mask(whole).squeeze(plane.axis)
    merged, changed, probability = network_edit(
        image, head, plane.drop_axis(marks.fg), plane.drop_axis(marks.bg), kind,
        plane_spacing(spacing, plane), params, session)
    points = np.argwhere(changed)
    if len(points) == 0:  # nothing to change (the marks agree with the mask): one voxel
        points = np.concatenate([plane.drop_axis(marks.fg), plane.drop_axis(marks.bg)])[:1]
    lo2, hi2 = points.min(axis=0), points.max(axis=0)
    lo = np.insert(lo2, plane.axis, plane.index)
    hi = np.insert(hi2, plane.axis, plane.index)
    roi = Box(tuple(int(v) for v in lo), tuple(int(v) for v in hi))
    cut = (slice(lo2[0], hi2[0] + 1), slice(lo2[1], hi2[1] + 1))
    mask = np.expand_dims(merged[cut], plane.axis)
    prob = np.expand_dims(probability[cut], plane.axis).astype(np.float32)
    return MethodResult(roi=roi, mask=mask, probability=prob,
                        info={"model": f"{card.name}@{card.version}",
                              "voxels_changed": int(changed.sum())})


# -- classical-editing ----------------------------------------------------------------------------
def run_classical(read_image, read_mask, shape, spacing, marks: Marks, plane: Plane | None,
                  params: ClassicalEditingParams, current_mask_bbox: Box | None,
                  context: SegmentContext) -> MethodResult:
    kind = context.kind
    if kind == "adjust":
        return run_adjust(read_image, read_mask, shape, spacing, plane,
                          context.options.get("amount", 0.0), params, current_mask_bbox)
    _check_tool(kind, CLASSICAL_NAME)
    if len(marks.fg) + len(marks.bg) == 0:
        raise InvalidPrompt(f"{kind} needs a click or a stroke")
    as_click = dataclasses.replace(context, kind="click" if kind == "select" else "scribble")
    graphcut = graphcut_method.METHOD
    result = graphcut.run(read_image=read_image, read_mask=read_mask, shape=shape,
                          spacing=spacing, marks=marks, plane=plane,
                          params=graphcut.parse_params({}), current_mask_bbox=current_mask_bbox,
                          context=as_click)
    result.info = {**result.info, "via": graphcut.name}
    return result


def _check_tool(kind: str, name: str) -> None:
    if kind not in TOOLS:
        raise InvalidPrompt(f"method {name!r} does not take {kind!r} interactions")


DEEP_METHOD = Method(
    name=DEEP_NAME,
    description="Editing tools of the deep-editing-tools paper: select (a click fills or "
                "erases the region it lands in) and brush (strokes add or remove) through the "
                "2D editing network editnet-2d as a local change of the mask; adjust (a signed "
                "amount grows or shrinks the boundary, monotone). Needs a mask to edit.",
    interaction_types=TOOLS,
    dims=("2d", "3d"),  # 3D: adjust only
    params_type=DeepEditingParams,
    run=run_deep,
)

CLASSICAL_METHOD = Method(
    name=CLASSICAL_NAME,
    description="The editing tools without a network: select and brush as model-free "
                "geodesic-graphcut clicks and scribbles refining the head mask; adjust as in "
                "deep-editing (monotone).",
    interaction_types=TOOLS,
    dims=("2d", "3d"),
    params_type=ClassicalEditingParams,
    run=run_classical,
)
