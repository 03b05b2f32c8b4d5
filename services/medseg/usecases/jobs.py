"""Jobs as clients see them: look up (tenant-scoped), cancel, follow the event stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

from medseg.jobs import queue
from medseg.store import Store
from medseg.store.records import JobRecord

StreamEvent = tuple[str, str, dict]  # (stream id, type, data)


def get_job(store: Store, job_id: str, tenant: str) -> JobRecord:
    return store.jobs.get(job_id, tenant)


def cancel_job(store: Store, job_id: str, tenant: str) -> JobRecord:
    return queue.cancel(store, store.jobs.get(job_id, tenant))


async def follow(store: Store, async_redis, record: JobRecord, after: str = "0",
                 block_ms: int = 1000) -> AsyncIterator[StreamEvent]:
    """Events from `after` until "end", waiting on a redis.asyncio client (no thread held
    while a subscriber waits); a quiet interval triggers the liveness check."""
    while True:
        events = await store.jobs.aevents(async_redis, record, after, block_ms=block_ms)
        if not events:
            await anyio.to_thread.run_sync(store.jobs.get, record.id)
        for event in events:
            after = event[0]
            yield event
            if event[1] == "end":
                return

