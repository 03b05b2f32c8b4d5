"""Interactive first: priority queues, superseding, queue position and ETA.

Jobs go into one of three RQ queues, and every worker takes from them in this order (RQ's
worker pops the first non-empty queue of its list), so a queued interactive job always starts
before a queued fine-tuning, and that before a batch job:

- `interactive` (`medseg:interactive`): what a user at the viewer waits for, e.g. a propagation
  (asked for on its own or after a corrected slice);
- `normal` (`medseg`, the queue's old name): fine-tuning, and any kind that does not say;
- `batch` (`medseg:batch`): work nobody watches, e.g. a push to the PACS.

Clicks, scribbles, boxes, undo and redo never go through these queues: the API computes them
in its own compute processes (api/compute.py), so they never wait behind a job. A job holds
the session lock only for its one commit.

A user's newer job of the same kind on the same segment supersedes their older one still
queued: the older ends `cancelled` with error code `superseded` (naming the newer one) and is
taken off RQ's queue. A running job is left to finish (its commit then answers the usual
revision checks).

Queue position and ETA: a queued job's position counts the jobs that will start before it (all
jobs of the higher queues, then those ahead of it in its own). Its ETA is the time the jobs
ahead and the running ones still need, shared by the live workers, plus its own run time, each
taken as the median of the last runs of its kind (`medseg:jobs:runs:<kind>`, the last
RUN_HISTORY successful runs, store/jobs.py). No history for a kind involved: no ETA (the
position still holds)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from rq import Queue

from medseg.jobs.settings import QUEUE_NAME
from medseg.store.jobs import runs_key
from medseg.store.keys import PREFIX, RUNNING_JOBS, SessionKeys, text
from medseg.store.records import JobPriority, JobRecord

Priority = JobPriority
PRIORITIES: tuple[Priority, ...] = ("interactive", "normal", "batch")  # the order workers take
QUEUE_NAMES: dict[Priority, str] = {"interactive": "medseg:interactive", "normal": QUEUE_NAME,
                                    "batch": "medseg:batch"}
JOB_SEQUENCE = f"{PREFIX}:jobs:seq"  # counter: the order jobs were submitted in
MAX_AHEAD = 2000  # beyond this many jobs ahead, the ETA reads that many (a lower bound)


def queues(connection: redis.Redis) -> list[Queue]:
    """The RQ queues in the order workers take from them."""
    return [Queue(QUEUE_NAMES[p], connection=connection) for p in PRIORITIES]


def queue_for(priority: Priority, connection: redis.Redis) -> Queue:
    return Queue(QUEUE_NAMES[priority], connection=connection)


def queue_depths(connection: redis.Redis) -> dict[Priority, int]:
    """Jobs waiting per priority (what the worker autoscaler follows)."""
    with connection.pipeline(transaction=False) as pipe:
        for q in queues(connection):
            pipe.llen(q.key)
        return dict(zip(PRIORITIES, (int(n) for n in pipe.execute())))


@dataclass(frozen=True)
class QueueInfo:
    """Where a queued or running job stands."""

    priority: Priority
    position: int | None  # 1 = the next job a worker takes; None when running
    jobs_ahead: int  # queued jobs that start first
    running: int  # jobs running now (they hold workers)
    workers: int  # live job workers
    starts_in_s: float | None  # seconds until a worker is expected to take it (0 when running)
    eta_s: float | None  # seconds until it is expected to finish
    basis: str  # what the estimate rests on, in words


class Estimator:
    """Median run times per kind, read once per kind (one GET /v1/jobs/{id} reads a few)."""

    def __init__(self, connection: redis.Redis):
        self.connection = connection
        self._medians: dict[str, float | None] = {}
        self._counts: dict[str, int] = {}

    def median(self, kind: str) -> float | None:
        if kind not in self._medians:
            runs = [float(text(v)) for v in self.connection.lrange(runs_key(kind), 0, -1)]
            self._counts[kind] = len(runs)
            self._medians[kind] = statistics.median(runs) if runs else None
        return self._medians[kind]

    def basis(self) -> str:
        known = [f"{kind} {m:.1f} s (last {self._counts[kind]})"
                 for kind, m in sorted(self._medians.items()) if m is not None]
        unknown = sorted(kind for kind, m in self._medians.items() if m is None)
        text_ = "median run time per kind: " + (", ".join(known) or "none yet")
        if unknown:
            text_ += f"; no finished run yet of {', '.join(unknown)}"
        return text_


def _seconds_since(iso: str | None) -> float:
    if not iso:
        return 0.0
    return max((datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds(), 0.0)


def _kinds(connection: redis.Redis, job_ids: list[str]) -> list[str]:
    """The kinds of queued jobs, from RQ's job hashes (their description is "<kind> <id>")."""
    with connection.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(f"rq:job:{job_id}", "description")
        return [text(d).split(" ", 1)[0] if d else "" for d in pipe.execute()]


def _running(connection: redis.Redis) -> list[JobRecord]:
    members = [text(m).partition("/") for m in connection.smembers(RUNNING_JOBS)]
    if not members:
        return []
    raws = connection.mget([SessionKeys(sid).job(jid) for sid, _, jid in members])
    records = [JobRecord.model_validate_json(r) for r in raws if r]
    return [r for r in records if r.state == "running"]


def queue_info(connection: redis.Redis, record: JobRecord, workers: int) -> QueueInfo | None:
    """Position and ETA of a queued or running job; None once it has ended."""
    if record.state not in ("queued", "running"):
        return None
    priority: Priority = record.priority
    estimates = Estimator(connection)
    own = estimates.median(record.kind)
    running = _running(connection)
    if record.state == "running":
        eta = None if own is None else max(own - _seconds_since(record.started_at), 0.0)
        return QueueInfo(priority, None, 0, len(running), workers, 0.0, eta, estimates.basis())
    ahead: list[str] = []
    position: int | None = None
    for p in PRIORITIES:
        ids = [text(j) for j in connection.lrange(queue_for(p, connection).key, 0, MAX_AHEAD)]
        if p == priority:
            index = ids.index(record.id) if record.id in ids else None
            if index is not None:
                ahead += ids[:index]
                position = len(ahead) + 1
            break
        ahead += ids
    if position is None:  # a worker is taking it off the queue right now
        return QueueInfo(priority, 1, 0, len(running), workers, None, None,
                         "being started by a worker")
    ahead = ahead[:MAX_AHEAD]
    work: float | None = 0.0
    for kind in _kinds(connection, ahead):
        median = estimates.median(kind) if kind else None
        work = None if work is None or median is None else work + median
    for job in running:
        median = estimates.median(job.kind)
        work = None if work is None or median is None else (
            work + max(median - _seconds_since(job.started_at), 0.0))
    if workers == 0:
        return QueueInfo(priority, position, len(ahead), len(running), 0, None, None,
                         "no live job worker: it starts when one does")
    # the jobs ahead and the running ones share the workers; a free worker takes it at once
    free = workers > len(running) and not ahead
    starts = 0.0 if free else (None if work is None else work / workers)
    eta = None if starts is None or own is None else starts + own
    return QueueInfo(priority, position, len(ahead), len(running), workers, starts, eta,
                     estimates.basis())
