"""Compare-and-set commits and the fenced session lock, on a real Redis: a change whose lock
expired under it writes nothing, the holder's heartbeat keeps a long change's lock, and a dead
holder's lock frees after its short TTL."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import numpy as np
import pytest

from medseg import builtin
from medseg.engine.prompts import Box, Marks, Plane, Prompt
from medseg.engine.volume import Volume
from medseg.errors import RevisionConflict, SessionBusy
from medseg.store.keys import SessionKeys
from medseg.usecases.interactions import interact, undo
from tests.jobs.demo_kinds import release, started_key
from tests.polling import poll

SHAPE = (6, 40, 40)


@pytest.fixture
def plugins():
    return builtin.build("tests.jobs.demo_kinds")  # the `slow-click` method


@pytest.fixture
def meta(store, redis_url, monkeypatch):
    monkeypatch.setenv("MEDSEG_REDIS_URL", redis_url)  # where `slow-click` marks and holds
    array = np.random.default_rng(2).normal(0, 10, SHAPE).astype(np.float32)
    array[2:5, 10:30, 10:30] += 200
    return store.sessions.create(Volume(array, (2.0, 1.0, 1.0), np.eye(4), "CT", "nifti"),
                                 "alice")


def _click(zyx) -> Prompt:
    return Prompt("click", Marks(fg=np.array([zyx])), Plane(0, zyx[0]))


def _in_thread(fn) -> Future:
    future: Future = Future()

    def target():
        try:
            future.set_result(fn())
        except BaseException as exc:  # handed to the test
            future.set_exception(exc)

    threading.Thread(target=target, daemon=True).start()
    return future


def _held_click(store, plugins, meta, segment_id, name) -> Future:
    """A `slow-click` that holds the session lock until `release(..., f"click:{name}")`."""
    future = _in_thread(lambda: interact(store, plugins.methods, meta, segment_id,
                                         _click((3, 20, 20)), "slow-click",
                                         {"hold_name": name}, None))
    poll(lambda: store.sessions.redis.exists(started_key(name)), bool, 30, f"start of {name}",
         hopeless=lambda _: future.done())
    return future


def _lock_expires(store, meta) -> None:
    """What the lock's TTL does to a holder whose heartbeat stopped (the fault injected)."""
    store.sessions.redis.delete(SessionKeys(meta.id).lock)


def test_a_change_whose_lock_expired_loses_to_the_click_made_meanwhile(store, plugins, meta):
    segment = store.segments.create(meta, "blob", None, None)
    slow = _held_click(store, plugins, meta, segment.id, "expired-1")
    _lock_expires(store, meta)
    # another request takes the lock and its click commits (and is acknowledged)
    fast = interact(store, plugins.methods, meta, segment.id, _click((3, 15, 15)), None, {}, None)
    assert fast.current.parent == segment.head
    release(store.sessions.redis, "click:expired-1")
    with pytest.raises(RevisionConflict, match="nothing was applied"):
        slow.result(timeout=60)
    history = store.segments.history(meta, segment.id)
    assert [r.revision for r in history] == [segment.head, fast.current.revision]  # no fork
    assert store.segments.get(meta, segment.id).head == fast.current.revision


def test_a_change_whose_lock_was_taken_over_writes_nothing(store, plugins, meta):
    """The head has not moved, but another holder has the lock: the fence refuses the write."""
    segment = store.segments.create(meta, "blob", None, None)
    slow = _held_click(store, plugins, meta, segment.id, "expired-2")
    _lock_expires(store, meta)
    with store.sessions.locked(meta.id):
        release(store.sessions.redis, "click:expired-2")
        with pytest.raises(RevisionConflict, match="lock .* expired or was taken over"):
            slow.result(timeout=60)
    assert [r.revision for r in store.segments.history(meta, segment.id)] == [segment.head]
    assert store.segments.get(meta, segment.id).head == segment.head


def test_undo_with_a_stale_fence_moves_nothing(store, plugins, meta):
    segment = store.segments.create(meta, "blob", None, None)
    change = interact(store, plugins.methods, meta, segment.id, _click((3, 20, 20)), None, {},
                      None)
    stale = store.sessions.acquire(meta.id)
    _lock_expires(store, meta)
    with store.sessions.locked(meta.id):
        with pytest.raises(RevisionConflict):
            store.segments.undo(meta, segment.id, stale)
    assert store.segments.get(meta, segment.id).head == change.current.revision
    assert undo(store, meta, segment.id, None).current.revision == segment.head  # fresh lock


def test_the_heartbeat_keeps_a_long_change_locked(store, meta):
    store.sessions.lock_ttl_s = 0.3
    store.sessions.lock_wait_s = 0.1
    segment = store.segments.create(meta, "blob", None, None)
    _, head = store.segments.head(meta, segment.id)
    with store.sessions.locked(meta.id) as fence:
        until = time.monotonic() + 5 * store.sessions.lock_ttl_s  # five TTLs of "compute"
        while time.monotonic() < until:
            assert store.sessions.holds(fence)
            time.sleep(0.05)
        with pytest.raises(SessionBusy):
            store.sessions.acquire(meta.id)
        mask = np.ones((1, 4, 4), dtype=bool)
        record = store.segments.commit(meta, segment, head, Box((1, 0, 0), (1, 3, 3)),
                                       mask, {"type": "test"}, {}, Marks(), fence=fence)
    assert store.segments.get(meta, segment.id).head == record.revision
    assert not store.sessions.redis.exists(SessionKeys(meta.id).lock)  # released at the end


def test_a_dead_holders_lock_frees_after_its_ttl(store, meta):
    store.sessions.lock_ttl_s = 0.5
    fence = store.sessions.acquire(meta.id)  # no heartbeat: as if its process was killed
    poll(lambda: store.sessions.holds(fence), lambda held: not held, 10, "lock expiry")
    newer = store.sessions.acquire(meta.id)
    assert newer.token > fence.token  # fencing tokens only grow
    store.sessions.release(newer)
