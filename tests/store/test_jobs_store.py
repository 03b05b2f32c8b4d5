"""Job records in Redis without a worker: transitions, tenant scoping, events, liveness."""

from __future__ import annotations

import pytest

from medseg.errors import JobNotFound
from medseg.jobs import queue
from medseg.store.jobs import finish
from medseg.store.keys import SessionKeys
from medseg.store.records import JobRecord


def _record(store, **kw) -> JobRecord:
    record = JobRecord(id=kw.pop("id", "a" * 24), kind="noop", tenant="alice",
                       session="f" * 32, **kw)
    return store.jobs.create(record)


def test_create_get_tenant_scope_and_events(store):
    record = _record(store, id="1" * 24)
    assert store.jobs.get(record.id, "alice").state == "queued"
    with pytest.raises(JobNotFound):
        store.jobs.get(record.id, "bob")
    with pytest.raises(JobNotFound):
        store.jobs.get("2" * 24)
    events = store.jobs.events(record)
    assert [e[1] for e in events] == ["state"] and events[0][2]["state"] == "queued"
    store.jobs.append_event(record, "slice", {"index": 3})
    assert [e[1] for e in store.jobs.events(record, after=events[0][0])] == ["slice"]
    assert store.jobs.list(record.session)[0].id == record.id


def test_cancel_transitions(store):
    queued = _record(store, id="3" * 24)
    assert queue.cancel(store, queued).state == "cancelled"
    assert queue.cancel(store, queued).state == "cancelled"  # idempotent
    running = _record(store, id="4" * 24, state="running")
    store.jobs.beat(running)
    asked = queue.cancel(store, running)
    assert asked.state == "running" and asked.cancel_requested
    assert [e[1] for e in store.jobs.events(running)][-1] == "cancel_requested"


def test_lost_running_job_fails_on_read_and_by_reap(store):
    lost = _record(store, id="5" * 24, state="running")  # no heartbeat: its worker is gone
    failed = store.jobs.get(lost.id)
    assert failed.state == "failed" and failed.error.code == "worker_lost"
    assert store.jobs.events(lost)[-1][1] == "end"
    other = _record(store, id="6" * 24)

    def start(record):
        record.state = "running"
        return []
    store.jobs.update(other.session, other.id, start)
    assert other.id in [r.id for r in store.jobs.reap()]  # (this Redis is shared by the suite)
    assert store.jobs.get(other.id, check_alive=False).state == "failed"
    assert other.id not in [r.id for r in store.jobs.reap()]


def test_update_is_a_transaction_and_finish_records_timings(store):
    record = _record(store, id="7" * 24, started_at="2026-01-01T00:00:00.000+00:00")
    done = store.jobs.update(record.session, record.id, lambda r: finish(r, "succeeded"))
    assert done.state == "succeeded" and done.timings["run"] > 0
    assert store.jobs.update(record.session, record.id, lambda r: None).state == "succeeded"
    store.jobs.redis.delete(SessionKeys(record.session).job(record.id))
    with pytest.raises(JobNotFound):
        store.jobs.update(record.session, record.id, lambda r: [])
