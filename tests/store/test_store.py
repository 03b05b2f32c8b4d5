"""The Redis store on its own: chunk grid, content-addressed revisions, undo, delta, lock."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medseg.engine.prompts import Box, Marks
from medseg.engine.volume import Volume
from medseg.errors import NothingToRedo, NothingToUndo, SessionBusy
from medseg.store import Store, chunks
from medseg.store.keys import SessionKeys
from medseg_protocol import codec

SHAPE = (20, 150, 130)  # not a multiple of the chunk shape: edge chunks are partial


@pytest.fixture
def volume():
    rng = np.random.default_rng(0)
    array = rng.integers(-1000, 1000, size=SHAPE, dtype=np.int16)
    return Volume(array, (2.0, 0.8, 0.8), np.diag([0.8, 0.8, 2.0, 1.0]), "CT", "nifti")


@pytest.fixture
def meta(store, volume):
    return store.sessions.create(volume, "alice")


@given(lo=st.tuples(st.integers(0, SHAPE[0] - 1), st.integers(0, SHAPE[1] - 1),
                    st.integers(0, SHAPE[2] - 1)),
       size=st.tuples(st.integers(1, 12), st.integers(1, 90), st.integers(1, 90)))
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # read-only fixtures
def test_any_region_reads_back_exactly(store, meta, volume, lo, size):
    hi = tuple(min(a + s, n) - 1 for a, s, n in zip(lo, size, SHAPE))
    region = store.sessions.read_image(meta, Box(lo, hi))
    assert np.array_equal(region, volume.array[tuple(slice(a, b + 1) for a, b in zip(lo, hi))])


def commit_box(store: Store, meta, segment_id, box: Box, value=True):
    segment, head = store.segments.head(meta, segment_id)
    mask = np.full(chunks.box_shape(box), value, dtype=bool)
    return store.segments.commit(meta, segment, head, box, mask, {"type": "test"}, {}, Marks())


def full(store, meta, record):
    return store.segments.read_mask(meta, record, chunks.full_box(meta.shape))


def test_commit_touches_only_its_chunks_and_undo_is_exact(store, meta, redis_url):
    segment = store.segments.create(meta, "organ", None, None)
    first = commit_box(store, meta, segment.id, Box((2, 10, 10), (19, 140, 129)))  # edge chunks too
    second = commit_box(store, meta, segment.id, Box((5, 20, 20), (5, 30, 30)), value=False)
    changed = {k for k in set(first.chunks) | set(second.chunks)
               if first.chunks.get(k) != second.chunks.get(k)}
    assert changed == {"0.0.0"}  # the 2D edit lives in one chunk
    assert second.voxels == first.voxels - 11 * 11
    expected = full(store, meta, first)
    expected[5, 20:31, 20:31] = False
    assert np.array_equal(full(store, meta, second), expected)

    # a process with a cold cache (another API worker) reads the same revision bit for bit
    cold = Store.connect(redis_url, 60)
    assert np.array_equal(full(cold, meta, second), expected)

    old, new = store.segments.undo(meta, segment.id)
    assert (old.revision, new.revision) == (second.revision, first.revision)
    assert np.array_equal(full(store, meta, new), full(store, meta, first))
    delta = store.segments.delta(meta, old, new)
    assert np.array_equal(codec.apply_delta(full(store, meta, old), delta), full(store, meta, new))
    store.segments.undo(meta, segment.id)
    with pytest.raises(NothingToUndo):
        store.segments.undo(meta, segment.id)
    store.segments.redo(meta, segment.id)
    _, redone = store.segments.redo(meta, segment.id)
    assert redone.revision == second.revision
    with pytest.raises(NothingToRedo):
        store.segments.redo(meta, segment.id)


def test_identical_chunks_are_stored_once(store, meta):
    segment = store.segments.create(meta, "organ", None, None)
    commit_box(store, meta, segment.id, Box((0, 0, 0), (7, 63, 63)))  # exactly chunk 0.0.0
    commit_box(store, meta, segment.id, Box((8, 64, 64), (15, 127, 127)))  # chunk 1.1.1, same bits
    assert store.sessions.redis.hlen(SessionKeys(meta.id).blobs) == 1


def test_probability_map_is_cached_per_revision(store, meta):
    segment, head = store.segments.head(meta, store.segments.create(meta, "o", None, None).id)
    box = Box((3, 5, 5), (3, 40, 50))
    probability = np.linspace(0, 1, num=36 * 46, dtype=np.float32).reshape(1, 36, 46)
    record = store.segments.commit(meta, segment, head, box, probability > 0.5, {"type": "t"}, {},
                                   Marks(), probability)
    cached_box, cached = store.segments.probability(meta, record.revision)
    assert cached_box == box and np.allclose(cached, probability, atol=1e-3)
    assert store.segments.probability(meta, head.revision) is None


def test_writer_lock_is_exclusive(store, meta):
    store.sessions.lock_wait_s = 0.2
    entered = threading.Event()
    release = threading.Event()

    def hold():
        with store.sessions.locked(meta.id):
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    entered.wait(5)
    with pytest.raises(SessionBusy), store.sessions.locked(meta.id):
        pass
    release.set()
    thread.join()
    with store.sessions.locked(meta.id):
        pass


def test_chunk_codec_is_safe_across_threads():
    """The API decodes chunks from a thread pool; a shared zstd object corrupted data."""
    from concurrent.futures import ThreadPoolExecutor


    rng = np.random.default_rng(0)
    blocks = [rng.integers(-1000, 1000, size=(8, 64, 64), dtype=np.int16) for _ in range(8)]
    blobs = [chunks.encode_array(b) for b in blocks]

    def roundtrip(i: int) -> bool:
        for _ in range(200):
            decoded = chunks.decode_array(blobs[i % 8], (8, 64, 64), "int16")
            if not np.array_equal(decoded, blocks[i % 8]):
                return False
            chunks.encode_array(blocks[i % 8])
        return True

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(roundtrip, range(16)))
