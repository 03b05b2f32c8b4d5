"""The reads around a click in fewer round trips (issue 13 item 3, sixth step): a segment's
record and its head revision's in one script, the segment's record with the session lock's
own script, and one lock-keeper thread per store however many locks are held."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from medseg.engine.prompts import Box, Marks
from medseg.engine.volume import Volume
from medseg.errors import RevisionNotFound, SegmentNotFound, SessionBusy
from medseg.store import Store, chunks, sessions
from medseg.store.keys import SessionKeys
from tests.redis_commands import record_commands


@pytest.fixture
def meta(store):
    array = np.zeros((4, 30, 30), dtype=np.int16)
    return store.sessions.create(Volume(array, (2.0, 1.0, 1.0), np.eye(4), "CT", "nifti"), "bob")


def _commit(store, meta, segment):
    _, head = store.segments.head(meta, segment.id)
    box = Box((1, 2, 2), (2, 9, 9))
    return store.segments.commit(meta, segment, head, box,
                                 np.ones(chunks.box_shape(box), dtype=bool), {"type": "test"},
                                 {}, Marks())


def test_head_is_one_round_trip_and_equals_the_two_reads(store, meta, monkeypatch):
    segment = store.segments.create(meta, "a", None, None)
    committed = _commit(store, meta, segment)
    store.sessions.redis.script_flush()  # loaded again on first use
    sent = record_commands(monkeypatch)
    found_segment, found_head = store.segments.head(meta, segment.id)
    monkeypatch.undo()
    assert sent == ["EVALSHA", "SCRIPT LOAD", "EVALSHA"], sent  # NOSCRIPT, load, call
    sent = record_commands(monkeypatch)
    assert store.segments.head(meta, segment.id) == (found_segment, found_head)
    monkeypatch.undo()
    assert sent == ["EVALSHA"], sent
    assert found_segment == store.segments.get(meta, segment.id)
    assert found_head == committed == store.segments.revision(meta, segment.id,
                                                              found_segment.head)


def test_head_refuses_a_missing_segment_or_a_head_of_another_segment(store, meta):
    with pytest.raises(SegmentNotFound):
        store.segments.head(meta, 999)
    first = store.segments.create(meta, "a", None, None)
    second = store.segments.create(meta, "b", None, None)
    keys = SessionKeys(meta.id)
    store.sessions.redis.hset(keys.segments, str(first.id),
                              first.model_copy(update={"head": second.head}).model_dump_json())
    with pytest.raises(RevisionNotFound):
        store.segments.head(meta, first.id)


def test_the_lock_script_reads_the_segment_as_it_is_once_locked(store, meta, monkeypatch):
    segment = store.segments.create(meta, "a", None, None)
    store.sessions.release(store.sessions.acquire(meta.id))  # the script loaded (any flush)
    sent = record_commands(monkeypatch)
    with store.sessions.locked_reading(meta.id, segment.id) as (fence, raw):
        monkeypatch.undo()
        assert sent == ["EVALSHA"], sent  # the lock and the read, one round trip
        assert store.segments.parse(meta, segment.id, raw) == segment
        assert store.sessions.holds(fence)
        store.sessions.lock_wait_s = 0.05
        with pytest.raises(SessionBusy):
            store.sessions.acquire(meta.id)  # exclusive as `locked`
    assert not store.sessions.holds(fence)
    with store.sessions.locked_reading(meta.id, 999) as (_, raw):
        assert raw is None
    with pytest.raises(SegmentNotFound):
        store.segments.parse(meta, 999, raw)


def _keepers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "session-lock"}


def test_one_keeper_thread_extends_every_lock_held(store, redis_url):
    own = Store.connect(redis_url, 3600)  # a fresh store: its keeper starts on first use
    own.sessions.lock_ttl_s = 0.6
    metas = [own.sessions.create(Volume(np.zeros((2, 8, 8), np.int16), (1.0, 1.0, 1.0),
                                        np.eye(4), "CT", "nifti"), "bob") for _ in range(3)]
    before = _keepers()  # other stores' keepers may end meanwhile: only new ones count
    with own.sessions.locked(metas[0].id) as a, own.sessions.locked(metas[1].id) as b:
        with own.sessions.locked(metas[2].id) as c:
            assert len(_keepers() - before) == 1  # one for the store, not one per lock
            until = time.monotonic() + 5 * own.sessions.lock_ttl_s  # five TTLs held
            while time.monotonic() < until:
                assert all(own.sessions.holds(f) for f in (a, b, c))
                time.sleep(0.05)
        assert not own.sessions.holds(c)
        time.sleep(2 * own.sessions.lock_ttl_s)
        assert own.sessions.holds(a) and own.sessions.holds(b)  # still kept after c ended
    assert len(_keepers() - before) == 1


def _hold_in_a_fork(store, session_id: str, queue) -> None:
    """In a forked child: hold the lock for five TTLs, report whether it stayed held."""
    held = True
    with store.sessions.locked(session_id) as fence:
        until = time.monotonic() + 5 * store.sessions.lock_ttl_s
        while time.monotonic() < until:
            held = held and store.sessions.holds(fence)
            time.sleep(0.05)
    queue.put(held)


def test_a_forked_process_keeps_its_locks(store, meta):
    """RQ's work horse is a fork of a worker whose keeper thread did not come along: the
    child starts its own."""
    import multiprocessing

    store.sessions.lock_ttl_s = 0.6
    with store.sessions.locked(meta.id):
        pass  # the parent's keeper thread runs (and its Condition exists) before the fork
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_hold_in_a_fork, args=(store, meta.id, queue))
    child.start()
    assert queue.get(timeout=30) is True
    child.join(10)


def test_an_idle_keeper_thread_ends_and_the_next_lock_starts_another(redis_url, monkeypatch):
    monkeypatch.setattr(sessions, "_KEEPER_IDLE_S", 0.2)
    own = Store.connect(redis_url, 3600)
    own.sessions.lock_ttl_s = 0.6
    meta = own.sessions.create(Volume(np.zeros((2, 8, 8), np.int16), (1.0, 1.0, 1.0),
                                      np.eye(4), "CT", "nifti"), "bob")
    before = _keepers()
    with own.sessions.locked(meta.id):
        (first,) = _keepers() - before
    first.join(10)
    assert not first.is_alive()  # ended once idle
    with own.sessions.locked(meta.id) as fence:
        time.sleep(4 * own.sessions.lock_ttl_s)
        assert own.sessions.holds(fence)  # a new keeper extended it
