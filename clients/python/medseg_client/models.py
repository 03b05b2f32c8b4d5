"""Typed views of the API's JSON bodies (unknown fields kept in ``raw``) and local mask views.

:class:`SegmentView` / :class:`AsyncSegmentView` keep a local copy of a segment's mask and its
revision, apply each change's ``rle-xor/1`` delta (:func:`codec.apply_delta`), and resync (GET
delta, else GET mask) when a change does not follow the revision they hold.
Voxel coordinates are ``(z, y, x)``; shapes are ``(Z, Y, X)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medseg_client.errors import MedsegError
from medseg_protocol import codec

__all__ = ["AsyncSegmentView", "Change", "ExportFile", "Job", "JobEvent", "Segment", "SegmentView",
           "Session"]


@dataclass(frozen=True)
class Segment:
    id: int
    name: str
    label: int
    color: str
    revision: int
    can_undo: bool
    can_redo: bool
    voxels: int
    reviewed: bool = False  # an annotator accepted it (update_segment(..., reviewed=True))
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Segment:
        return cls(id=int(obj["id"]), name=obj["name"], label=int(obj["label"]),
                   color=obj["color"], revision=int(obj["revision"]),
                   can_undo=bool(obj["can_undo"]), can_redo=bool(obj["can_redo"]),
                   voxels=int(obj["voxels"]), reviewed=bool(obj.get("reviewed", False)),
                   raw=obj)


@dataclass(frozen=True)
class Session:
    id: str
    name: str | None
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    affine: list[list[float]]
    modality: str
    source_format: str
    expires_in_s: int
    segments: list[Segment]
    # what the server changed in the upload to serve it (e.g. NaN voxels replaced): show them
    warnings: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
    expires_at: str | None = None  # ISO 8601: when it expires if left idle

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Session:
        return cls(id=obj["id"], name=obj.get("name"), shape=tuple(obj["shape"]),
                   spacing=tuple(obj["spacing"]), affine=obj["affine"],
                   modality=obj.get("modality", ""), source_format=obj.get("source_format", ""),
                   expires_in_s=int(obj.get("expires_in_s", 0)),
                   segments=[Segment.from_json(s) for s in obj.get("segments", [])],
                   warnings=[str(w) for w in obj.get("warnings", [])], raw=obj,
                   expires_at=obj.get("expires_at"))


@dataclass(frozen=True)
class Change:
    """Answer to an interaction, undo or redo: the new revision and the ``rle-xor/1`` delta."""

    segment_id: int
    revision: int
    previous_revision: int
    delta: dict[str, Any]
    roi: dict[str, Any] | None
    timings_ms: dict[str, float]
    can_undo: bool
    can_redo: bool
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def changed_voxels(self) -> int:
        return int(self.delta.get("changed_voxels") or 0)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Change:
        return cls(segment_id=int(obj["segment_id"]), revision=int(obj["revision"]),
                   previous_revision=int(obj["previous_revision"]), delta=obj["delta"],
                   roi=obj.get("roi"), timings_ms=obj.get("timings_ms", {}),
                   can_undo=bool(obj["can_undo"]), can_redo=bool(obj["can_redo"]), raw=obj)


@dataclass(frozen=True)
class Job:
    """An asynchronous job (propagation, fine-tuning): poll it, follow its events, cancel it.
    ``progress`` is ``{"step", "total", "message", "loss"}``; ``error`` ``{"code", "message"}``."""

    id: str
    kind: str
    state: str  # queued, running, succeeded, failed, cancelled
    progress: dict[str, Any]
    session_id: str
    segment_id: int | None
    base_revision: int | None
    result_revision: int | None
    result: dict[str, Any]
    error: dict[str, Any] | None
    timings_ms: dict[str, float]
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
    priority: str = "normal"  # interactive, normal, batch: the queue it waits in
    # while queued or running: {"position", "jobs_ahead", "running", "workers", "starts_in_s",
    # "eta_s", "basis"}; None once it has ended (or from a server without queue reports)
    queue: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled")

    def queue_text(self) -> str:
        """Where it stands in words, e.g. "position 2 (1 ahead), ETA 14 s"; "" once ended."""
        q = self.queue
        if not q:
            return ""
        eta = "" if q.get("eta_s") is None else f"ETA {_seconds(q['eta_s'])}"
        if q.get("position") is None:  # running
            return eta and f"{eta} left"
        text = f"position {q['position']} ({q['jobs_ahead']} ahead)"
        if not q.get("workers"):
            return f"{text}, no job worker running"
        return f"{text}, {eta}" if eta else text

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Job:
        return cls(id=obj["id"], kind=obj["kind"], state=obj["state"], progress=obj["progress"],
                   session_id=obj["session_id"], segment_id=obj.get("segment_id"),
                   base_revision=obj.get("base_revision"),
                   result_revision=obj.get("result_revision"), result=obj.get("result") or {},
                   error=obj.get("error"), timings_ms=obj.get("timings_ms") or {}, raw=obj,
                   priority=obj.get("priority") or "normal", queue=obj.get("queue"))


def _seconds(value: float) -> str:
    value = max(float(value), 0.0)
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.0f} min"


@dataclass(frozen=True)
class JobEvent:
    """One server-sent event of a job: ``event`` is state, progress, slice, ..., end."""

    id: str
    event: str
    data: dict[str, Any]


@dataclass(frozen=True)
class ExportFile:
    """A downloaded file: its bytes, the server's suggested filename and media type."""

    content: bytes
    filename: str
    media_type: str

    def save(self, path) -> None:
        with open(path, "wb") as fh:
            fh.write(self.content)

    @classmethod
    def from_response(cls, response, default_name: str) -> ExportFile:
        disposition = response.headers.get("Content-Disposition", "")
        match = re.search(r'filename="?([^";]+)"?', disposition)
        return cls(content=response.content, filename=match.group(1) if match else default_name,
                   media_type=response.headers.get("Content-Type", "application/octet-stream"))


class _ViewState:
    def __init__(self, client: Any, sid: str, seg: int, mask: np.ndarray, revision: int):
        self.client, self.session_id, self.segment_id = client, sid, int(seg)
        self.mask, self.revision = mask, int(revision)

    def _fast_forward(self, change: Change) -> bool:
        """Apply ``change`` when it follows the revision held; False when a resync is needed."""
        if change.previous_revision != self.revision:
            return change.revision == self.revision  # already there: nothing to do
        self.mask = codec.apply_delta(self.mask, change.delta)
        self.revision = change.revision
        return True

    def _kw(self, kind: str, kw: dict[str, Any]) -> dict[str, Any]:
        key = "revision" if kind in ("undo", "redo") else "base_revision"
        return {key: self.revision, **kw}


class SegmentView(_ViewState):
    """Local mask + revision of one segment, kept current by the deltas of each change."""

    @classmethod
    def open(cls, client: Any, sid: str, seg: int, revision: int | None = None) -> SegmentView:
        rev = revision if revision is not None else client.get_segment(sid, seg).revision
        return cls(client, sid, seg, client.mask(sid, seg, rev), rev)

    def apply(self, change: Change) -> Change:
        if not self._fast_forward(change):
            self.sync(change.revision)
        return change

    def sync(self, revision: int | None = None) -> None:
        """Bring the local mask to ``revision`` (head by default): GET delta, else GET mask."""
        c, sid, seg = self.client, self.session_id, self.segment_id
        target = revision if revision is not None else c.get_segment(sid, seg).revision
        try:
            delta = c.delta(sid, seg, self.revision, target)
            self.mask = codec.apply_delta(self.mask, delta)
        except (MedsegError, ValueError):
            self.mask = c.mask(sid, seg, target)
        self.revision = int(target)

    def _run(self, kind: str, *args: Any, **kw: Any) -> Change:
        fn = getattr(self.client, kind)
        return self.apply(fn(self.session_id, self.segment_id, *args, **self._kw(kind, kw)))

    def click(self, points, **kw) -> Change:
        return self._run("click", points, **kw)

    def scribble(self, paths, **kw) -> Change:
        return self._run("scribble", paths, **kw)

    def box(self, lo, hi, **kw) -> Change:
        return self._run("box", lo, hi, **kw)

    def points(self, points, **kw) -> Change:
        return self._run("points", points, **kw)

    def undo(self) -> Change:
        return self._run("undo")

    def redo(self) -> Change:
        return self._run("redo")


class AsyncSegmentView(_ViewState):
    """:class:`SegmentView` for an :class:`AsyncClient` (the same methods, awaited)."""

    @classmethod
    async def open(cls, client: Any, sid: str, seg: int,
                   revision: int | None = None) -> AsyncSegmentView:
        rev = revision if revision is not None else (await client.get_segment(sid, seg)).revision
        return cls(client, sid, seg, await client.mask(sid, seg, rev), rev)

    async def apply(self, change: Change) -> Change:
        if not self._fast_forward(change):
            await self.sync(change.revision)
        return change

    async def sync(self, revision: int | None = None) -> None:
        c, sid, seg = self.client, self.session_id, self.segment_id
        target = revision if revision is not None else (await c.get_segment(sid, seg)).revision
        try:
            self.mask = codec.apply_delta(self.mask, await c.delta(sid, seg, self.revision, target))
        except (MedsegError, ValueError):
            self.mask = await c.mask(sid, seg, target)
        self.revision = int(target)

    async def _run(self, kind: str, *args: Any, **kw: Any) -> Change:
        fn = getattr(self.client, kind)
        return await self.apply(await fn(self.session_id, self.segment_id, *args,
                                         **self._kw(kind, kw)))

    async def click(self, points, **kw) -> Change:
        return await self._run("click", points, **kw)

    async def scribble(self, paths, **kw) -> Change:
        return await self._run("scribble", paths, **kw)

    async def box(self, lo, hi, **kw) -> Change:
        return await self._run("box", lo, hi, **kw)

    async def points(self, points, **kw) -> Change:
        return await self._run("points", points, **kw)

    async def undo(self) -> Change:
        return await self._run("undo")

    async def redo(self) -> Change:
        return await self._run("redo")

