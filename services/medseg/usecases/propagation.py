"""Propagation as a job (kind "propagate"), locked slices, and submitting a propagation.

The job reads its base revision, runs the engine's generator (engine/propagation.py), streams
every finished slice as a `slice` event with its `rle-xor/1` delta against the base revision,
and commits ONE revision whose interaction says it was a propagation. The start slice is locked
with that revision; slices locked meanwhile are restored to the base revision's content.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medseg.engine.prompts import AXES, Box, Prompt
from medseg.engine.propagation import PredictorSpec, propagate, slice_box, split_params
from medseg.errors import InvalidPrompt, MedsegError
from medseg.jobs import queue
from medseg.jobs.context import CommitPlan, JobContext
from medseg.jobs.kinds import JobKind
from medseg.plugins import Plugins
from medseg.registry import Registry
from medseg.store import Store
from medseg.store.chunks import full_box
from medseg.store.records import JobRecord, SegmentRecord, SessionMeta
from medseg.store.sessions import Fence
from medseg.usecases import interactions
from medseg.usecases.interactions import Change, check_base_revision, interact
from medseg_protocol import codec

KIND = "propagate"


class PropagateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    axis: Literal["z", "y", "x"] = "z"
    start_index: int = Field(ge=0)
    method: str  # a registered slice predictor (submit resolves the default)
    params: dict[str, Any] = Field(default_factory=dict)


def _plane(axis: int, index: int) -> tuple:
    return tuple(index if a == axis else slice(None) for a in range(3))


def largest_slice(store: Store, meta: SessionMeta, record, axis: int) -> int:
    mask = store.segments.read_mask(meta, record, full_box(meta.shape))
    areas = mask.sum(axis=tuple(a for a in range(3) if a != axis))
    if not areas.any():
        raise InvalidPrompt("the segment is empty: draw or accept one slice, then propagate")
    return int(np.argmax(areas))


def check_method(predictors: Registry[PredictorSpec], method: str | None,
                 params: dict[str, Any]) -> PredictorSpec:
    """The predictor (the default for None); UnknownName / InvalidPrompt for an unknown
    method or bad parameters, before anything changes."""
    spec = predictors.get(method)
    split_params(spec, params)
    return spec


def check_volume(meta: SessionMeta) -> None:
    """InvalidPrompt for a 2D image (an axis one voxel long): it has no slices to propagate
    through, and along another axis its "slices" are single rows of pixels, which the job
    would overwrite with predictions made for 2D slices (it cleared most of a PNG's mask)."""
    if 1 in meta.shape:
        raise InvalidPrompt(f"propagation needs a volume: this image is 2D (shape "
                            f"{list(meta.shape)}, one voxel along an axis), so it has no "
                            "slices to propagate through")


def submit(store: Store, plugins: Plugins, meta: SessionMeta, tenant: str, segment_id: int,
           axis: str, start_index: int | None, method: str | None, params: dict[str, Any],
           base_revision: int | None) -> JobRecord:
    """Check the request now (422/409 instead of a failed job), then queue the job."""
    check_volume(meta)
    spec = check_method(plugins.predictors, method, params)
    segment, head = store.segments.head(meta, segment_id)
    check_base_revision(segment, base_revision)
    a = AXES[axis]
    if start_index is None:
        start_index = largest_slice(store, meta, head, a)
    elif not 0 <= start_index < meta.shape[a]:
        raise InvalidPrompt(f"start_index {start_index} is outside axis {axis} "
                            f"(0..{meta.shape[a] - 1})")
    box = slice_box(meta.shape, a, start_index, (0, 0),
                    [s - 1 for i, s in enumerate(meta.shape) if i != a])
    if not store.segments.read_mask(meta, head, box).any():
        raise InvalidPrompt(f"slice {start_index} on axis {axis} is empty in revision "
                            f"{head.revision}: nothing to propagate from")
    job_params = PropagateParams(axis=axis, start_index=start_index, method=spec.name,
                                 params=params)
    return queue.submit(store, plugins.job_kinds.get(KIND), tenant, meta.id, segment_id,
                        job_params.model_dump(), head.revision)


@dataclass
class PropagateAfter:
    """A propagation asked for together with a 2D interaction."""

    method: str | None
    params: dict[str, Any]


@dataclass
class ChangeAndJob:
    change: Change
    job: JobRecord | None = None
    job_error: MedsegError | None = None  # the interaction landed, the propagation did not


def check_interaction(plugins: Plugins, meta: SessionMeta, prompt: Prompt, method: str | None,
                      params: dict[str, Any], after: PropagateAfter | None) -> None:
    """What `interact_then_propagate` checks before it takes the lock, for a caller that
    wants a bad request refused before handing it to a compute process."""
    interactions.check(plugins.methods, meta, prompt, method, params)
    if after is not None:
        if prompt.plane is None:
            raise InvalidPrompt("propagate after an interaction needs a 2D interaction on a volume")
        check_volume(meta)
        check_method(plugins.predictors, after.method, after.params)


def interact_then_propagate(store: Store, plugins: Plugins, meta: SessionMeta, tenant: str,
                            segment_id: int, prompt: Prompt, method: str | None,
                            params: dict[str, Any], base_revision: int | None, max_marks: int,
                            after: PropagateAfter | None, fence: Fence | None = None,
                            ) -> ChangeAndJob:
    """An interaction, then (optionally) a propagation from its slice along its plane's axis.
    The propagation is checked before the interaction runs; one that cannot start afterwards
    (e.g. the corrected slice is empty) does not undo the interaction: its error is returned
    beside the change. `fence`: as for `interact`."""
    check_interaction(plugins, meta, prompt, method, params, after)
    change = interact(store, plugins.methods, meta, segment_id, prompt, method, params,
                      base_revision, max_marks, fence)
    if after is None or prompt.plane is None:
        return ChangeAndJob(change)
    try:
        job = submit(store, plugins, meta, tenant, segment_id, "zyx"[prompt.plane.axis],
                     prompt.plane.index, after.method, after.params, change.current.revision)
    except MedsegError as exc:
        return ChangeAndJob(change, job_error=exc)
    return ChangeAndJob(change, job)


def set_lock(store: Store, meta: SessionMeta, segment_id: int, axis: str, index: int,
             locked: bool) -> SegmentRecord:
    if not 0 <= index < meta.shape[AXES[axis]]:
        raise InvalidPrompt(f"slice {index} is outside axis {axis} "
                            f"(0..{meta.shape[AXES[axis]] - 1})")
    with store.sessions.locked(meta.id) as fence:
        segment = store.segments.get(meta, segment_id).with_lock(axis, index, locked)
        store.segments.save(meta, segment, fence)
    return segment


def run(predictors: Registry[PredictorSpec], ctx: JobContext, p: PropagateParams) -> dict[str, Any]:
    """The job: predict slice after slice, stream each, commit one revision."""
    t0 = time.perf_counter()
    store, meta, job = ctx.store, ctx.meta, ctx.record
    axis = AXES[p.axis]
    base = store.segments.revision(meta, ctx.segment_id, ctx.base_revision)
    segment = store.segments.get(meta, ctx.segment_id)
    before = store.segments.read_mask(meta, base, full_box(meta.shape))
    after = before.copy()
    start_mask = before[_plane(axis, p.start_index)]
    spec = predictors.get(p.method)
    settings, own = split_params(spec, p.params)
    full_slice = slice_box(meta.shape, axis, p.start_index, (0, 0),
                           [s - 1 for i, s in enumerate(meta.shape) if i != axis])
    start_image = np.squeeze(store.sessions.read_image(meta, full_slice).astype(np.float32), axis)
    sp2 = tuple(s for i, s in enumerate(meta.spacing) if i != axis)
    predictor = spec.build(own, start_image, start_mask, sp2)
    locked = segment.locks.get(p.axis, [])
    t1 = time.perf_counter()
    read_image = lambda box: store.sessions.read_image(meta, box)
    predicted, changed, flags, compute_s = [], [], [], 0.0
    ctx.progress(0, None, f"propagating from slice {p.start_index} along {p.axis}")
    for done, result in enumerate(propagate(read_image, meta.shape, meta.spacing, axis,
                                            p.start_index, start_mask, predictor, settings,
                                            locked), start=1):
        compute_s += result.seconds
        index = _plane(axis, result.index)
        xor = before[index] ^ result.mask
        after[index] = result.mask
        if xor.any():
            changed.append(result.index)
        if not result.cleared:
            predicted.append(result.index)
        if result.flags:
            flags.append({"index": result.index, "reasons": result.flags})
        ctx.emit("slice", {
            "axis": p.axis, "index": result.index, "area_mm2": round(result.area_mm2, 2),
            "confidence": round(result.confidence, 4), "flags": result.flags, "end": result.end,
            "cleared": result.cleared, "done": done, "estimated_total": result.estimated_total,
            "delta": _slice_delta(xor, axis, result.index, meta.shape, base.revision)})
        ctx.progress(done, result.estimated_total, f"slice {result.index}")
    t2 = time.perf_counter()
    summary = {"axis": p.axis, "start_index": p.start_index, "method": p.method,
               "params": p.params, "slices_predicted": sorted(predicted),
               "slices_changed": sorted(changed), "flags": flags,
               "ms_per_slice": round(1000 * compute_s / max(len(predicted), 1), 2)}

    def plan(current: SegmentRecord) -> CommitPlan:
        # slices locked while the job ran keep the base revision's content
        for index in set(current.locks.get(p.axis, [])) - set(locked) - {p.start_index}:
            after[_plane(axis, index)] = before[_plane(axis, index)]
        span = changed or [p.start_index]
        lo = [0, 0, 0]
        hi = [s - 1 for s in meta.shape]
        lo[axis], hi[axis] = min(span), max(span)
        box = Box(tuple(lo), tuple(hi))
        region = tuple(slice(a, b + 1) for a, b in zip(box.lo, box.hi))
        return CommitPlan(
            current.with_lock(p.axis, p.start_index), box, after[region],
            {"type": "propagation", "job": job.id, **summary},
            {"load": t1 - t0, "compute": compute_s, "propagate": t2 - t1,
             "commit": time.perf_counter() - t2},
            base.marks.to_marks(), summary)

    ctx.commit(ctx.segment_id, base, plan)
    return summary


def _slice_delta(xor: np.ndarray, axis: int, index: int, shape, base_revision: int) -> dict:
    """rle-xor/1 delta of one slice against the base revision (to_revision unknown yet)."""
    offset = [0, 0, 0]
    offset[axis] = index
    return codec.encode_delta_from_xor(np.expand_dims(xor, axis), tuple(offset), shape,
                                       base_revision, None)


def job_kind(predictors: Registry[PredictorSpec]) -> JobKind:
    """The propagate job kind, running the predictors of `predictors`."""
    return JobKind(
        name=KIND,
        description="Slice-by-slice propagation of one slice's mask along an axis; streams "
                    "each finished slice, commits one revision.",
        params_type=PropagateParams, run=functools.partial(run, predictors),
        priority="interactive")  # a user at the viewer waits for it (jobs/schedule.py)
