"""Jobs in the SDK: endpoints shared by both clients (`JobEndpoints`), and the blocking
(`SyncJobMixin`) and awaitable (`AsyncJobMixin`) ways to wait for a job or follow its events.

    job = client.propagate(sid, seg, axis="z")                 # 202: a queued Job
    job = client.wait_job(job.id, on_progress=print)            # polls until it is done
    for event in client.job_events(job.id): ...                 # server-sent events, replayed
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx

from medseg_client._calls import _Call, _if_match
from medseg_client.errors import connection_failed, error_from_response
from medseg_client.models import Job, JobEvent

ProgressCallback = Callable[[Job], None]


def _job(r: httpx.Response) -> Job:
    return Job.from_json(r.json())


class JobEndpoints:
    def _send(self, call: _Call) -> Any:  # pragma: no cover - provided by the client
        raise NotImplementedError

    def get_job(self, job_id: str):
        return self._send(_Call("GET", f"/v1/jobs/{job_id}", _job))

    def cancel_job(self, job_id: str):
        """Cancel at once while queued, at the next step while running; never half-applied."""
        return self._send(_Call("POST", f"/v1/jobs/{job_id}/cancel", _job))

    def list_jobs(self, sid: str):
        return self._send(_Call("GET", f"/v1/sessions/{sid}/jobs",
                                lambda r: [Job.from_json(j) for j in r.json()]))

    def propagate(self, sid: str, seg: int, axis: str = "z", start_index: int | None = None,
                  method: str | None = None, params: dict[str, Any] | None = None,
                  revision: int | None = None):
        """Start a propagation job from slice ``start_index`` (default: the largest) along
        ``axis`` with ``method`` (default: the server's, first in capabilities'
        ``propagation_methods``); ``revision`` (If-Match) makes it a Conflict when the segment
        moved on."""
        body = {"axis": axis, "start_index": start_index, "params": params or {}}
        if method:
            body["method"] = method
        return self._send(_Call("POST", f"/v1/sessions/{sid}/segments/{seg}/propagate", _job,
                                json=body, headers=_if_match(revision)))

    def finetune(self, sid: str, seg: int, scribbles: list | None = None,
                 mode: str | None = None, params: dict[str, Any] | None = None,
                 revision: int | None = None):
        """Start a BIFSeg fine-tuning job on the segment's ``bifseg`` box result.

        ``scribbles``: ``{"path": [[z, y, x], ...], "foreground": bool}`` dicts or
        ``(path, foreground)`` pairs (on the box's plane for a 2D box). ``mode`` defaults to
        "supervised" with scribbles, else "unsupervised". ``params`` overrides the paper's
        defaults (alternations, iterations, lr, lambda, sigma, t0, t1, epsilon, omega,
        weighted). ``revision`` (If-Match) makes it a Conflict when the segment moved on."""
        marks = [s if isinstance(s, dict) else
                 {"path": [[int(v) for v in p] for p in s[0]], "foreground": bool(s[1])}
                 for s in scribbles or []]
        body = {"mode": mode or ("supervised" if marks else "unsupervised"), "scribbles": marks,
                "params": params or {}}
        return self._send(_Call("POST", f"/v1/sessions/{sid}/segments/{seg}/finetune", _job,
                                json=body, headers=_if_match(revision)))

    def locks(self, sid: str, seg: int):
        """Locked slices per axis, e.g. ``{"z": [5, 11]}``."""
        return self._send(_Call("GET", f"/v1/sessions/{sid}/segments/{seg}/locks",
                                lambda r: r.json()["locked_slices"]))

    def lock(self, sid: str, seg: int, axis: str, index: int, locked: bool = True):
        return self._send(_Call("PUT" if locked else "DELETE",
                                f"/v1/sessions/{sid}/segments/{seg}/locks/{axis}/{int(index)}",
                                lambda r: r.json()["locked_slices"]))

    def unlock(self, sid: str, seg: int, axis: str, index: int):
        return self.lock(sid, seg, axis, index, locked=False)


class _SSEParser:
    """Turns text/event-stream lines into JobEvents (comments and pings skipped)."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}

    def feed(self, line: str) -> JobEvent | None:
        if line == "":
            fields, self.fields = self.fields, {}
            if "data" in fields:
                return JobEvent(fields.get("id", ""), fields.get("event", "message"),
                                json.loads(fields["data"]))
        elif not line.startswith(":") and ":" in line:
            name, _, value = line.partition(":")
            self.fields[name] = value.removeprefix(" ")
        return None


class _Watch:
    """The polling loop's bookkeeping: progress callbacks on change, the deadline."""

    def __init__(self, job_id: str, on_progress: ProgressCallback | None, timeout_s: float | None):
        self.job_id, self.on_progress, self.timeout_s = job_id, on_progress, timeout_s
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.last: tuple | None = None

    def done(self, job: Job) -> bool:
        seen = (job.state, json.dumps(job.progress, sort_keys=True), job.queue_text())
        if self.on_progress is not None and seen != self.last:
            self.on_progress(job)
        self.last = seen
        if job.done:
            return True
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TimeoutError(f"job {self.job_id} still {job.state} after {self.timeout_s} s")
        return False


class SyncJobMixin:
    _http: httpx.Client
    base_url: str

    # the client's JobEndpoints.get_job, earlier in the MRO, answers
    def get_job(self, job_id: str) -> Job:  # pragma: no cover
        raise NotImplementedError

    def wait_job(self, job_id: str, on_progress: ProgressCallback | None = None,
                 poll_s: float = 0.2, timeout_s: float | None = None) -> Job:
        """Poll until the job is done; ``on_progress(job)`` on every change seen."""
        watch = _Watch(job_id, on_progress, timeout_s)
        while not watch.done(job := self.get_job(job_id)):
            time.sleep(poll_s)
        return job

    def job_events(self, job_id: str, last_event_id: str | None = None) -> Iterator[JobEvent]:
        """The job's events from the start (or after ``last_event_id``) until ``end``."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id else None
        try:
            with self._http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers,
                                   timeout=httpx.Timeout(30.0, read=None)) as response:
                if response.is_error:
                    response.read()
                    raise error_from_response(response)
                parser = _SSEParser()
                for line in response.iter_lines():
                    event = parser.feed(line)
                    if event is not None:
                        yield event
                        if event.event == "end":
                            return
        except httpx.TransportError as exc:
            raise connection_failed(self.base_url, exc) from exc


class AsyncJobMixin:
    _http: httpx.AsyncClient
    base_url: str

    # the client's JobEndpoints.get_job, earlier in the MRO, answers
    async def get_job(self, job_id: str) -> Job:  # pragma: no cover
        raise NotImplementedError

    async def wait_job(self, job_id: str, on_progress: ProgressCallback | None = None,
                       poll_s: float = 0.2, timeout_s: float | None = None) -> Job:
        watch = _Watch(job_id, on_progress, timeout_s)
        while not watch.done(job := await self.get_job(job_id)):
            await asyncio.sleep(poll_s)
        return job

    async def job_events(self, job_id: str,
                         last_event_id: str | None = None) -> AsyncIterator[JobEvent]:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else None
        try:
            async with self._http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers,
                                         timeout=httpx.Timeout(30.0, read=None)) as response:
                if response.is_error:
                    await response.aread()
                    raise error_from_response(response)
                parser = _SSEParser()
                async for line in response.aiter_lines():
                    event = parser.feed(line)
                    if event is not None:
                        yield event
                        if event.event == "end":
                            return
        except httpx.TransportError as exc:
            raise connection_failed(self.base_url, exc) from exc
