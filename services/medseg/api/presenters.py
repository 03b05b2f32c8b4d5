"""Store records -> response schemas."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import numpy as np
import zstandard
from fastapi import Response

from medseg.api.schemas import (
    BoxSpec,
    ChangeResult,
    Delta,
    JobPublic,
    JobQueuePublic,
    RevisionPublic,
    SegmentPublic,
    SessionPublic,
)
from medseg.jobs import queue, schedule
from medseg.jobs.schedule import QueueInfo
from medseg.store import Store
from medseg.store.records import JobRecord, RevisionRecord, SegmentRecord, SessionMeta
from medseg.usecases.interactions import Change
from medseg.usecases.sessions import ExportFile


def ms(timings: dict[str, float]) -> dict[str, float]:
    return {k: round(v * 1000.0, 3) for k, v in timings.items()}


def segment_public(store: Store, meta: SessionMeta, segment: SegmentRecord,
                   head: RevisionRecord | None = None) -> SegmentPublic:
    head = head or store.segments.revision(meta, segment.id, segment.head)
    return SegmentPublic(id=segment.id, name=segment.name, label=segment.label, color=segment.color,
                         revision=segment.head, can_undo=head.parent is not None,
                         can_redo=bool(segment.redo), voxels=head.voxels,
                         locked_slices=segment.locks, reviewed=segment.reviewed)


def session_public(store: Store, meta: SessionMeta) -> SessionPublic:
    return SessionPublic(
        id=meta.id, name=meta.name, shape=list(meta.shape), spacing=list(meta.spacing),
        affine=meta.affine, modality=meta.modality, dtype=meta.dtype,
        source_format=meta.source_format, created_at=meta.created_at,
        expires_in_s=(ttl := max(store.sessions.ttl(meta.id), 0)),
        expires_at=expires_at(ttl),
        segments=[segment_public(store, meta, s) for s in store.segments.list(meta)],
        warnings=meta.warnings, source=meta.source)


def expires_at(ttl_s: int) -> str:
    return (datetime.now(UTC) + timedelta(seconds=ttl_s)).isoformat(timespec="seconds")


def change_result(change: Change) -> ChangeResult:
    roi = None if change.roi is None else BoxSpec(lo=list(change.roi.lo), hi=list(change.roi.hi))
    return ChangeResult(
        segment_id=change.segment.id, revision=change.current.revision,
        previous_revision=change.previous.revision, delta=Delta(**change.delta), roi=roi,
        timings_ms=ms(change.timings), can_undo=change.current.parent is not None,
        can_redo=bool(change.segment.redo))


def revision_public(record: RevisionRecord, segment: SegmentRecord) -> RevisionPublic:
    return RevisionPublic(revision=record.revision, parent=record.parent,
                          created_at=record.created_at, interaction=record.interaction.as_dict(),
                          timings_ms=ms(record.timings), voxels=record.voxels,
                          is_head=record.revision == segment.head,
                          undone=record.revision in segment.redo)


def file_response(file: ExportFile) -> Response:
    return Response(file.content, media_type=file.media_type,
                    headers={"Content-Disposition": f'attachment; filename="{file.filename}"'})


def job_public(record: JobRecord, queue: QueueInfo | None = None) -> JobPublic:
    return JobPublic(
        id=record.id, kind=record.kind, session_id=record.session, segment_id=record.segment,
        state=record.state, progress=record.progress.model_dump(), created_at=record.created_at,
        started_at=record.started_at, finished_at=record.finished_at, timings_ms=ms(record.timings),
        base_revision=record.base_revision, result_revision=record.result_revision,
        result=record.result, error=record.error.model_dump() if record.error else None,
        cancel_requested=record.cancel_requested, priority=record.priority,
        queue=None if queue is None else JobQueuePublic(
            position=queue.position, jobs_ahead=queue.jobs_ahead, running=queue.running,
            workers=queue.workers, starts_in_s=_round(queue.starts_in_s),
            eta_s=_round(queue.eta_s), basis=queue.basis))


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def job_with_queue(store: Store, record: JobRecord) -> JobPublic:
    """The job with its queue position and ETA (while it is queued or running)."""
    info = schedule.queue_info(store.jobs.redis, record, queue.worker_count(store))
    return job_public(record, info)


def array_response(array: np.ndarray, accept_encoding: str) -> Response:
    """Raw array bytes with X-Shape / X-Dtype headers, zstd- or gzip-compressed when accepted.

    An image never changes within a session (ids are never reused), so the browser may cache
    the answer for the session's lifetime."""
    body = array.tobytes()
    headers = {"X-Shape": ",".join(str(s) for s in array.shape), "X-Dtype": array.dtype.name,
               "Cache-Control": "private, max-age=3600", "Vary": "Accept-Encoding"}
    accepted = {part.split(";")[0].strip().lower() for part in accept_encoding.split(",")}
    if "zstd" in accepted:
        body, headers["Content-Encoding"] = zstandard.ZstdCompressor(level=1).compress(body), "zstd"
    elif "gzip" in accepted:
        # level 1: most of the gain for a few ms on a 512x512 int16 plane
        body, headers["Content-Encoding"] = gzip.compress(body, compresslevel=1, mtime=0), "gzip"
    return Response(body, media_type="application/octet-stream", headers=headers)
