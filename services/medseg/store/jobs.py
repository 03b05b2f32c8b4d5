"""Job records, their event streams and worker heartbeats in Redis.

Keys (see store/keys.py): the record (JSON string), an event stream and a heartbeat live under
the session's hash tag, so a job's final state can be written in the same MULTI as the revision
it produced; `medseg:jobref:{id}` maps a job id to its session for `/v1/jobs/{id}`. Every key
expires with the session's idle TTL. State changes are optimistic transactions (WATCH on the
record), so a cancel and a worker's start cannot both win.
"""

from __future__ import annotations

import builtins
import json
import socket
from collections.abc import Callable
from datetime import datetime

import redis

from medseg.errors import JobNotFound
from medseg.store.keys import PREFIX, RUNNING_JOBS, SessionKeys, job_ref_key, text
from medseg.store.records import JobError, JobRecord, JobState, utcnow

RUN_HISTORY = 50  # successful runs kept per kind, for queue ETAs (jobs/schedule.py)


def runs_key(kind: str) -> str:
    """list: the run seconds of the kind's last successful jobs, newest first."""
    return f"{PREFIX}:jobs:runs:{kind}"


Event = tuple[str, dict]  # (type, data): "state", "progress", "result", "end"
Mutation = Callable[[JobRecord], list[Event] | None]  # mutates the record; None = no write


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


class JobStore:
    def __init__(self, client: redis.Redis, ttl_s: int, heartbeat_s: float = 10.0,
                 max_events: int = 20_000):
        self.redis = client
        self.ttl_s = ttl_s
        self.heartbeat_s = heartbeat_s  # a running job whose heartbeat is older is lost
        self.max_events = max_events

    # -- records -----------------------------------------------------------------------------
    def create(self, record: JobRecord) -> JobRecord:
        keys = SessionKeys(record.session)
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(job_ref_key(record.id), record.session, ex=self.ttl_s)
        pipe.sadd(keys.jobs, record.id)
        pipe.expire(keys.jobs, self.ttl_s)
        self.write(pipe, record, [("state", state_event(record))])
        pipe.execute()
        return record

    def get(self, job_id: str, tenant: str | None = None, check_alive: bool = True) -> JobRecord:
        """The job's record; JobNotFound (404) when absent or another tenant's. A running job
        whose worker stopped beating is marked failed (worker_lost) on the way."""
        session_id = self.redis.get(job_ref_key(job_id))
        raw = self.redis.get(SessionKeys(text(session_id)).job(job_id)) if session_id else None
        record = JobRecord.model_validate_json(raw) if raw else None
        if record is None or (tenant is not None and record.tenant != tenant):
            raise JobNotFound(f"job {job_id!r} not found")
        if check_alive and record.state == "running" and not self.alive(record):
            record = self.fail_if_running(record.session, job_id, "worker_lost",
                                          "the worker running this job stopped (killed or "
                                          "crashed) before it finished; nothing was applied")
        return record

    def list(self, session_id: str) -> list[JobRecord]:
        keys = SessionKeys(session_id)
        ids = sorted(text(m) for m in self.redis.smembers(keys.jobs))
        raws = self.redis.mget([keys.job(i) for i in ids]) if ids else []
        records = [JobRecord.model_validate_json(r) for r in raws if r]
        return sorted(records, key=lambda r: r.created_at)

    def write(self, pipe, record: JobRecord, events: builtins.list[Event] | tuple[()] = ()) -> None:
        """Queue the record and its events on `pipe` (a MULTI of the caller, e.g. a commit)."""
        keys = SessionKeys(record.session)
        pipe.set(keys.job(record.id), record.model_dump_json(), ex=self.ttl_s)
        pipe.expire(job_ref_key(record.id), self.ttl_s)
        stream = keys.job_events(record.id)
        for kind, data in events:
            pipe.xadd(stream, {"event": kind, "data": json.dumps(data)}, maxlen=self.max_events,
                      approximate=True)
        if events:
            pipe.expire(stream, self.ttl_s)
        run = record.timings.get("run")
        if record.state == "succeeded" and run is not None and any(k == "end" for k, _ in events):
            pipe.lpush(runs_key(record.kind), f"{run:.3f}")  # once: with its "end" event
            pipe.ltrim(runs_key(record.kind), 0, RUN_HISTORY - 1)
        member = f"{record.session}/{record.id}"
        if record.state == "running":
            pipe.sadd(RUNNING_JOBS, member)
        else:
            pipe.srem(RUNNING_JOBS, member)

    def update(self, session_id: str, job_id: str, mutate: Mutation) -> JobRecord:
        """Read, mutate, write atomically (retried when another writer got in between)."""
        key = SessionKeys(session_id).job(job_id)
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        raise JobNotFound(f"job {job_id!r} not found (expired?)")
                    record = JobRecord.model_validate_json(raw)
                    events = mutate(record)
                    if events is None:
                        pipe.reset()
                        return record
                    pipe.multi()
                    self.write(pipe, record, events)
                    pipe.execute()
                    return record
                except redis.WatchError:
                    continue

    def append_event(self, record: JobRecord, kind: str, data: dict) -> None:
        pipe = self.redis.pipeline(transaction=False)
        stream = SessionKeys(record.session).job_events(record.id)
        pipe.xadd(stream, {"event": kind, "data": json.dumps(data)}, maxlen=self.max_events,
                  approximate=True)
        pipe.expire(stream, self.ttl_s)
        pipe.execute()

    def events(self, record: JobRecord, after: str = "0", block_ms: int | None = None,
               count: int = 500) -> builtins.list[tuple[str, str, dict]]:
        """Events after stream id `after` ("0" = from the start): [(id, type, data)]."""
        stream = SessionKeys(record.session).job_events(record.id)
        return _parse_events(self.redis.xread({stream: after}, count=count, block=block_ms))

    async def aevents(self, client, record: JobRecord, after: str = "0",
                      block_ms: int | None = None,
                      count: int = 500) -> builtins.list[tuple[str, str, dict]]:
        """`events` on a redis.asyncio client: a waiting subscriber holds no thread."""
        stream = SessionKeys(record.session).job_events(record.id)
        return _parse_events(await client.xread({stream: after}, count=count, block=block_ms))

    # -- liveness ----------------------------------------------------------------------------
    def beat(self, record: JobRecord) -> None:
        self.redis.set(SessionKeys(record.session).job_heartbeat(record.id), worker_id(),
                       px=int(self.heartbeat_s * 1000))

    def end_beat(self, record: JobRecord) -> None:
        self.redis.delete(SessionKeys(record.session).job_heartbeat(record.id))

    def alive(self, record: JobRecord) -> bool:
        return bool(self.redis.exists(SessionKeys(record.session).job_heartbeat(record.id)))

    def fail_if_running(self, session_id: str, job_id: str, code: str, message: str) -> JobRecord:
        def mutate(record: JobRecord):
            if record.state != "running":
                return None
            return finish(record, "failed", JobError(code=code, message=message))
        return self.update(session_id, job_id, mutate)

    def reap(self) -> builtins.list[JobRecord]:
        """Fail every running job whose heartbeat has expired (a worker died mid-job)."""
        failed = []
        for member in self.redis.smembers(RUNNING_JOBS):
            job_id = text(member).partition("/")[2]
            try:
                record = self.get(job_id, check_alive=True)
            except JobNotFound:
                self.redis.srem(RUNNING_JOBS, member)
                continue
            if record.state == "failed":
                failed.append(record)
        return failed


def _parse_events(answer) -> list[tuple[str, str, dict]]:
    return [(entry_id.decode(), fields[b"event"].decode(), json.loads(fields[b"data"]))
            for _, entries in answer or [] for entry_id, fields in entries]


def worker_id() -> str:
    import os

    return f"{socket.gethostname()}:{os.getpid()}"


def state_event(record: JobRecord) -> dict:
    return {"state": record.state, "progress": record.progress.model_dump(),
            "error": record.error.model_dump() if record.error else None}


def finish(record: JobRecord, state: JobState, error: JobError | None = None) -> list[Event]:
    """Mutate `record` into a terminal state; returns the events that announce it."""
    record.state = state
    record.error = error
    record.finished_at = utcnow()
    total = seconds_between(record.created_at, record.finished_at)
    if total is not None:
        record.timings["total"] = total
    run = seconds_between(record.started_at, record.finished_at)
    if run is not None:
        record.timings["run"] = run
    return [("state", state_event(record)), ("end", record.model_dump(mode="json"))]
