"""Removing one interaction from a segment's history (issue 17): a new head revision whose
mask is what the history gives without it.

A revision is a function of the previous revision and the marks (engine/prompts.py), so the
interactions after the removed one are run again, in memory, from the state before it, each
with its recorded method, parameters, plane, marks and options; only the final state is
committed, as one new revision on top of the head (so one undo brings the removed
interaction back, and the interactions' own revisions stay in the history as they were).

What can be replayed: interactions (click, scribble, box, points and the direct edits). A
job's revision (propagation, fine-tuning), an import or the segment's first revision is a
fixed state: the replay starts at the newest such state, and an interaction before it cannot
be removed (422, naming the revision in the way). A removal's own revision records the state
it started from and the interactions it kept, so a later removal sees through it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from medseg.engine.method import Method, SegmentContext
from medseg.engine.prompts import Box, Marks, Plane, Prompt, drop_overridden, plane_record
from medseg.errors import InvalidPrompt
from medseg.registry import Registry
from medseg.store import Store
from medseg.store.chunks import full_box
from medseg.store.records import RevisionRecord, SessionMeta
from medseg.store.sessions import Fence
from medseg.usecases.interactions import Change, check_base_revision
from medseg_protocol import codec

REMOVE = "remove"
# interactions replayed by one removal at most: each costs what the interaction cost
MAX_REPLAYED = 50


@dataclass
class _State:
    """A segment's state during a replay, in memory: full mask, cumulative marks, the last
    method's probability (box, values) and the interaction that made it."""

    mask: np.ndarray
    marks: Marks
    probability: tuple[Box, np.ndarray] | None
    interaction: dict[str, Any]


def _replayable(record: RevisionRecord) -> bool:
    kind = record.interaction.type
    return record.parent is not None and (kind == REMOVE or record.interaction.marks is not None
                                          and record.interaction.method is not None)


def effective(store: Store, meta: SessionMeta,
              record: RevisionRecord) -> tuple[RevisionRecord, list[RevisionRecord]]:
    """(start, interactions): the fixed state the head's mask starts from and the
    interaction revisions that, run in order on it, give the head's mask."""
    kept: list[RevisionRecord] = []
    current = record
    while _replayable(current):
        if current.interaction.type == REMOVE:
            extra = current.interaction.model_extra or {}
            kept[:0] = [store.segments.revision(meta, current.segment, int(r))
                        for r in extra["kept"]]
            current = store.segments.revision(meta, current.segment, int(extra["base"]))
        else:
            kept.insert(0, current)
            assert current.parent is not None
            current = store.segments.revision(meta, current.segment, current.parent)
    return current, kept


def _prompt(record: RevisionRecord) -> Prompt:
    it = record.interaction
    assert it.marks is not None
    as_array = lambda pts: np.asarray(pts, dtype=np.int64).reshape(-1, 3)
    marks = Marks(as_array(it.marks.fg), as_array(it.marks.bg),
                  [Box(tuple(lo), tuple(hi)) for lo, hi in it.marks.boxes],
                  as_array(it.marks.points))
    plane = None if it.plane is None else Plane("zyx".index(it.plane.axis), it.plane.index)
    return Prompt(it.type, marks, plane, dict((it.model_extra or {}).get("options", {})))


def _bbox_on(mask: np.ndarray, plane: Plane | None) -> Box | None:
    region = mask if plane is None else np.expand_dims(
        np.take(mask, plane.index, axis=plane.axis), plane.axis)
    found = codec.bbox_of(region)
    if found is None:
        return None
    z0, y0, x0, z1, y1, x1 = found
    lo = [z0, y0, x0]
    hi = [z1 - 1, y1 - 1, x1 - 1]
    if plane is not None:
        lo[plane.axis] = hi[plane.axis] = plane.index
    return Box((lo[0], lo[1], lo[2]), (hi[0], hi[1], hi[2]))


def _step(store: Store, methods: Registry[Method], meta: SessionMeta, start: RevisionRecord,
          state: _State, record: RevisionRecord) -> _State:
    """Run the interaction of `record` again on `state`."""
    prompt = _prompt(record)
    method = methods.get(record.interaction.method)
    params = record.interaction.params or {}
    parsed = method.parse_params(params)
    marks = prompt.apply_to(state.marks)
    whole = full_box(meta.shape)

    def read_mask(box: Box) -> np.ndarray:
        return state.mask[box.slices_in(whole)].copy()

    context = SegmentContext(
        kind=prompt.kind, head_interaction=state.interaction,
        head_probability=lambda: state.probability,
        artifact=lambda name: store.segments.artifact(meta, start, name),
        options=dict(prompt.options))
    given = prompt.marks if prompt.edits else marks
    result = method.run(read_image=lambda box: store.sessions.read_image(meta, box),
                        read_mask=read_mask, shape=meta.shape, spacing=meta.spacing,
                        marks=given.on_plane(prompt.plane), plane=prompt.plane, params=parsed,
                        current_mask_bbox=_bbox_on(state.mask, prompt.plane), context=context)
    if prompt.edits:
        marks = drop_overridden(marks, result.roi, result.mask)
    mask = state.mask.copy()
    mask[result.roi.slices_in(whole)] = result.mask
    return _State(mask, marks, (result.roi, result.probability),
                  {"type": prompt.kind, "method": method.name, "params": params,
                   "plane": plane_record(prompt.plane)})


def _replay_step(store: Store, methods: Registry[Method], meta: SessionMeta,
                 start: RevisionRecord, state: _State, record: RevisionRecord,
                 removed: int) -> _State:
    """`_step`, with a refusal that says which kept interaction could not run again: the
    method's own words ("a slicewise click start needs a foreground click") alone answered
    a removal of another revision as if the request itself were wrong."""
    try:
        return _step(store, methods, meta, start, state, record)
    except InvalidPrompt as exc:
        what = f"{record.interaction.type}, {record.interaction.method}"
        raise type(exc)(f"removing revision {removed} leaves revision {record.revision} "
                        f"({what}) unable to run again: {exc.message}; remove that one too, "
                        "or undo instead") from None


def remove_interaction(store: Store, plugins: Any, meta: SessionMeta, segment_id: int,
                       revision: int, base_revision: int | None,
                       fence: Fence | None = None) -> Change:
    """Commit, on top of the head, the mask the segment's history gives without the
    interaction that made `revision` (see the module's docstring). `fence`: as for
    `interactions.interact` (run by the API's compute processes)."""
    methods: Registry[Method] = plugins.methods
    timings: dict[str, float] = {}
    begun = time.perf_counter()
    with store.sessions.locked(meta.id, fence) as held:
        segment, head = store.segments.head(meta, segment_id)
        check_base_revision(segment, base_revision)
        target = store.segments.revision(meta, segment_id, revision)  # 404 if not this segment's
        start, chain = effective(store, meta, head)
        numbers = [r.revision for r in chain]
        if revision not in numbers:
            if target.interaction.type in (REMOVE, "create") or target.interaction.marks is None:
                raise InvalidPrompt(f"revision {revision} ({target.interaction.type}) is not an "
                                    "interaction: only clicks, strokes, boxes, points and "
                                    "edits can be removed")
            raise InvalidPrompt(
                f"revision {revision} is not in the segment's current history after its last "
                f"fixed state (revision {start.revision}, {start.interaction.type}): it was "
                "undone or removed already, or lies before a job's or an import's revision, "
                "which cannot be replayed")
        at = numbers.index(revision)
        kept = chain[:at] + chain[at + 1:]
        if len(kept) - at > MAX_REPLAYED:
            raise InvalidPrompt(f"removing revision {revision} would run {len(kept) - at} "
                                f"interactions again, more than {MAX_REPLAYED}: undo instead")
        # the newest state before the removed one that is stored as it is: its own revision
        # when the chain up to it is the plain parent line
        origin, first = start, 0
        for k in range(at):
            if chain[k].parent != origin.revision:
                break
            origin, first = chain[k], k + 1
        whole = full_box(meta.shape)
        state = _State(store.segments.read_mask(meta, origin, whole), origin.marks.to_marks(),
                       store.segments.probability(meta, origin.revision),
                       origin.interaction.as_dict())
        for record in kept[first:]:
            state = _replay_step(store, methods, meta, start, state, record, revision)
        timings["compute"] = time.perf_counter() - begun
        before = store.segments.read_mask(meta, head, whole)
        changed = codec.bbox_of(before ^ state.mask)
        roi = whole if changed is None else Box(
            (int(changed[0]), int(changed[1]), int(changed[2])),
            (int(changed[3]) - 1, int(changed[4]) - 1, int(changed[5]) - 1))
        probability = state.mask[roi.slices_in(whole)].astype(np.float32)
        if state.probability is not None:
            box, values = state.probability
            inside = box.intersect(roi)
            if inside is not None:
                probability[inside.slices_in(roi)] = values[inside.slices_in(box)]
        description = {"type": REMOVE, "removed": revision, "base": start.revision,
                       "kept": [r.revision for r in kept], "replayed": len(kept) - first,
                       "roi": [list(roi.lo), list(roi.hi)]}
        new_mask = state.mask[roi.slices_in(whole)]
        record = store.segments.commit(meta, segment, head, roi, new_mask, description, timings,
                                       state.marks, probability, fence=held)
        delta = codec.encode_delta_from_xor(before[roi.slices_in(whole)] ^ new_mask, roi.lo,
                                            meta.shape, head.revision, record.revision)
    return Change(store.segments.get(meta, segment_id), head, record, delta, roi, timings)
