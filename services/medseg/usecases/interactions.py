"""Changing a segment: interactions, undo and redo. Each answers with a `Change`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medseg.engine.empty_region import (
    all_on_empty_region,
    box_on_empty_region,
    on_empty_region,
)
from medseg.engine.method import Method, SegmentContext
from medseg.engine.prompts import Box, Plane, Prompt, drop_overridden, plane_record
from medseg.errors import InvalidPrompt, RevisionConflict
from medseg.registry import Registry
from medseg.store import Store
from medseg.store.records import RevisionRecord, SegmentRecord, SessionMeta
from medseg.store.sessions import Fence
from medseg.usecases.metrics import observe_stages
from medseg_protocol import codec


@dataclass
class Change:
    segment: SegmentRecord
    previous: RevisionRecord
    current: RevisionRecord
    delta: dict
    roi: Box | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds


class _Stopwatch:
    """Accumulates seconds per stage (load / compute / encode) and feeds the metrics."""

    def __init__(self, operation: str):
        self.operation = operation
        self.seconds: dict[str, float] = {}
        # a method may read the image from worker threads (slicewise's first click): the
        # read-add-write below must not lose one of two concurrent additions
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def timed(self, stage: str, fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(stage, time.perf_counter() - start)
        return wrapper

    def publish(self) -> dict[str, float]:
        observe_stages(self.operation, self.seconds)
        return dict(self.seconds)


class HeadMask:
    """The head revision's mask for one interaction, read from the store once.

    The first read takes the chunk-aligned box that holds the whole mask (on the plane for a
    2D interaction); every later read (the tight bounding box, the method's, the delta's
    previous content) is cut from it, and outside that box the mask is empty by construction.
    Only a box reaching into the mask off the plane goes back to the store."""

    def __init__(self, store: Store, meta: SessionMeta, head: RevisionRecord,
                 plane: Plane | None):
        self._read = lambda box: store.segments.read_mask(meta, head, box)
        self.extent = store.segments.mask_bbox(meta, head)  # None: the mask is empty
        self.region = self.extent
        if self.extent is not None and plane is not None:
            lo, hi = list(self.extent.lo), list(self.extent.hi)
            lo[plane.axis] = hi[plane.axis] = plane.index
            on_plane = Box((lo[0], lo[1], lo[2]), (hi[0], hi[1], hi[2]))
            self.region = self.extent.intersect(on_plane)
        self._cached: np.ndarray | None = None

    def _region_mask(self) -> np.ndarray:
        if self._cached is None:
            assert self.region is not None
            self._cached = self._read(self.region)
        return self._cached

    def read(self, box: Box) -> np.ndarray:
        """Bool (z, y, x) box-shaped: the head mask inside the inclusive box."""
        touched = None if self.extent is None else self.extent.intersect(box)
        out = np.zeros(box.shape, dtype=bool)
        if touched is None:
            return out
        if self.region is None or not self.region.contains(touched):
            return self._read(box)
        out[touched.slices_in(box)] = self._region_mask()[touched.slices_in(self.region)]
        return out

    def bbox(self) -> Box | None:
        """Tight bounding box of the mask (on the plane for 2D), or None when empty there."""
        if self.region is None:
            return None
        found = codec.bbox_of(self._region_mask())
        if found is None:
            return None
        z0, y0, x0, z1, y1, x1 = found
        o = self.region.lo
        return Box((o[0] + z0, o[1] + y0, o[2] + x0), (o[0] + z1 - 1, o[1] + y1 - 1, o[2] + x1 - 1))


def check_base_revision(segment: SegmentRecord, base_revision: int | None) -> None:
    if base_revision is not None and base_revision != segment.head:
        raise RevisionConflict(f"segment {segment.id} is at revision {segment.head}, not "
                               f"{base_revision}: fetch the delta from {base_revision} and retry")


def _check_method(method: Method, prompt: Prompt) -> None:
    if prompt.kind not in method.interaction_types:
        raise InvalidPrompt(f"method {method.name!r} does not take {prompt.kind!r} interactions")
    if prompt.plane is None and "3d" not in method.dims or prompt.plane and "2d" not in method.dims:
        raise InvalidPrompt(f"method {method.name!r} works in {list(method.dims)} only")


def check(methods: Registry[Method], meta: SessionMeta, prompt: Prompt, method_name: str | None,
          params: dict[str, Any]) -> tuple[Method, Any]:
    """The checks of an interaction that need no state: the method, its parameters, the
    prompt against the image (InvalidPrompt / UnknownName). Returns the method and its
    parsed parameters."""
    method = methods.get(method_name)
    _check_method(method, prompt)
    parsed = method.parse_params(params)
    prompt.check(meta.shape)
    return method, parsed


EMPTY_HINT = ("i.e. padding or outside the field of view, with nothing to segment")


def check_marks_on_image(store: Store, meta: SessionMeta, prompt: Prompt) -> None:
    """InvalidPrompt for marks that lie on padding or outside the field of view
    (engine/empty_region.py), where the methods would segment the flat region and answer
    200: any foreground click there; a scribble interaction whose foreground voxels ALL lie
    there; a box whose whole area is one flat padding value; interior margin / extreme points
    that ALL lie there. Marks touching tissue anywhere pass."""
    if prompt.kind not in ("click", "scribble", "box", "points"):
        return
    axis = 0 if prompt.plane is None else prompt.plane.axis
    read = lambda box: store.sessions.read_image(meta, box)
    value_at = lambda zyx: store.sessions.read_image(meta, Box(tuple(zyx), tuple(zyx))).item()
    where = f"slice {'zyx'[axis]}="
    if prompt.kind == "click":
        for zyx in prompt.marks.fg.tolist():
            if on_empty_region(read, meta.shape, zyx, axis):
                raise InvalidPrompt(
                    f"foreground click {zyx} (z, y, x) lands on an empty part of the image: a "
                    f"region of one value ({value_at(zyx):g}) that reaches the edge of "
                    f"{where}{zyx[axis]}, {EMPTY_HINT}; click inside the object")
    elif prompt.kind == "scribble":
        fg = prompt.marks.fg
        if len(fg) and all_on_empty_region(read, meta.shape, fg, axis):
            first = fg[0].tolist()
            raise InvalidPrompt(
                f"the foreground scribble (from {first}, z, y, x) lies wholly on an empty part "
                f"of the image: a region of one value ({value_at(first):g}) that reaches the "
                f"edge of its slice, {EMPTY_HINT}; draw it over the object")
    elif prompt.kind == "box":
        for box in prompt.marks.boxes:
            if box_on_empty_region(read, meta.shape, box, axis):
                raise InvalidPrompt(
                    f"box {list(box.lo)}..{list(box.hi)} (z, y, x) covers only an empty part "
                    f"of the image: every voxel holds one value ({value_at(box.lo):g}), a "
                    f"region that reaches the edge of the slice, {EMPTY_HINT}; draw the box "
                    "around the object")
    elif len(prompt.marks.points) and all_on_empty_region(read, meta.shape, prompt.marks.points,
                                                          axis):
        first = prompt.marks.points[0].tolist()
        raise InvalidPrompt(
            f"all {len(prompt.marks.points)} points lie on an empty part of the image: a region "
            f"of one value ({value_at(first):g}) that reaches the edge of the slice, "
            f"{EMPTY_HINT}; place them inside the object, near its edge")


def interact(store: Store, methods: Registry[Method], meta: SessionMeta, segment_id: int,
             prompt: Prompt, method_name: str | None, params: dict[str, Any],
             base_revision: int | None, max_marks: int = 100_000,
             fence: Fence | None = None) -> Change:
    """Run one interaction with the named method (the registry's default when None) and
    commit its result as the segment's new head revision, compare-and-set: RevisionConflict
    and nothing applied when the head moved or the session lock was lost meanwhile.

    `fence`: the session lock as the caller holds it (and extends) in another process; by
    default this call takes the lock itself."""
    method, parsed = check(methods, meta, prompt, method_name, params)
    clock = _Stopwatch("interaction")
    with store.sessions.locked(meta.id, fence) as held:
        segment, head = store.segments.head(meta, segment_id)
        check_base_revision(segment, base_revision)
        check_marks_on_image(store, meta, prompt)
        if prompt.plane is not None and meta.shape[prompt.plane.axis] > 1:
            # a slice the user edited is locked: propagation never overwrites it
            segment = segment.with_lock("zyx"[prompt.plane.axis], prompt.plane.index)
        marks = prompt.apply_to(head.marks.to_marks())
        if len(marks.fg) + len(marks.bg) + len(marks.points) > max_marks:
            raise InvalidPrompt(f"segment {segment_id} would hold more than {max_marks} "
                                "marked voxels")
        head_mask = HeadMask(store, meta, head, prompt.plane)
        read_image = clock.timed("load", lambda box: store.sessions.read_image(meta, box))
        read_mask = clock.timed("load", head_mask.read)
        current_bbox = clock.timed("load", head_mask.bbox)()
        context = SegmentContext(
            kind=prompt.kind, head_interaction=head.interaction.as_dict(),
            head_probability=clock.timed("load", lambda: store.segments.probability(
                meta, head.revision)),
            artifact=clock.timed("load", lambda name: store.segments.artifact(meta, head, name)),
            options=dict(prompt.options))
        loaded_before, start = clock.seconds.get("load", 0.0), time.perf_counter()
        # a direct edit acts on its own marks, which never join the cumulative ones
        given = prompt.marks if prompt.edits else marks
        result = method.run(read_image=read_image, read_mask=read_mask, shape=meta.shape,
                            spacing=meta.spacing, marks=given.on_plane(prompt.plane),
                            plane=prompt.plane, params=parsed, current_mask_bbox=current_bbox,
                            context=context)
        # the method's own reads of image and mask count as load, the rest as compute
        clock.add("compute", time.perf_counter() - start - (clock.seconds["load"] - loaded_before))
        old_roi = read_mask(result.roi)
        start = time.perf_counter()
        if prompt.edits:  # a direct edit overrides the marks it contradicts (issue 14)
            marks = drop_overridden(marks, result.roi, result.mask)
        description = {
            "type": prompt.kind, "method": method.name, "params": params,
            "plane": plane_record(prompt.plane),
            "marks": {"fg": prompt.marks.fg.tolist(), "bg": prompt.marks.bg.tolist(),
                      "boxes": [[list(b.lo), list(b.hi)] for b in prompt.marks.boxes],
                      "points": prompt.marks.points.tolist()},
            "roi": [list(result.roi.lo), list(result.roi.hi)],
            **({"options": dict(prompt.options)} if prompt.options else {}),
            **({"result": result.info} if result.info else {}),
        }
        # the audit trail keeps load/compute and the method's own breakdown; encode comes after
        recorded = {**clock.seconds, **{f"compute.{k}": v for k, v in result.timings.items()}}
        record = store.segments.commit(meta, segment, head, result.roi, result.mask, description,
                                       recorded, marks, result.probability, fence=held)
        delta = codec.encode_delta_from_xor(old_roi ^ result.mask, result.roi.lo, meta.shape,
                                            head.revision, record.revision)
        clock.add("encode", time.perf_counter() - start)
    # the record the commit wrote, not read back: one Redis round trip fewer per click
    segment = store.segments.committed(segment, record)
    # the caller publishes the stages (`observe_stages`): this may run in a compute process
    return Change(segment, head, record, delta, result.roi, dict(clock.seconds))


def undo(store: Store, meta: SessionMeta, segment_id: int, base_revision: int | None) -> Change:
    return _move_head(store, meta, segment_id, base_revision, store.segments.undo, "undo")


def redo(store: Store, meta: SessionMeta, segment_id: int, base_revision: int | None) -> Change:
    return _move_head(store, meta, segment_id, base_revision, store.segments.redo, "redo")


def _move_head(store, meta, segment_id, base_revision, move, operation) -> Change:
    clock = _Stopwatch(operation)
    with store.sessions.locked(meta.id) as fence:
        check_base_revision(store.segments.get(meta, segment_id), base_revision)
        old, new = move(meta, segment_id, fence)
    start = time.perf_counter()
    delta = store.segments.delta(meta, old, new)
    clock.add("encode", time.perf_counter() - start)
    return Change(store.segments.get(meta, segment_id), old, new, delta, None, clock.publish())
