"""The interaction use case on a real store: the head mask is read from Redis once per
interaction, and every read cut from that one read equals a direct read."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medseg.engine.prompts import Box, Marks, Plane, Prompt
from medseg.engine.volume import Volume
from medseg.store import chunks
from medseg.usecases.interactions import HeadMask, interact
from tests.redis_commands import record_commands

SHAPE = (12, 90, 80)


@pytest.fixture
def meta(store):
    rng = np.random.default_rng(1)
    array = rng.normal(0, 10, SHAPE).astype(np.float32)
    array[3:9, 20:60, 20:50] += 200  # a bright block to segment
    return store.sessions.create(Volume(array, (3.0, 1.0, 1.0), np.eye(4), "CT", "nifti"), "alice")


@pytest.fixture
def head(store, meta):
    """A segment whose mask is an L-shaped blob across several chunks and slices."""
    segment = store.segments.create(meta, "blob", None, None)
    mask = np.zeros(SHAPE, dtype=bool)
    mask[2:10, 15:70, 10:30] = True
    mask[4:6, 60:85, 10:75] = True
    _, first = store.segments.head(meta, segment.id)
    return store.segments.commit(meta, segment, first, chunks.full_box(SHAPE), mask,
                                 {"type": "test"}, {}, Marks()), mask


def _reads(store, monkeypatch) -> list[Box]:
    seen: list[Box] = []
    real = store.segments.read_mask

    def counting(meta, record, box):
        seen.append(box)
        return real(meta, record, box)

    monkeypatch.setattr(store.segments, "read_mask", counting)
    return seen


@pytest.mark.parametrize("plane", [None, Plane(0, 5)])
def test_a_click_reads_the_head_mask_once(store, meta, head, plugins, monkeypatch, plane):
    record, _ = head
    reads = _reads(store, monkeypatch)
    prompt = Prompt("click", Marks(fg=np.array([[5, 40, 35]])), plane)
    change = interact(store, plugins.methods, meta, record.segment, prompt, None, {}, None)
    assert len(reads) == 1, reads  # bbox, the method's reads and the delta share it
    assert change.current.parent == record.revision and change.delta["to_revision"] > 0


@given(lo=st.tuples(st.integers(0, SHAPE[0] - 1), st.integers(0, SHAPE[1] - 1),
                    st.integers(0, SHAPE[2] - 1)),
       size=st.tuples(st.integers(1, 12), st.integers(1, 90), st.integers(1, 80)),
       on_plane=st.booleans())
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # read-only fixtures
def test_every_read_equals_a_direct_read(store, meta, head, lo, size, on_plane):
    record, mask = head
    plane = Plane(0, lo[0]) if on_plane else None
    box = Box(lo, tuple(min(a + s, n) - 1 for a, s, n in zip(lo, size, SHAPE)))
    if plane is not None:  # a 2D interaction reads its own slice
        box = Box(lo, (lo[0], *box.hi[1:]))
    head_mask = HeadMask(store, meta, record, plane)
    assert np.array_equal(head_mask.read(box), mask[box.slices_in(chunks.full_box(SHAPE))])
    found = head_mask.bbox()
    region = mask if plane is None else mask[plane.index:plane.index + 1]
    if not region.any():
        assert found is None
    else:
        idx = np.argwhere(region) + ((0, 0, 0) if plane is None else (plane.index, 0, 0))
        assert found == Box(tuple(idx.min(axis=0)), tuple(idx.max(axis=0)))


@pytest.mark.parametrize("plane", [None, Plane(0, 5)])
def test_a_click_reads_nothing_back_after_its_commit(store, meta, head, plugins, monkeypatch,
                                                     plane):
    """The answer's segment record is the one the commit wrote (head, redo dropped, the 2D
    click's slice lock), not read back from Redis: the commit's EXEC is the click's last
    round trip (under a fence, as in a compute process)."""
    record, _ = head
    segment = store.segments.get(meta, record.segment)
    store.segments.save(meta, segment.model_copy(update={"redo": [99]}))  # dropped by the click
    prompt = Prompt("click", Marks(fg=np.array([[5, 40, 35]])), plane)
    with store.sessions.locked(meta.id) as fence:
        sent = record_commands(monkeypatch)
        change = interact(store, plugins.methods, meta, record.segment, prompt, None, {}, None,
                          fence=fence)
        monkeypatch.undo()
    assert sent.count("EXEC") == 1 and sent[-1] == "EXEC", sent
    stored = store.segments.get(meta, record.segment)
    assert change.segment == stored and stored.head == change.current.revision
    assert stored.redo == [] and stored.locks == ({"z": [5]} if plane else {})


def test_a_click_reads_its_segment_and_head_revision_in_one_round_trip(store, meta, head,
                                                                       plugins, monkeypatch):
    """One script answers the segment record and its head revision's (there were two HGETs);
    then the head's mask chunks, and the commit (WATCH, its read script, MULTI/EXEC)."""
    record, _ = head
    prompt = Prompt("click", Marks(fg=np.array([[5, 40, 35]])), Plane(0, 5))
    with store.sessions.locked(meta.id) as fence:
        sent = record_commands(monkeypatch)
        interact(store, plugins.methods, meta, record.segment, prompt, None, {}, None,
                 fence=fence)
        monkeypatch.undo()
    assert sent[0] == "EVALSHA" and "HGET" not in sent, sent
    assert sent[-3:] == ["WATCH", "EVALSHA", "EXEC"], sent
