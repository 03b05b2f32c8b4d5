"""Jobs as clients see them: look up (tenant-scoped), cancel, follow the event stream."""

from __future__ import annotations

from collections.abc import Iterator

from medseg.jobs import queue
from medseg.store import Store
from medseg.store.records import JobRecord

StreamEvent = tuple[str, str, dict]  # (stream id, type, data)


def get_job(store: Store, job_id: str, tenant: str) -> JobRecord:
    return store.jobs.get(job_id, tenant)


def cancel_job(store: Store, job_id: str, tenant: str) -> JobRecord:
    return queue.cancel(store, store.jobs.get(job_id, tenant))


def next_events(store: Store, record: JobRecord, after: str, block_ms: int = 1000) -> list[StreamEvent]:
    """Events after stream id `after`, waiting up to block_ms. When none came, the record is
    re-read so that a job whose worker died gets its final ("end") event written."""
    events = store.jobs.events(record, after, block_ms=block_ms)
    if not events:
        store.jobs.get(record.id)  # liveness check: fails a lost job, which appends "end"
    return events


def replay(store: Store, record: JobRecord, after: str = "0",
           block_ms: int = 1000) -> Iterator[StreamEvent]:
    """All events from `after` until the job's "end" event (blocking between them)."""
    while True:
        for event in next_events(store, record, after, block_ms):
            after = event[0]
            yield event
            if event[1] == "end":
                return
