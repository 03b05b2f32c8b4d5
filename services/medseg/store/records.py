"""Typed records kept in Redis as JSON: a session's metadata, its segments and revisions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medseg.engine.prompts import Box, Marks


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class SessionMeta(BaseModel):
    id: str
    tenant: str
    name: str | None = None
    shape: tuple[int, int, int]  # (Z, Y, X)
    spacing: tuple[float, float, float]  # (sz, sy, sx) mm
    affine: list[list[float]]  # 4x4, voxel (x, y, z) -> RAS mm
    modality: str
    dtype: str
    source_format: str
    chunk: tuple[int, int, int]
    created_at: str = Field(default_factory=utcnow)
    # what loading the image changed (e.g. NaN voxels replaced), for the user to see
    warnings: list[str] = Field(default_factory=list)
    # where a DICOM image came from (a PACS): archive name, study / series / frame of reference
    # UIDs, instance count; the per-slice instance UIDs and headers are in the `dicom` key
    source: dict[str, Any] | None = None


# The largest label value: the label-map export is uint16 (a larger label could not be written,
# and one segment holding it would fail every export of its session)
MAX_LABEL = 65535


class SegmentRecord(BaseModel):
    id: int
    name: str
    label: int  # value in the label-map export
    color: str  # "#rrggbb"
    head: int  # current revision
    redo: list[int] = Field(default_factory=list)  # undone revisions, most recent last
    created_at: str = Field(default_factory=utcnow)
    # locked slices per axis ("z", "y", "x"): propagation never overwrites them
    locks: dict[str, list[int]] = Field(default_factory=dict)
    reviewed: bool = False  # an annotator marked it reviewed / accepted (viewer-set metadata)

    def with_lock(self, axis: str, index: int, locked: bool = True) -> SegmentRecord:
        current = set(self.locks.get(axis, []))
        current = current | {index} if locked else current - {index}
        locks = {**self.locks, axis: sorted(current)}
        return self.model_copy(update={"locks": {k: v for k, v in locks.items() if v}})


class MarksRecord(BaseModel):
    """JSON form of engine `Marks`: voxel coordinates (z, y, x)."""

    fg: list[tuple[int, int, int]] = Field(default_factory=list)
    bg: list[tuple[int, int, int]] = Field(default_factory=list)
    boxes: list[tuple[tuple[int, int, int], tuple[int, int, int]]] = Field(default_factory=list)
    points: list[tuple[int, int, int]] = Field(default_factory=list)  # interior margin points

    def to_marks(self) -> Marks:
        as_array = lambda pts: np.asarray(pts, dtype=np.int64).reshape(-1, 3)
        return Marks(as_array(self.fg), as_array(self.bg), [Box(lo, hi) for lo, hi in self.boxes],
                     as_array(self.points))

    @classmethod
    def from_marks(cls, marks: Marks) -> MarksRecord:
        return cls(
            fg=[tuple(p) for p in marks.fg.tolist()],
            bg=[tuple(p) for p in marks.bg.tolist()],
            boxes=[(b.lo, b.hi) for b in marks.boxes],
            points=[tuple(p) for p in np.asarray(marks.points).reshape(-1, 3).tolist()],
        )


Zyx = tuple[int, int, int]


class PlaneRecord(BaseModel):
    axis: Literal["z", "y", "x"]
    index: int


class InteractionMarks(BaseModel):
    """The marks one interaction added (the revision's `marks` hold all of them)."""

    fg: list[Zyx] = Field(default_factory=list)
    bg: list[Zyx] = Field(default_factory=list)
    boxes: list[tuple[Zyx, Zyx]] = Field(default_factory=list)
    points: list[Zyx] = Field(default_factory=list)


class InteractionRecord(BaseModel):
    """What made a revision (the audit trail). `type` is "create", an interaction type
    ("click", "scribble", "box", "points") or a job kind ("propagation", "finetune", ...);
    a job kind may record more facts of its own (extra fields are kept as they are)."""

    model_config = ConfigDict(extra="allow")

    type: str
    method: str | None = None  # the method or predictor that computed the mask
    params: dict[str, Any] | None = None  # the request's parameter overrides
    plane: PlaneRecord | None = None  # a 2D interaction's slice
    marks: InteractionMarks | None = None
    roi: tuple[Zyx, Zyx] | None = None  # inclusive voxel box the method recomputed
    job: str | None = None  # the job that committed it
    result: dict[str, Any] | None = None  # the method's or job's own summary

    def as_dict(self) -> dict[str, Any]:
        """The record as it was written (fields never set are left out)."""
        return self.model_dump(exclude_unset=True)


class RevisionRecord(BaseModel):
    """One immutable state of a segment's mask and what made it (the audit trail)."""

    revision: int
    segment: int
    parent: int | None
    created_at: str = Field(default_factory=utcnow)
    interaction: InteractionRecord
    timings: dict[str, float] = Field(default_factory=dict)  # seconds per stage
    chunks: dict[str, str] = Field(default_factory=dict)  # chunk key -> blob digest, non-empty only
    voxels: int = 0  # foreground voxel count
    marks: MarksRecord = Field(default_factory=MarksRecord)  # cumulative marks at this revision


JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
# the queue a job waits in, taken in this order by every worker (jobs/schedule.py)
JobPriority = Literal["interactive", "normal", "batch"]
JOB_STATES: tuple[JobState, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL_STATES: tuple[JobState, ...] = ("succeeded", "failed", "cancelled")


class JobProgress(BaseModel):
    step: int = 0
    total: int | None = None
    message: str = ""
    loss: float | None = None


class JobError(BaseModel):
    code: str  # e.g. revision_conflict, worker_lost, invalid_prompt, internal_error
    message: str


class JobRecord(BaseModel):
    """An asynchronous job as clients see it; the source of truth is this JSON in Redis (RQ only
    carries the id to a worker)."""

    id: str
    kind: str
    tenant: str
    session: str
    segment: int | None = None
    state: JobState = "queued"
    params: dict[str, Any] = Field(default_factory=dict)
    progress: JobProgress = Field(default_factory=JobProgress)
    created_at: str = Field(default_factory=utcnow)
    started_at: str | None = None
    finished_at: str | None = None
    timings: dict[str, float] = Field(default_factory=dict)  # seconds: queue, run, commit, ...
    base_revision: int | None = None
    result_revision: int | None = None
    result: dict[str, Any] = Field(default_factory=dict)  # kind-specific summary
    error: JobError | None = None
    cancel_requested: bool = False
    worker: str | None = None  # "<host>:<pid>" of the process running it
    priority: JobPriority = "normal"
    seq: int = 0  # the order it was submitted in (a Redis counter): newer jobs supersede older

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES
