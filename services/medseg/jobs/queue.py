"""Queue wiring (RQ): submit a job, cancel it. The record goes to Redis first, then the id to RQ."""

from __future__ import annotations

import contextlib
import secrets

from rq import Queue, Worker
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job

from medseg.jobs.kinds import JobKind
from medseg.jobs.settings import QUEUE_NAME
from medseg.store import Store, quotas
from medseg.store.jobs import finish
from medseg.store.records import JobError, JobRecord

RUN_JOB = "medseg.jobs.runner.run_job"


def submit(store: Store, kind: JobKind, tenant: str, session_id: str, segment: int | None,
           params: dict, base_revision: int | None) -> JobRecord:
    """Record the job (state queued) and hand its id to the workers. Params are validated here
    so a bad request is a 422 now, not a failed job later."""
    kind.parse_params(params)
    quotas.check_new_job(store.jobs, store.quotas, tenant)  # 429 when the tenant has enough
    record = JobRecord(id=secrets.token_hex(12), kind=kind.name, tenant=tenant,
                       session=session_id, segment=segment, params=params,
                       base_revision=base_revision)
    store.jobs.create(record)
    quotas.track_job(store.jobs, tenant, session_id, record.id)
    try:
        Queue(QUEUE_NAME, connection=store.jobs.redis).enqueue(
            RUN_JOB, session_id, record.id, job_id=record.id, job_timeout=kind.timeout_s,
            result_ttl=600, failure_ttl=store.jobs.ttl_s, description=f"{kind.name} {record.id}")
    except Exception:  # the record must not stay "queued" with nothing in the queue
        store.jobs.update(session_id, record.id, lambda r: finish(
            r, "failed", JobError(code="enqueue_failed", message="could not queue the job")))
        raise
    return record


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


def worker_count(store: Store) -> int:
    """Workers registered on the job queue (RQ keeps each one's key alive while it runs)."""
    connection = store.jobs.redis
    return Worker.count(connection=connection, queue=Queue(QUEUE_NAME, connection=connection))
