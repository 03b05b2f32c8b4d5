"""A commit's compare-and-set reads the segment record and the lock's owner in one round trip
(a read-only script inside the WATCH): it still refuses a moved head, a lost lock and a
missing segment, survives a SCRIPT FLUSH, and sends one command where it sent two."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from medseg.engine.prompts import Box, Marks
from medseg.engine.volume import Volume
from medseg.errors import RevisionConflict, SegmentNotFound
from medseg.store import chunks
from medseg.store.keys import SessionKeys
from tests.redis_commands import record_commands


@pytest.fixture
def meta(store):
    array = np.zeros((8, 40, 40), dtype=np.int16)
    return store.sessions.create(Volume(array, (2.0, 1.0, 1.0), np.eye(4), "CT", "nifti"), "bob")


def _commit(store, meta, segment_id, box, fence=None, parent=None):
    segment, head = store.segments.head(meta, segment_id)
    mask = np.ones(chunks.box_shape(box), dtype=bool)
    return store.segments.commit(meta, segment, parent or head, box, mask, {"type": "test"}, {},
                                 Marks(), fence=fence)


def test_the_commit_checks_head_lock_and_segment_and_survives_a_script_flush(store, meta):
    segment = store.segments.create(meta, "a", None, None)
    store.sessions.redis.script_flush()  # the read script is gone: loaded again on first use
    with store.sessions.locked(meta.id) as fence:
        first = _commit(store, meta, segment.id, Box((1, 2, 2), (3, 9, 9)), fence)
    assert store.segments.get(meta, segment.id).head == first.revision
    stale_parent = store.segments.revision(meta, segment.id, segment.head)
    with pytest.raises(RevisionConflict, match="moved from revision"):
        _commit(store, meta, segment.id, Box((4, 2, 2), (5, 9, 9)), parent=stale_parent)
    stale = store.sessions.acquire(meta.id)
    store.sessions.redis.delete(SessionKeys(meta.id).lock)  # its TTL ran out
    with store.sessions.locked(meta.id):
        with pytest.raises(RevisionConflict, match="expired or was taken over"):
            _commit(store, meta, segment.id, Box((4, 2, 2), (5, 9, 9)), stale)
    assert store.segments.get(meta, segment.id).head == first.revision  # nothing applied
    store.sessions.redis.hdel(SessionKeys(meta.id).segments, str(segment.id))
    with pytest.raises(SegmentNotFound):
        _commit(store, meta, segment.id, Box((4, 2, 2), (5, 9, 9)), parent=first)


def test_the_reads_take_one_round_trip(store, meta, monkeypatch):
    """Inside the WATCH the commit sends WATCH and the script, nothing else, before MULTI."""
    segment = store.segments.create(meta, "a", None, None)
    _commit(store, meta, segment.id, Box((1, 2, 2), (3, 9, 9)))  # the script is loaded
    sent = []
    immediate = redis.client.Pipeline.immediate_execute_command

    def counted(self, *args, **options):
        sent.append(str(args[0]).upper())
        return immediate(self, *args, **options)

    monkeypatch.setattr(redis.client.Pipeline, "immediate_execute_command", counted)
    _commit(store, meta, segment.id, Box((4, 2, 2), (5, 9, 9)))
    assert sent == ["WATCH", "EVALSHA"]


def test_the_commit_draws_its_revision_number_in_that_round_trip(store, meta, monkeypatch):
    """No HINCRBY of its own before the WATCH: the commit's whole conversation is WATCH, the
    script (checks and the next revision number), the MULTI; numbers still rise, one per
    commit, and a refused commit writes nothing but leaves its number unused."""
    segment = store.segments.create(meta, "a", None, None)
    first = _commit(store, meta, segment.id, Box((1, 2, 2), (3, 9, 9)))
    sent = record_commands(monkeypatch)
    second = _commit(store, meta, segment.id, Box((4, 2, 2), (5, 9, 9)))
    assert sent[-3:] == ["WATCH", "EVALSHA", "EXEC"] and "HINCRBY" not in sent, sent
    monkeypatch.undo()
    assert second.revision == first.revision + 1 and second.parent == first.revision
    assert store.segments.revision(meta, segment.id, second.revision) == second
    assert store.segments.get(meta, segment.id).head == second.revision
    with pytest.raises(RevisionConflict):
        _commit(store, meta, segment.id, Box((6, 2, 2), (6, 9, 9)), parent=first)
    third = _commit(store, meta, segment.id, Box((6, 2, 2), (6, 9, 9)))
    assert third.revision == second.revision + 2 and third.parent == second.revision
    assert [r.revision for r in store.segments.history(meta, segment.id)][-2:] == [
        second.revision, third.revision]
