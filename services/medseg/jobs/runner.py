"""The function RQ runs in the worker's job process: one job from start to its final state.

RQ calls `run_job` by its dotted name, so what it needs (the store, the job kinds) is set
once per worker process by its entry point (`medseg.worker`) through `configure`, before the
worker forks its job processes."""

from __future__ import annotations

import signal
import threading
import traceback
from dataclasses import dataclass

import structlog

from medseg.errors import MedsegError
from medseg.jobs.context import Cancelled, JobContext
from medseg.jobs.kinds import JobKind
from medseg.registry import Registry
from medseg.store import Store
from medseg.store.embedded import die_with_parent
from medseg.store.jobs import finish, seconds_between, state_event, worker_id
from medseg.store.records import JobError, JobRecord, JobState, utcnow

log = structlog.get_logger("medseg.jobs")



@dataclass
class WorkerProcess:
    store: Store
    kinds: Registry[JobKind]
    forked: bool = True  # RQ forks a process per job (the default)


_PROCESS: WorkerProcess | None = None


def configure(process: WorkerProcess) -> None:
    global _PROCESS
    _PROCESS = process


def worker_process() -> WorkerProcess:
    if _PROCESS is None:
        raise RuntimeError("run_job needs medseg.jobs.runner.configure(...) first (medseg.worker)")
    return _PROCESS


def run_job(session_id: str, job_id: str) -> None:
    """Entry point enqueued in RQ. Everything that clients see goes to our JobRecord."""
    process = worker_process()
    # RQ forks a process per job: if the worker itself dies, this process must die too, or it
    # would apply a result nobody is watching for (the job is then failed as worker_lost).
    if process.forked:
        die_with_parent(signal.SIGKILL)
    store = process.store
    me = worker_id()

    def start(record: JobRecord):
        if record.state != "queued":  # cancelled while queued: nothing to do
            return None
        record.state, record.started_at, record.worker = "running", utcnow(), me
        record.timings["queue"] = seconds_between(record.created_at, record.started_at) or 0.0
        return [("state", state_event(record))]

    store.jobs.beat(_placeholder(session_id, job_id))  # alive before "running" is visible
    record = store.jobs.update(session_id, job_id, start)
    if record.state != "running" or record.worker != me:
        return
    stop = threading.Event()
    beater = threading.Thread(target=_heartbeat, args=(store, record, stop), daemon=True)
    beater.start()
    try:
        _execute(store, process.kinds, record)
    finally:
        stop.set()
        beater.join(timeout=1)
        store.jobs.end_beat(record)


def _execute(store: Store, kinds: Registry[JobKind], record: JobRecord) -> None:
    ctx = JobContext(store, record)
    try:
        kind = kinds.get(record.kind)
        result = kind.run(ctx, kind.parse_params(record.params))
        if ctx.committed is None:
            _finish(store, record, "succeeded", result=result or {})
    except Cancelled:
        _finish(store, record, "cancelled")
    except MedsegError as exc:
        _finish(store, record, "failed", JobError(code=exc.code, message=exc.message))
    except Exception as exc:  # noqa: BLE001 - a bug or a broken input: the job fails, the worker lives on
        log.error("job_crashed", job=record.id, kind=record.kind, error=type(exc).__name__,
                  traceback=traceback.format_exc())
        _finish(store, record, "failed", JobError(code="internal_error",
                                                  message=f"{type(exc).__name__}: {exc}"))


def _finish(store: Store, record: JobRecord, state: JobState, error: JobError | None = None,
            result: dict | None = None) -> None:
    def mutate(current: JobRecord):
        if current.state != "running":
            return None
        if result is not None:
            current.result = result
        return finish(current, state, error)
    store.jobs.update(record.session, record.id, mutate)


def _heartbeat(store: Store, record: JobRecord, stop: threading.Event) -> None:
    interval = max(store.jobs.heartbeat_s / 4, 0.05)
    while True:
        try:
            store.jobs.beat(record)
        except Exception as exc:  # noqa: BLE001 - Redis blip: the next beat may succeed in time
            log.warning("heartbeat_failed", job=record.id, error=str(exc))
        if stop.wait(interval):
            return


def _placeholder(session_id: str, job_id: str) -> JobRecord:
    return JobRecord(id=job_id, kind="", tenant="", session=session_id)

