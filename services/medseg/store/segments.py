"""Segments and their revisions in Redis: masks stored per chunk, content-addressed.

A revision is immutable: a map from chunk key to the digest of a packed mask blob (only
non-empty chunks). A change writes blobs only for the chunks it touched, undo/redo just move a
segment's `head`, and the delta between any two revisions decodes only the chunks whose
digests differ. Callers hold the session lock (`SessionStore.locked`) around changes.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import redis
from cachetools import LRUCache

from medseg.engine.prompts import Box, Marks
from medseg.errors import (
    InvalidPrompt,
    NothingToRedo,
    NothingToUndo,
    RevisionConflict,
    RevisionNotFound,
    SegmentNotFound,
    SessionBusy,
    SessionNotFound,
)
from medseg.store import chunks, quotas
from medseg.store.colors import segment_color
from medseg.store.keys import SessionKeys, blob, fields, text
from medseg.store.records import (
    MAX_LABEL,
    InteractionRecord,
    MarksRecord,
    RevisionRecord,
    SegmentRecord,
    SessionMeta,
)
from medseg.store.sessions import Fence, SessionStore
from medseg_protocol import codec

_CAS_TRIES = 20  # WATCH retries when something else in the watched keys changed meanwhile
# a compare-and-set's two reads (the segment record, the session lock's owner) in one round
# trip, inside the WATCH (a read-only script: it never dirties the watched keys)
_READ_HEAD = """
return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('GET', KEYS[2])}
"""
_READ_HEAD_SHA = hashlib.sha1(_READ_HEAD.encode()).hexdigest()
# the same reads, and the session's next revision number in the same round trip (a commit's;
# a number drawn for a commit that is then refused stays unused, as one drawn before its WATCH)
_READ_HEAD_NEXT = """
return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('GET', KEYS[2]),
        redis.call('HINCRBY', KEYS[3], 'revision', 1)}
"""
_READ_HEAD_NEXT_SHA = hashlib.sha1(_READ_HEAD_NEXT.encode()).hexdigest()
# a segment's record and its head revision's record in one round trip (`SegmentStore.head`)
_HEAD = """
local segment = redis.call('HGET', KEYS[1], ARGV[1])
if not segment then return {false, false} end
local head = cjson.decode(segment)['head']
return {segment, redis.call('HGET', KEYS[2], string.format('%d', head))}
"""


def free_label(used: set[int]) -> int:
    """The label a new segment gets: one more than the largest in use, or, past MAX_LABEL (a
    segment labelled 65535 exists), the smallest free one. InvalidPrompt when all are taken."""
    candidate = max(used, default=0) + 1
    if candidate <= MAX_LABEL:
        return candidate
    free = next((v for v in range(1, MAX_LABEL + 1) if v not in used), None)
    if free is None:
        raise InvalidPrompt(f"this session has {len(used)} segments, every label value of the "
                            f"export (1 to {MAX_LABEL}) is taken: delete a segment first")
    return free


class SegmentStore:
    def __init__(self, sessions: SessionStore, cache_bytes: int = 128 << 20):
        self.sessions = sessions
        self.redis = sessions.redis
        # decoded mask chunks by digest: content-addressed, so never stale
        self._blob_cache: LRUCache = LRUCache(maxsize=cache_bytes, getsizeof=lambda a: a.nbytes)
        self._cache_lock = threading.Lock()
        self._head_script = self.redis.register_script(_HEAD)

    # -- segments --------------------------------------------------------------------------
    def create(self, meta: SessionMeta, name: str | None, label: int | None,
               color: str | None) -> SegmentRecord:
        keys = SessionKeys(meta.id)
        existing = self.list(meta)
        segment_id = int(self.redis.hincrby(keys.counters, "segment", 1))
        label = label if label is not None else free_label({s.label for s in existing})
        if any(s.label == label for s in existing):
            raise InvalidPrompt(f"label value {label} is already used by another segment")
        revision = self._next_revision(keys)
        record = RevisionRecord(revision=revision, segment=segment_id, parent=None,
                                interaction=InteractionRecord(type="create"))
        segment = SegmentRecord(
            id=segment_id, name=name or f"segment {segment_id}", label=label,
            color=color or segment_color(segment_id), head=revision)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(keys.revisions, str(revision), record.model_dump_json())
        pipe.hset(keys.segments, str(segment_id), segment.model_dump_json())
        self.sessions._expire(pipe, keys)
        pipe.execute()
        return segment

    def list(self, meta: SessionMeta) -> builtins.list[SegmentRecord]:
        raw = self.redis.hgetall(SessionKeys(meta.id).segments)
        return sorted((SegmentRecord.model_validate_json(v) for v in raw.values()),
                      key=lambda s: s.id)

    def get(self, meta: SessionMeta, segment_id: int) -> SegmentRecord:
        return self.parse(meta, segment_id, self.redis.hget(SessionKeys(meta.id).segments,
                                                            str(segment_id)))

    @staticmethod
    def parse(meta: SessionMeta, segment_id: int, raw: bytes | str | None) -> SegmentRecord:
        """The segment record from its stored JSON (None: SegmentNotFound)."""
        if raw is None:
            raise SegmentNotFound(f"segment {segment_id} not found in session {meta.id!r}")
        return SegmentRecord.model_validate_json(raw)

    def save(self, meta: SessionMeta, segment: SegmentRecord, fence: Fence | None = None,
             expected_head: int | None = None) -> None:
        """Write the segment record if its head in Redis is `expected_head` (default: its own,
        i.e. unchanged since it was read), compare-and-set as `commit`."""
        keys = SessionKeys(meta.id)
        self._write_if_head(
            meta, segment.id, segment.head if expected_head is None else expected_head, fence,
            lambda pipe, _: pipe.hset(keys.segments, str(segment.id), segment.model_dump_json()))

    def update(self, meta: SessionMeta, segment_id: int, **changes: Any) -> SegmentRecord:
        segment = self.get(meta, segment_id)
        label = changes.get("label")
        taken = {s.label for s in self.list(meta) if s.id != segment_id}
        if label is not None and label in taken:
            raise InvalidPrompt(f"label value {label} is already used by another segment")
        segment = segment.model_copy(update={k: v for k, v in changes.items() if v is not None})
        self.save(meta, segment)
        return segment

    def delete(self, meta: SessionMeta, segment_id: int) -> None:
        self.get(meta, segment_id)
        keys = SessionKeys(meta.id)
        revisions = [r.revision for r in self.history(meta, segment_id)]
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(keys.segments, str(segment_id))
        if revisions:
            pipe.hdel(keys.revisions, *map(str, revisions))
            pipe.hdel(keys.probabilities, *map(str, revisions))
            gone = {str(r) for r in revisions}
            artifacts = [f for f in self.redis.hkeys(keys.artifacts)
                         if text(f).partition(":")[0] in gone]
            if artifacts:
                pipe.hdel(keys.artifacts, *artifacts)
        pipe.execute()

    # -- revisions -------------------------------------------------------------------------
    def _next_revision(self, keys: SessionKeys) -> int:
        return int(self.redis.hincrby(keys.counters, "revision", 1))

    def revision(self, meta: SessionMeta, segment_id: int, revision: int) -> RevisionRecord:
        raw = self.redis.hget(SessionKeys(meta.id).revisions, str(revision))
        return _revision_of(raw, segment_id, revision)

    def head(self, meta: SessionMeta, segment_id: int) -> tuple[SegmentRecord, RevisionRecord]:
        """The segment record and its head revision's, read by one script (the head's number
        is in the first): one round trip, where `get` then `revision` made two."""
        keys = SessionKeys(meta.id)
        raw_segment, raw_head = self._head_script(keys=[keys.segments, keys.revisions],
                                                  args=[str(segment_id)])
        segment = self.parse(meta, segment_id, raw_segment)
        return segment, _revision_of(raw_head, segment_id, segment.head)

    def history(self, meta: SessionMeta, segment_id: int) -> builtins.list[RevisionRecord]:
        """Every revision of the segment (undone ones too), oldest first."""
        records = (RevisionRecord.model_validate_json(v)
                   for v in self.redis.hvals(SessionKeys(meta.id).revisions))
        return sorted((r for r in records if r.segment == segment_id), key=lambda r: r.revision)

    def lineage(self, meta: SessionMeta, record: RevisionRecord) -> builtins.list[RevisionRecord]:
        """`record`, its parent, ... back to the segment's first revision (newest first)."""
        revisions = {r.revision: r for r in self.history(meta, record.segment)}
        out: builtins.list[RevisionRecord] = []
        current: RevisionRecord | None = record
        while current is not None and len(out) <= len(revisions):
            out.append(current)
            current = revisions.get(current.parent) if current.parent is not None else None
        return out

    def commit(self, meta: SessionMeta, segment: SegmentRecord, parent: RevisionRecord,
               box: Box, new_mask: np.ndarray, interaction: dict, timings: dict[str, float],
               marks: Marks, probability: np.ndarray | None = None,
               also: Callable[[Any, RevisionRecord], None] | None = None,
               fence: Fence | None = None) -> RevisionRecord:
        """Store the mask that is `new_mask` inside `box` and the parent's elsewhere as a new
        head revision; the redo stack is dropped (a new change forks history). `also(pipe,
        record)` may queue more writes into the same MULTI (a job's final state).

        Compare-and-set: the revision and the new head are written only if the segment's head
        is still `parent` and (with a `fence`) the session lock still carries its token;
        otherwise RevisionConflict and nothing but content-addressed mask blobs (unreferenced,
        they expire with the session) was written."""
        keys = SessionKeys(meta.id)
        chunk_map = dict(parent.chunks)
        new_blobs: dict[str, bytes] = {}
        voxels = parent.voxels
        for index in chunks.chunks_in(box, meta.chunk):
            key = chunks.chunk_key(index)
            block = self._chunk(meta, chunk_map.get(key), index).copy()
            in_chunk, in_box = chunks.overlap(box, index, meta.shape, meta.chunk)
            voxels += int(new_mask[in_box].sum()) - int(block[in_chunk].sum())
            block[in_chunk] = new_mask[in_box]
            if block.any():
                digest, blob = chunks.encode_mask_chunk(block)
                chunk_map[key] = digest
                new_blobs[digest] = blob
                with self._cache_lock:
                    self._blob_cache[digest] = block
            else:
                chunk_map.pop(key, None)
        marks_record = MarksRecord.from_marks(marks)
        written: list[RevisionRecord] = []

        def write(pipe, revision: int | None) -> None:
            # the revision number is drawn by the compare-and-set's read (one round trip)
            assert revision is not None
            record = RevisionRecord(
                revision=revision, segment=segment.id, parent=parent.revision,
                interaction=interaction, timings=timings, chunks=chunk_map, voxels=voxels,
                marks=marks_record)
            written[:] = [record]
            if new_blobs:
                pipe.hset(keys.blobs, mapping=fields(new_blobs))
                quotas.count_bytes(pipe, keys, sum(map(len, new_blobs.values())))  # tenant quota
            pipe.hset(keys.revisions, str(record.revision), record.model_dump_json())
            if probability is not None:
                pipe.hset(keys.probabilities,
                          mapping=fields(_probability_fields(record.revision, box, probability)))
            pipe.hset(keys.segments, str(segment.id),
                      self.committed(segment, record).model_dump_json())
            self.sessions._expire(pipe, keys)
            if also is not None:
                also(pipe, record)

        self._write_if_head(meta, segment.id, parent.revision, fence, write, next_revision=True)
        return written[0]

    @staticmethod
    def committed(segment: SegmentRecord, record: RevisionRecord) -> SegmentRecord:
        """The segment record `commit(segment, ...)` writes with `record`: head moved to it,
        the redo stack dropped. A caller that committed needs not read it back."""
        return segment.model_copy(update={"head": record.revision, "redo": []})

    def undo(self, meta: SessionMeta, segment_id: int, fence: Fence | None = None,
             ) -> tuple[RevisionRecord, RevisionRecord]:
        """Move head to its parent. Returns (old head, new head). Compare-and-set as `commit`."""
        segment, current = self.head(meta, segment_id)
        if current.parent is None:
            raise NothingToUndo(f"segment {segment_id} is at its first revision: nothing to undo")
        previous = self.revision(meta, segment_id, current.parent)
        self.save(meta, segment.model_copy(
            update={"head": previous.revision, "redo": [*segment.redo, current.revision]}),
            fence, expected_head=current.revision)
        return current, previous

    def redo(self, meta: SessionMeta, segment_id: int, fence: Fence | None = None,
             ) -> tuple[RevisionRecord, RevisionRecord]:
        segment, current = self.head(meta, segment_id)
        if not segment.redo:
            raise NothingToRedo(f"segment {segment_id} has nothing to redo: no change was undone "
                                "since its last change")
        following = self.revision(meta, segment_id, segment.redo[-1])
        self.save(meta, segment.model_copy(
            update={"head": following.revision, "redo": segment.redo[:-1]}),
            fence, expected_head=current.revision)
        return current, following

    def _write_if_head(self, meta: SessionMeta, segment_id: int, expected_head: int,
                       fence: Fence | None, write: Callable[[Any, int | None], None],
                       next_revision: bool = False) -> None:
        """Run `write(pipe, revision)` as one MULTI if the segment's head is `expected_head`
        and the session lock carries `fence`'s token (when given), both WATCHed until EXEC;
        else RevisionConflict and nothing is written. `revision`: with `next_revision`, a new
        number from the session's revision counter (drawn with the checks' reads), else None."""
        keys = SessionKeys(meta.id)
        with self.redis.pipeline(transaction=True) as pipe:
            for _ in range(_CAS_TRIES):
                try:
                    pipe.watch(keys.segments, keys.lock)
                    raw, owner, revision = self._read_head(pipe, keys, segment_id,
                                                           next_revision)
                    if raw is None:
                        raise SegmentNotFound(f"segment {segment_id} not found in session "
                                              f"{meta.id!r}")
                    head = SegmentRecord.model_validate_json(raw).head
                    if head != expected_head:
                        raise RevisionConflict(
                            f"segment {segment_id} moved from revision {expected_head} to {head} "
                            "while this change was made; nothing was applied: fetch the delta "
                            f"from {expected_head} and retry")
                    if fence is not None:
                        if owner is None or text(owner) != str(fence.token):
                            raise RevisionConflict(
                                f"the lock of session {meta.id!r} expired or was taken over "
                                "while this change was made; nothing was applied: retry")
                    pipe.multi()
                    write(pipe, None if revision is None else int(revision))
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue  # another segment changed, or the lock's TTL was extended: re-check
        raise SessionBusy(f"session {meta.id!r} changed {_CAS_TRIES} times during one commit; "
                          "retry")

    def _read_head(self, pipe, keys: SessionKeys, segment_id: int, next_revision: bool = False,
                   ) -> tuple[Any, Any, Any]:
        """(segment record, lock owner) as raw bytes or None, and with `next_revision` the
        session's next revision number (else None), in one round trip on the WATCHing `pipe`
        (immediate mode); the script is loaded on first use (or after a SCRIPT FLUSH / a new
        server) and called by its digest. Not a `register_script` Script (as the lock's in
        SessionStore): on a pipeline, redis-py's Script makes `execute` send SCRIPT EXISTS
        first, the round trip this saves."""
        script, sha = (_READ_HEAD_NEXT, _READ_HEAD_NEXT_SHA) if next_revision else (
            _READ_HEAD, _READ_HEAD_SHA)
        args = (sha, 3, keys.segments, keys.lock, keys.counters, str(segment_id))
        try:
            answer = pipe.evalsha(*args)
        except redis.exceptions.NoScriptError:
            self.redis.script_load(script)
            answer = pipe.evalsha(*args)
        return answer[0], answer[1], answer[2] if next_revision else None

    # -- masks -----------------------------------------------------------------------------
    def read_mask(self, meta: SessionMeta, record: RevisionRecord, box: Box) -> np.ndarray:
        """The revision's mask inside the inclusive box, bool (z, y, x)."""
        out = np.zeros(chunks.box_shape(box), dtype=bool)
        present = [(i, record.chunks[chunks.chunk_key(i)])
                   for i in chunks.chunks_in(box, meta.chunk)
                   if chunks.chunk_key(i) in record.chunks]
        self._prefetch(meta, [d for _, d in present])
        for index, digest in present:
            in_chunk, in_box = chunks.overlap(box, index, meta.shape, meta.chunk)
            out[in_box] = self._chunk(meta, digest, index)[in_chunk]
        return out

    def mask_bbox(self, meta: SessionMeta, record: RevisionRecord) -> Box | None:
        """Bounding box of the chunks holding the mask (coarse, chunk-aligned), or None."""
        if not record.chunks:
            return None
        return chunks.covering_box(map(chunks.parse_chunk_key, record.chunks), meta.shape,
                                   meta.chunk)

    def delta(self, meta: SessionMeta, old: RevisionRecord, new: RevisionRecord) -> dict:
        """`rle-xor/1` delta from `old` to `new`, decoding only chunks whose digests differ."""
        changed = [chunks.parse_chunk_key(k) for k in set(old.chunks) | set(new.chunks)
                   if old.chunks.get(k) != new.chunks.get(k)]
        if not changed:
            return codec.encode_delta_from_xor(np.zeros((0, 0, 0), bool), (0, 0, 0), meta.shape,
                                               old.revision, new.revision)
        box = chunks.covering_box(changed, meta.shape, meta.chunk)
        xor = np.zeros(chunks.box_shape(box), dtype=bool)
        self._prefetch(meta, [d for r in (old, new) for d in r.chunks.values()])
        for index in changed:
            key = chunks.chunk_key(index)
            a = self._chunk(meta, old.chunks.get(key), index)
            b = self._chunk(meta, new.chunks.get(key), index)
            _, in_box = chunks.overlap(box, index, meta.shape, meta.chunk)
            xor[in_box] = a ^ b
        return codec.encode_delta_from_xor(xor, box.lo, meta.shape, old.revision, new.revision)

    def probability(self, meta: SessionMeta, revision: int) -> tuple[Box, np.ndarray] | None:
        """The cached foreground probability (float32) a method produced for a revision."""
        header, data = self.redis.hmget(SessionKeys(meta.id).probabilities,
                                        [f"{revision}:box", str(revision)])
        if header is None or data is None:
            return None
        lo, hi = json.loads(header)
        box = Box(tuple(lo), tuple(hi))
        values = chunks.decode_array(blob(data), chunks.box_shape(box), np.float16)
        return box, values.astype(np.float32)

    # -- artifacts: blobs a job keeps with the revision it committed ----------------------
    def artifact(self, meta: SessionMeta, record: RevisionRecord, name: str) -> bytes | None:
        """The newest blob called `name` on the line of history that ends at `record` (the
        revision itself, its parent, ...), or None. So undoing the revision that stored it
        also drops it, and later revisions keep finding it."""
        fields = [artifact_field(r.revision, name) for r in self.lineage(meta, record)]
        found = self.redis.hmget(SessionKeys(meta.id).artifacts, fields)
        return next((blob(b) for b in found if b is not None), None)

    def write_artifact(self, pipe, meta: SessionMeta, revision: int, name: str,
                       data: bytes) -> None:
        """Queue a blob of `revision` into a MULTI (the revision's own commit)."""
        pipe.hset(SessionKeys(meta.id).artifacts, artifact_field(revision, name), data)

    # -- blob access -----------------------------------------------------------------------
    def _chunk(self, meta: SessionMeta, digest: str | None, index) -> np.ndarray:
        """Decoded chunk for a digest; all-false for an absent (empty) chunk."""
        shape = tuple(s.stop - s.start for s in chunks.chunk_box(index, meta.shape, meta.chunk))
        if digest is None:
            return np.zeros(shape, dtype=bool)
        with self._cache_lock:
            block = self._blob_cache.get(digest)
        if block is None:
            self._prefetch(meta, [digest])
            with self._cache_lock:
                block = self._blob_cache.get(digest)
        if block is None:  # evicted between prefetch and use: decode directly
            data = self.redis.hget(SessionKeys(meta.id).blobs, digest)
            if data is None:
                raise SessionNotFound(f"session {meta.id!r} not found (mask data expired)")
            block = chunks.decode_mask_bits(blob(data))
        # blobs are cached flat and padded to a byte; the chunk's own shape gives the layout
        return block.ravel()[: int(np.prod(shape))].reshape(shape)

    def _prefetch(self, meta: SessionMeta, digests: builtins.list[str]) -> None:
        """Load missing blobs in one round trip. Blocks are cached flat (shape is the chunk's)."""
        with self._cache_lock:
            missing = sorted({d for d in digests if d not in self._blob_cache})
        if not missing:
            return
        raw = self.redis.hmget(SessionKeys(meta.id).blobs, missing)
        for digest, data in zip(missing, raw):
            if data is None:
                continue
            block = chunks.decode_mask_bits(blob(data))
            with self._cache_lock:
                self._blob_cache[digest] = block


def _revision_of(raw: bytes | str | None, segment_id: int, revision: int) -> RevisionRecord:
    """The revision record from its stored JSON; RevisionNotFound when absent or another
    segment's."""
    record = RevisionRecord.model_validate_json(raw) if raw is not None else None
    if record is None or record.segment != segment_id:
        raise RevisionNotFound(f"revision {revision} not found for segment {segment_id}")
    return record


def _probability_fields(revision: int, box: Box, probability: np.ndarray) -> dict[str, bytes]:
    return {
        f"{revision}:box": json.dumps([list(box.lo), list(box.hi)]).encode(),
        str(revision): chunks.encode_array(probability.astype(np.float16)),
    }


def artifact_field(revision: int, name: str) -> str:
    return f"{revision}:{name}"
