"""/v1/jobs/{id}: poll, follow (server-sent events), cancel. Jobs are tenant-scoped (404)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Annotated

import anyio
import redis.asyncio
from fastapi import APIRouter, Header, Path, Request
from sse_starlette import EventSourceResponse
from starlette.types import Receive, Scope, Send

from medseg.api.deps import SessionDep, StoreDep, TenantDep
from medseg.api.presenters import job_public, job_with_queue
from medseg.api.schemas import JOB_ID_PATTERN, JobPublic, error_responses
from medseg.errors import TooManyStreams
from medseg.usecases import jobs

router = APIRouter(tags=["jobs"])


def async_redis(request: Request):
    """One redis.asyncio client per app (per event loop), made on first use."""
    client = getattr(request.app.state, "async_redis", None)
    if client is None:
        client = redis.asyncio.Redis.from_url(request.app.state.settings.redis_url
                                              or "redis://127.0.0.1:6379/0")
        request.app.state.async_redis = client
    return client

_ERRORS = error_responses(401, 404)
STREAM_RETRY_S = 10  # a stream ends with its job, typically within seconds


class _CountedStream(EventSourceResponse):
    """An event stream that gives its tenant's place back when it ends, however it ends
    (the job's end, a disconnect, an error)."""

    def __init__(self, *args, release, **kwargs):
        super().__init__(*args, **kwargs)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def _take_stream_place(request: Request, tenant: str):
    """Count one more open stream of `tenant` in this process; TooManyStreams (429) past
    MEDSEG_TENANT_MAX_STREAMS. Returns what gives the place back."""
    limit = request.app.state.settings.tenant_max_streams
    open_streams: Counter[str] = getattr(request.app.state, "open_streams", None) or Counter()
    request.app.state.open_streams = open_streams
    if limit and open_streams[tenant] >= limit:
        raise TooManyStreams(f"this tenant follows {open_streams[tenant]} job event streams, "
                             f"the most it may at once ({limit}); close one, or poll "
                             "GET /v1/jobs/{id} instead", STREAM_RETRY_S)
    open_streams[tenant] += 1

    def release() -> None:
        open_streams[tenant] -= 1

    return release
JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN)]
# an event id as the stream gave it ("<ms>-<seq>"): anything else is a 422 here rather than an
# error of Redis's XREAD after the stream's 200 has been sent
EVENT_ID_PATTERN = r"^[0-9]{1,20}(-[0-9]{1,20})?$"


@router.get("/v1/jobs/{job_id}", response_model=JobPublic, responses=_ERRORS,
            summary="A job's state, progress, timings and result, with its queue position and "
                    "ETA while it waits or runs (poll this, or follow /events)")
def get_job(store: StoreDep, tenant: TenantDep, job_id: JobId) -> JobPublic:
    return job_with_queue(store, jobs.get_job(store, job_id, tenant))


@router.post("/v1/jobs/{job_id}/cancel", response_model=JobPublic, responses=_ERRORS,
             summary="Cancel: at once while queued, at the next step while running; a finished "
                     "job is left as it is. Nothing is ever half-applied.")
def cancel_job(store: StoreDep, tenant: TenantDep, job_id: JobId) -> JobPublic:
    return job_public(jobs.cancel_job(store, job_id, tenant))


@router.get("/v1/sessions/{session_id}/jobs", response_model=list[JobPublic],
            responses=_ERRORS, summary="The session's jobs, oldest first")
def list_jobs(store: StoreDep, meta: SessionDep) -> list[JobPublic]:
    return [job_public(r) for r in store.jobs.list(meta.id)]


@router.get("/v1/jobs/{job_id}/events", responses={**_ERRORS, **error_responses(429), 200: {
    "content": {"text/event-stream": {}},
    "description": "Server-sent events from the job's start (or after Last-Event-ID): "
                   "`state`, `progress`, `cancel_requested`, kind-specific results such as "
                   "`slice`, and a final `end` carrying the job record; then the stream closes."}},
    response_class=EventSourceResponse, summary="Follow a job as server-sent events")
async def job_events(store: StoreDep, tenant: TenantDep, job_id: JobId, request: Request,
                     last_event_id: Annotated[str | None, Header(
                         pattern=EVENT_ID_PATTERN, description="resume after this event id")
                     ] = None) -> EventSourceResponse:
    record = await anyio.to_thread.run_sync(jobs.get_job, store, job_id, tenant)

    async def stream():
        async for event_id, kind, data in jobs.follow(store, async_redis(request), record,
                                                      last_event_id or "0"):
            if await request.is_disconnected():
                return
            yield {"id": event_id, "event": kind, "data": json.dumps(data)}

    return _CountedStream(stream(), ping=15, release=_take_stream_place(request, tenant))
