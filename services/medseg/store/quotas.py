"""Per-tenant quotas: live sessions, stored bytes, unfinished jobs.

What is counted, and how it stays true without a background sweeper:

- **Sessions**: the tenant's session set (`medseg:tenant:{t}:sessions`), pruned of members
  whose `meta` key is gone (a session that expired by its idle TTL does not count).
- **Bytes**: each session counts the bytes it writes (the compressed image chunks at upload,
  each new mask blob at a change) in the `bytes` field of its counters hash, which expires and
  is deleted with the session; a tenant's bytes are the sum over its live sessions. Approximate:
  revisions' JSON and cached probabilities are not counted, and blobs shared by revisions are
  counted once per change that wrote them.
- **Jobs**: the tenant's job set (`medseg:tenant:{t}:jobs`, "<session>/<job>" members), pruned of
  jobs that have finished or whose record is gone; queued and running jobs count.

The checks are cheap (one pipelined round trip per quota) and come before any expensive work.
Two requests racing for the last unit may both pass: the quotas bound use, they are not exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from medseg.errors import JobNotFound, TenantStorageFull, TooManyJobs, TooManySessions
from medseg.store.jobs import JobStore
from medseg.store.keys import PREFIX, SessionKeys, tenant_sessions_key, text

BYTES_FIELD = "bytes"  # field of a session's counters hash: the bytes it has written
JOB_RETRY_S = 10  # a queued job typically starts (and so frees its place) within seconds


def tenant_jobs_key(tenant: str) -> str:
    return f"{PREFIX}:tenant:{tenant}:jobs"


@dataclass(frozen=True)
class Quotas:
    """Per-tenant limits; None is no limit (the default of a store built without settings)."""

    max_sessions: int | None = None
    max_bytes: int | None = None
    max_jobs: int | None = None


@dataclass(frozen=True)
class SessionUsage:
    sessions: int
    bytes: int
    next_expiry_s: int  # seconds until the first of the live sessions expires (0: none)


def session_usage(client: redis.Redis, tenant: str) -> SessionUsage:
    """The tenant's live sessions and the bytes they hold; forgets expired sessions."""
    index = tenant_sessions_key(tenant)
    ids = sorted(text(m) for m in client.smembers(index))
    if not ids:
        return SessionUsage(0, 0, 0)
    pipe = client.pipeline(transaction=False)
    for session_id in ids:
        keys = SessionKeys(session_id)
        pipe.ttl(keys.meta)
        pipe.hget(keys.counters, BYTES_FIELD)
    answers = pipe.execute()
    live, total, ttls, gone = 0, 0, [], []
    for session_id, ttl, used in zip(ids, answers[0::2], answers[1::2]):
        if ttl == -2:  # no meta: expired by its TTL (or deleted, or still being created)
            gone.append(session_id)
            continue
        live += 1
        total += int(used or 0)
        if ttl > 0:
            ttls.append(int(ttl))
    if gone:
        # a session being created is not yet in the set (meta and the set are written in one
        # MULTI), so what is pruned here really is gone
        client.srem(index, *gone)
    return SessionUsage(live, total, min(ttls, default=0))


def check_new_session(client: redis.Redis, quotas: Quotas, tenant: str,
                      upload_bytes: int) -> None:
    """TooManySessions (429) when the tenant has `max_sessions` live sessions; TenantStorageFull
    (507) when its bytes plus this upload's (the compressed upload is about what its chunks
    will take) would pass `max_bytes`. Both say when a session expires next."""
    if quotas.max_sessions is None and quotas.max_bytes is None:
        return
    usage = session_usage(client, tenant)
    retry = usage.next_expiry_s or 60
    if quotas.max_sessions is not None and usage.sessions >= quotas.max_sessions:
        raise TooManySessions(
            f"this tenant has {usage.sessions} live sessions, the most it may have "
            f"({quotas.max_sessions}); delete a session you no longer need, or retry when one "
            f"expires (the next in {retry} s)", retry)
    if quotas.max_bytes is not None and usage.bytes + upload_bytes > quotas.max_bytes:
        raise TenantStorageFull(
            f"this tenant's sessions hold {_mib(usage.bytes)} and the upload is "
            f"{_mib(upload_bytes)}: more than its storage quota of {_mib(quotas.max_bytes)}; "
            f"delete sessions you no longer need, or retry when one expires (the next in "
            f"{retry} s)", retry)


def count_bytes(pipe, keys: SessionKeys, nbytes: int) -> None:
    """Queue `nbytes` more stored bytes for the session on `pipe`."""
    if nbytes:
        pipe.hincrby(keys.counters, BYTES_FIELD, int(nbytes))


def unfinished_jobs(jobs: JobStore, tenant: str) -> int:
    """The tenant's queued and running jobs; forgets finished and vanished ones (reading a
    running job whose worker died fails it as worker_lost, so it stops counting)."""
    index = tenant_jobs_key(tenant)
    members = [text(m) for m in jobs.redis.smembers(index)]
    count, done = 0, []
    for member in members:
        job_id = member.rpartition("/")[2]
        try:
            record = jobs.get(job_id, tenant)
        except JobNotFound:
            done.append(member)
            continue
        if record.done:
            done.append(member)
        else:
            count += 1
    if done:
        jobs.redis.srem(index, *done)
    return count


def check_new_job(jobs: JobStore, quotas: Quotas, tenant: str) -> None:
    """TooManyJobs (429) when the tenant has `max_jobs` queued or running jobs."""
    if quotas.max_jobs is None:
        return
    count = unfinished_jobs(jobs, tenant)
    if count >= quotas.max_jobs:
        raise TooManyJobs(
            f"this tenant has {count} jobs queued or running, the most it may have "
            f"({quotas.max_jobs}); wait for one to finish or cancel one, then retry",
            JOB_RETRY_S)


def track_job(jobs: JobStore, tenant: str, session_id: str, job_id: str) -> None:
    index = tenant_jobs_key(tenant)
    pipe = jobs.redis.pipeline(transaction=False)
    pipe.sadd(index, f"{session_id}/{job_id}")
    pipe.expire(index, jobs.ttl_s)
    pipe.execute()


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"
