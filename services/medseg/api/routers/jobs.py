"""/v1/jobs/{id}: poll, follow (server-sent events), cancel. Jobs are tenant-scoped (404)."""

from __future__ import annotations

import json
from typing import Annotated

import anyio
import redis.asyncio
from fastapi import APIRouter, Header, Path, Request
from sse_starlette import EventSourceResponse

from medseg.api.deps import SessionDep, StoreDep, TenantDep
from medseg.api.presenters import job_public, job_with_queue
from medseg.api.schemas import JobPublic, error_responses
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
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{24}$")]
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


@router.get("/v1/jobs/{job_id}/events", responses={**_ERRORS, 200: {
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

    return EventSourceResponse(stream(), ping=15)
