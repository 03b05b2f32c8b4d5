"""Changing a segment: interactions, undo and redo. Each answers with a `Change`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from medseg_client import codec

from medseg.engine.bifseg_method import weights_from_bytes
from medseg.engine.errors import InvalidPrompt, RevisionConflict
from medseg.engine.methods import SegmentContext, get_method
from medseg.engine.prompts import Box, Plane, Prompt, plane_record
from medseg.store import Store
from medseg.store.records import RevisionRecord, SegmentRecord, SessionMeta
from medseg.usecases.metrics import STAGE_SECONDS


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

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def timed(self, stage: str, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(stage, time.perf_counter() - start)
        return wrapper

    def publish(self) -> dict[str, float]:
        for stage, seconds in self.seconds.items():
            STAGE_SECONDS.labels(operation=self.operation, stage=stage).observe(seconds)
        return dict(self.seconds)


def check_base_revision(segment: SegmentRecord, base_revision: int | None) -> None:
    if base_revision is not None and base_revision != segment.head:
        raise RevisionConflict(f"segment {segment.id} is at revision {segment.head}, not "
                               f"{base_revision}: fetch the delta from {base_revision} and retry")


def interact(store: Store, meta: SessionMeta, segment_id: int, prompt: Prompt, method_name: str,
             params: dict[str, Any], base_revision: int | None,
             max_marks: int = 100_000) -> Change:
    method = get_method(method_name)
    if prompt.kind not in method.interaction_types:
        raise InvalidPrompt(f"method {method.name!r} does not take {prompt.kind!r} interactions")
    if prompt.plane is None and "3d" not in method.dims or prompt.plane and "2d" not in method.dims:
        raise InvalidPrompt(f"method {method.name!r} works in {list(method.dims)} only")
    parsed = method.parse_params(params)
    prompt.check(meta.shape)
    clock = _Stopwatch("interaction")
    with store.sessions.locked(meta.id):
        segment, head = store.segments.head(meta, segment_id)
        check_base_revision(segment, base_revision)
        if prompt.plane is not None and meta.shape[prompt.plane.axis] > 1:
            # a slice the user edited is locked: propagation never overwrites it
            segment = segment.with_lock("zyx"[prompt.plane.axis], prompt.plane.index)
        marks = prompt.apply_to(head.marks.to_marks())
        if len(marks.fg) + len(marks.bg) + len(marks.points) > max_marks:
            raise InvalidPrompt(f"segment {segment_id} would hold more than {max_marks} marked voxels")
        read_image = clock.timed("load", lambda box: store.sessions.read_image(meta, box))
        read_mask = clock.timed("load", lambda box: store.segments.read_mask(meta, head, box))
        current_bbox = clock.timed("load", exact_mask_bbox)(store, meta, head, prompt.plane)
        context = SegmentContext(
            kind=prompt.kind, head_interaction=head.interaction,
            head_probability=clock.timed("load", lambda: store.segments.probability(
                meta, head.revision)),
            adapted_weights=clock.timed("load", lambda dims: weights_from_bytes(
                store.segments.adapted_weights_blob(meta, head, dims))))
        loaded_before, start = clock.seconds.get("load", 0.0), time.perf_counter()
        result = method.run(read_image=read_image, read_mask=read_mask, shape=meta.shape,
                            spacing=meta.spacing, marks=marks.on_plane(prompt.plane),
                            plane=prompt.plane, params=parsed, current_mask_bbox=current_bbox,
                            context=context)
        # the method's own reads of image and mask count as load, the rest as compute
        clock.add("compute", time.perf_counter() - start - (clock.seconds["load"] - loaded_before))
        old_roi = read_mask(result.roi)
        start = time.perf_counter()
        description = {
            "type": prompt.kind, "method": method.name, "params": params,
            "plane": plane_record(prompt.plane),
            "marks": {"fg": prompt.marks.fg.tolist(), "bg": prompt.marks.bg.tolist(),
                      "boxes": [[list(b.lo), list(b.hi)] for b in prompt.marks.boxes],
                      "points": prompt.marks.points.tolist()},
            "roi": [list(result.roi.lo), list(result.roi.hi)],
            **({"result": result.info} if result.info else {}),
        }
        # the audit trail keeps load/compute and the method's own breakdown; encode comes after
        recorded = {**clock.seconds, **{f"compute.{k}": v for k, v in result.timings.items()}}
        record = store.segments.commit(meta, segment, head, result.roi, result.mask, description,
                                       recorded, marks, result.probability)
        delta = codec.encode_delta_from_xor(old_roi ^ result.mask, result.roi.lo, meta.shape,
                                            head.revision, record.revision)
        clock.add("encode", time.perf_counter() - start)
    segment = store.segments.get(meta, segment_id)
    return Change(segment, head, record, delta, result.roi, clock.publish())


def undo(store: Store, meta: SessionMeta, segment_id: int, base_revision: int | None) -> Change:
    return _move_head(store, meta, segment_id, base_revision, store.segments.undo, "undo")


def redo(store: Store, meta: SessionMeta, segment_id: int, base_revision: int | None) -> Change:
    return _move_head(store, meta, segment_id, base_revision, store.segments.redo, "redo")


def _move_head(store, meta, segment_id, base_revision, move, operation) -> Change:
    clock = _Stopwatch(operation)
    with store.sessions.locked(meta.id):
        check_base_revision(store.segments.get(meta, segment_id), base_revision)
        old, new = move(meta, segment_id)
    start = time.perf_counter()
    delta = store.segments.delta(meta, old, new)
    clock.add("encode", time.perf_counter() - start)
    return Change(store.segments.get(meta, segment_id), old, new, delta, None, clock.publish())


def exact_mask_bbox(store: Store, meta: SessionMeta, record: RevisionRecord,
                    plane: Plane | None) -> Box | None:
    """Tight bounding box of the revision's mask (on `plane` for a 2D interaction), or None."""
    coarse = store.segments.mask_bbox(meta, record)
    if coarse is None:
        return None
    if plane is not None:
        if not coarse.lo[plane.axis] <= plane.index <= coarse.hi[plane.axis]:
            return None
        lo, hi = list(coarse.lo), list(coarse.hi)
        lo[plane.axis] = hi[plane.axis] = plane.index
        coarse = Box(tuple(lo), tuple(hi))
    mask = store.segments.read_mask(meta, record, coarse)
    found = codec.bbox_of(mask)
    if found is None:
        return None
    z0, y0, x0, z1, y1, x1 = found
    off = coarse.lo
    return Box((off[0] + z0, off[1] + y0, off[2] + x0), (off[0] + z1 - 1, off[1] + y1 - 1, off[2] + x1 - 1))
