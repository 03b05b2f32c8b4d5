"""What a job function gets: progress, cancellation, events, and the one-revision commit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medseg.engine.prompts import Box, Marks
from medseg.errors import InvalidPrompt, RevisionConflict
from medseg.store import Store
from medseg.store.jobs import finish
from medseg.store.records import JobRecord, RevisionRecord, SegmentRecord, SessionMeta


class Cancelled(Exception):
    """Raised by `JobContext.check_cancelled` once a client asked to cancel the job."""


@dataclass
class JobContext:
    store: Store
    record: JobRecord  # the record as the job started (state "running")
    committed: RevisionRecord | None = None
    _meta: SessionMeta | None = field(default=None, repr=False)

    @property
    def segment_id(self) -> int:
        """The segment the job changes (every kind with `needs_segment` has one)."""
        if self.record.segment is None:
            raise InvalidPrompt(f"job kind {self.record.kind!r} needs a segment")
        return self.record.segment

    @property
    def base_revision(self) -> int:
        """The revision the job was submitted on (its result's parent)."""
        if self.record.base_revision is None:
            raise InvalidPrompt(f"job kind {self.record.kind!r} needs a base revision")
        return self.record.base_revision

    @property
    def meta(self) -> SessionMeta:
        if self._meta is None:
            self._meta = self.store.sessions.get(self.record.session)
        return self._meta

    # -- reporting ---------------------------------------------------------------------------
    def progress(self, step: int, total: int | None = None, message: str = "",
                 loss: float | None = None) -> None:
        """Record progress (step k of total) and stream it; raises Cancelled if asked to stop."""
        def mutate(record: JobRecord):
            record.progress.step, record.progress.total = step, total
            record.progress.message, record.progress.loss = message, loss
            return [("progress", record.progress.model_dump())]
        current = self.store.jobs.update(self.record.session, self.record.id, mutate)
        if current.cancel_requested:
            raise Cancelled()

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        """Stream a partial result (e.g. one finished slice) to the job's event subscribers."""
        self.store.jobs.append_event(self.record, kind, data)

    def cancelled(self) -> bool:
        return self.store.jobs.get(self.record.id, check_alive=False).cancel_requested

    def check_cancelled(self) -> None:
        if self.cancelled():
            raise Cancelled()

    # -- the result --------------------------------------------------------------------------
    def commit(self, segment_id: int, parent: RevisionRecord,
               plan: Callable[[SegmentRecord], CommitPlan]) -> RevisionRecord:
        """Apply the job's result as ONE new revision, with the job's final record in the same
        MULTI, under the session lock, after re-checking cancellation. `plan(segment)` builds
        the change from the segment as it is now (its locks may have changed meanwhile).
        RevisionConflict when the segment's head is no longer the job's base revision."""
        meta = self.meta
        with self.store.sessions.locked(meta.id) as fence:
            current = self.store.jobs.get(self.record.id, check_alive=False)
            if current.cancel_requested:
                raise Cancelled()
            segment = self.store.segments.get(meta, segment_id)
            if segment.head != self.record.base_revision:
                raise RevisionConflict(
                    f"segment {segment_id} moved from revision {self.record.base_revision} to "
                    f"{segment.head} while the job ran; nothing was applied: submit it again")
            change = plan(segment)
            final = current.model_copy(deep=True)
            final.result = change.result

            def also(pipe, revision: RevisionRecord) -> None:
                final.result_revision = revision.revision
                if change.also is not None:
                    change.also(pipe, revision)
                self.store.jobs.write(pipe, final, finish(final, "succeeded"))

            self.committed = self.store.segments.commit(
                meta, change.segment, parent, change.box, change.mask, change.interaction,
                change.timings, change.marks, change.probability, also=also, fence=fence)
        return self.committed


@dataclass
class CommitPlan:
    segment: SegmentRecord  # as it should be saved (e.g. with a new lock); head is set by commit
    box: Box  # inclusive voxel box the new mask covers
    mask: np.ndarray  # bool, box shape (z, y, x)
    interaction: dict[str, Any]  # the audit trail entry
    timings: dict[str, float]
    marks: Marks
    result: dict[str, Any]  # the job's result summary
    probability: np.ndarray | None = None  # float32, box shape: stored with the revision
    also: Callable[[Any, RevisionRecord], None] | None = None  # more writes in the same MULTI
