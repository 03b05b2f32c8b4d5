"""Queue wiring (RQ): submit a job, cancel it. The record goes to Redis first, then the id to RQ
(the queue of the job's priority, jobs/schedule.py)."""

from __future__ import annotations

import contextlib
import secrets
import threading

import redis
import structlog
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job

from medseg.jobs import schedule
from medseg.jobs.kinds import JobKind
from medseg.store import Store, quotas
from medseg.store.jobs import finish
from medseg.store.keys import LIVE_WORKERS
from medseg.store.records import JobError, JobPriority, JobRecord

RUN_JOB = "medseg.jobs.runner.run_job"

log = structlog.get_logger("medseg.jobs")


def submit(store: Store, kind: JobKind, tenant: str, session_id: str, segment: int | None,
           params: dict, base_revision: int | None,
           priority: JobPriority | None = None) -> JobRecord:
    """Record the job (state queued) and hand its id to the workers, in the queue of
    `priority` (default: the kind's). Params are validated here so a bad request is a 422 now,
    not a failed job later. The tenant's older jobs of this kind on this segment that are
    still queued are superseded (cancelled, code `superseded`) once this one is queued."""
    kind.parse_params(params)
    quotas.check_new_job(store.jobs, store.quotas, tenant)  # 429 when the tenant has enough
    connection = store.jobs.redis
    record = JobRecord(id=secrets.token_hex(12), kind=kind.name, tenant=tenant,
                       session=session_id, segment=segment, params=params,
                       base_revision=base_revision, priority=priority or kind.priority,
                       seq=int(connection.incr(schedule.JOB_SEQUENCE)))
    store.jobs.create(record)
    quotas.track_job(store.jobs, tenant, session_id, record.id)
    try:
        schedule.queue_for(record.priority, connection).enqueue(
            RUN_JOB, session_id, record.id, job_id=record.id, job_timeout=kind.timeout_s,
            result_ttl=600, failure_ttl=store.jobs.ttl_s, description=f"{kind.name} {record.id}")
    except Exception:  # the record must not stay "queued" with nothing in the queue
        store.jobs.update(session_id, record.id, lambda r: finish(
            r, "failed", JobError(code="enqueue_failed", message="could not queue the job")))
        raise
    supersede_older(store, record)
    return record


def supersede_older(store: Store, newer: JobRecord) -> list[JobRecord]:
    """Cancel the tenant's jobs of `newer`'s kind on its segment that were submitted before it
    and are still queued: only the newest asked-for result is worth computing. A running one
    is left alone. Returns the superseded records."""
    if newer.segment is None:
        return []
    superseded = []
    for older in store.jobs.list(newer.session):
        if (older.state != "queued" or older.kind != newer.kind or older.segment != newer.segment
                or older.tenant != newer.tenant or older.seq >= newer.seq):
            continue
        reason = JobError(code="superseded", message=f"superseded by job {newer.id}, a newer "
                          f"{newer.kind} of segment {newer.segment}, before it started")

        def mutate(current: JobRecord, reason: JobError = reason):
            return finish(current, "cancelled", reason) if current.state == "queued" else None

        current = store.jobs.update(older.session, older.id, mutate)
        if current.state == "cancelled" and current.error == reason:
            with contextlib.suppress(NoSuchJobError, InvalidJobOperation):
                Job.fetch(older.id, connection=store.jobs.redis).cancel()
            superseded.append(current)
    return superseded


def cancel(store: Store, record: JobRecord) -> JobRecord:
    """A queued job is cancelled at once (and taken off RQ's queue); a running one is asked
    to stop at its next step; a finished one is left as it is."""
    def mutate(current: JobRecord):
        if current.state == "queued":
            return finish(current, "cancelled")
        if current.state == "running" and not current.cancel_requested:
            current.cancel_requested = True
            return [("cancel_requested", {"state": current.state})]
        return None
    current = store.jobs.update(record.session, record.id, mutate)
    if current.state == "cancelled":
        with contextlib.suppress(NoSuchJobError, InvalidJobOperation):
            Job.fetch(record.id, connection=store.jobs.redis).cancel()
    return current


def _server_ms(connection: redis.Redis) -> int:
    """Redis's own clock: every process compares against one clock, whatever its host's says."""
    seconds, micros = connection.time()
    return int(seconds) * 1000 + int(micros) // 1000


def announce_worker(store: Store, name: str, window_s: float) -> None:
    """Count worker `name` as alive for the next `window_s` seconds (it beats well within)."""
    connection = store.jobs.redis
    connection.zadd(LIVE_WORKERS, {name: _server_ms(connection) + int(window_s * 1000)})


def retire_worker(store: Store, name: str) -> None:
    store.jobs.redis.zrem(LIVE_WORKERS, name)


def worker_count(store: Store) -> int:
    """Workers alive now: those whose last beat has not run out. A worker killed with SIGKILL
    (or its host gone) drops out within its heartbeat window; RQ's own registry would keep it
    for minutes (its worker key lives `worker_ttl` + 60 s, and the set entry until a cleanup)."""
    connection = store.jobs.redis
    now = _server_ms(connection)
    with connection.pipeline() as pipe:
        pipe.zremrangebyscore(LIVE_WORKERS, "-inf", now)
        pipe.zcard(LIVE_WORKERS)
        _, count = pipe.execute()
    return int(count)


class WorkerPresence:
    """The worker's heartbeat for readiness: a daemon thread announces the worker every quarter
    of `window_s` (the job heartbeat's window). The thread needs the GIL only for moments; a job
    run in-process (`--no-fork`) that holds it past the window makes the worker look absent
    until its next beat, as it would make its job look lost."""

    def __init__(self, store: Store, name: str, window_s: float):
        self.store, self.name, self.window_s = store, name, window_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="medseg-presence", daemon=True)

    def __enter__(self) -> WorkerPresence:
        announce_worker(self.store, self.name, self.window_s)  # counted before RQ registers it
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
        with contextlib.suppress(redis.RedisError):
            retire_worker(self.store, self.name)

    def _run(self) -> None:
        interval = max(self.window_s / 4, 0.05)
        while not self._stop.wait(interval):
            try:
                announce_worker(self.store, self.name, self.window_s)
            except redis.RedisError as exc:  # a blip: the next beat may still come in time
                log.warning("worker_presence_failed", worker=self.name, error=str(exc))
