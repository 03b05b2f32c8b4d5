"""Sessions in Redis: metadata, the chunked image, idle TTL, one-shot purge, writer lock."""

from __future__ import annotations

import builtins
import contextlib
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis
from cachetools import LRUCache

from medseg.engine.prompts import Box
from medseg.engine.volume import Volume
from medseg.errors import SessionBusy, SessionNotFound, StorageFull
from medseg.store import chunks
from medseg.store.admin import AofCompactor
from medseg.store.keys import EXPIRY_INDEX, SessionKeys, blob, tenant_sessions_key, text
from medseg.store.quotas import BYTES_FIELD
from medseg.store.records import SessionMeta

_KEEPER_IDLE_S = 60.0  # a lock keeper's thread ends after this long without a lock to keep
_WRITE_BATCH = 256  # chunks per pipeline round trip when storing an image

# The lock's value is its fencing token, from a per-session counter that only grows. -1: the
# session is gone (its counters hash expired or was deleted), so nothing is created for it.
# With a third key (the segments hash) it also answers one segment's record (ARGV[2]) as it is
# once the lock is taken: a caller that needs it (the compute pool's deadline message) saves a
# round trip.
_ACQUIRE = """
if redis.call('exists', KEYS[1]) == 1 then return {0, false} end
if redis.call('exists', KEYS[2]) == 0 then return {-1, false} end
local token = redis.call('hincrby', KEYS[2], 'fence', 1)
redis.call('set', KEYS[1], token, 'PX', ARGV[1])
if KEYS[3] then return {token, redis.call('hget', KEYS[3], ARGV[2])} end
return {token, false}
"""
_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Fence:
    """The session lock as one holder has it: the session and the lock's fencing token. A
    commit writes only while the lock still carries this token (`SegmentStore` checks it in
    the same transaction), so a holder whose lock expired or was revoked writes nothing."""

    session_id: str
    token: int


class SessionStore:
    """All session-level Redis access. Thread-safe: redis-py clients are.

    The in-process cache holds decoded image chunks; images never change after upload and
    session ids are never reused, so an entry is valid for as long as the session exists
    (which every request checks against Redis first).
    """

    def __init__(self, client: redis.Redis, ttl_s: int, cache_bytes: int = 256 << 20,
                 lock_ttl_s: float = 10.0, lock_wait_s: float = 30.0):
        self.redis = client
        self.ttl_s = ttl_s
        self.lock_ttl_s = lock_ttl_s  # a dead holder's lock frees this long after its last beat
        self.lock_wait_s = lock_wait_s
        self._acquire_script = client.register_script(_ACQUIRE)
        self._extend_script = client.register_script(_EXTEND)
        self._release_script = client.register_script(_RELEASE)
        self._image_cache: LRUCache = LRUCache(maxsize=cache_bytes, getsizeof=lambda a: a.nbytes)
        self._cache_lock = threading.Lock()  # cachetools caches are not thread-safe
        # set by Store.connect when deleted sessions must be rewritten out of the AOF
        self.compactor: AofCompactor | None = None
        self._keeper = _LockKeeper(self)

    # -- lifecycle -------------------------------------------------------------------------
    def create(self, volume: Volume, tenant: str, name: str | None = None,
               source: dict | None = None,
               also: Callable[[Any, SessionKeys], None] | None = None) -> SessionMeta:
        """A new session holding `volume`. `also(pipe, keys)` may queue more writes into the
        MULTI that makes the session visible (e.g. its DICOM source), so a session is never
        seen half-made."""
        session_id = secrets.token_hex(16)
        keys = SessionKeys(session_id)
        meta = SessionMeta(
            id=session_id, tenant=tenant, name=name, shape=volume.shape,
            spacing=tuple(float(s) for s in volume.spacing),
            affine=np.asarray(volume.affine, dtype=float).tolist(), modality=volume.modality,
            dtype=str(volume.array.dtype), source_format=volume.source_format,
            chunk=chunks.CHUNK_SHAPE, warnings=list(volume.warnings), source=source,
        )
        try:
            stored = self._write_image(keys, volume.array)
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(keys.counters, mapping={"revision": 0, "segment": 0, BYTES_FIELD: stored})
            if also is not None:
                also(pipe, keys)
            # meta last: a session is visible only once its image is complete
            pipe.set(keys.meta, meta.model_dump_json())
            pipe.sadd(tenant_sessions_key(tenant), session_id)
            self._expire(pipe, keys)
            pipe.execute()
        except redis.exceptions.OutOfMemoryError:
            # Redis is at maxmemory (noeviction): no meta was written, so no session is
            # visible; the chunks written so far go now rather than at their TTL
            self.redis.unlink(*keys.data_keys)
            raise StorageFull("the session store is full: the image could not be stored. "
                              "Retry later, or delete sessions you no longer need", 60) from None
        return meta

    def _write_image(self, keys: SessionKeys, array: np.ndarray) -> int:
        """Store the image's chunks; the bytes they take."""
        pipe = self.redis.pipeline(transaction=False)
        pending = stored = 0
        for index in chunks.all_chunks(array.shape):
            block = array[chunks.chunk_box(index, array.shape)]
            data = chunks.encode_array(block)
            stored += len(data)
            pipe.hset(keys.image, chunks.chunk_key(index), data)
            pending += 1
            if pending >= _WRITE_BATCH:
                pipe.expire(keys.image, self.ttl_s)
                pipe.execute()
                pending = 0
        pipe.expire(keys.image, self.ttl_s)
        pipe.execute()
        return stored

    def get(self, session_id: str, tenant: str | None = None, touch: bool = True) -> SessionMeta:
        """Metadata of a live session; SessionNotFound (404) when absent or another tenant's."""
        keys = SessionKeys(session_id)
        raw = self.redis.get(keys.meta)
        if raw is None:
            raise SessionNotFound(f"session {session_id!r} not found")
        meta = SessionMeta.model_validate_json(raw)
        if tenant is not None and meta.tenant != tenant:
            # same answer as a missing session: existence is not disclosed across tenants
            raise SessionNotFound(f"session {session_id!r} not found")
        if touch:
            self.touch(session_id)
        return meta

    def list(self, tenant: str) -> builtins.list[SessionMeta]:
        ids = sorted(text(m) for m in self.redis.smembers(tenant_sessions_key(tenant)))
        metas = []
        raws = self.redis.mget([SessionKeys(i).meta for i in ids]) if ids else []
        for session_id, raw in zip(ids, raws):
            if raw is None:  # expired by TTL: forget it in the index too
                self.redis.srem(tenant_sessions_key(tenant), session_id)
            else:
                metas.append(SessionMeta.model_validate_json(raw))
        return metas

    def delete(self, session_id: str, tenant: str | None = None) -> None:
        meta = self.get(session_id, tenant, touch=False)
        keys = SessionKeys(session_id)
        job_ids = [text(j) for j in self.redis.smembers(keys.jobs)]
        job_keys = [k for j in job_ids
                    for k in (keys.job(j), keys.job_events(j), keys.job_heartbeat(j))]
        pipe = self.redis.pipeline(transaction=True)
        pipe.unlink(*keys.data_keys, keys.lock, *job_keys)
        pipe.srem(tenant_sessions_key(meta.tenant), session_id)
        pipe.zrem(EXPIRY_INDEX, session_id)
        pipe.execute()
        if self.compactor is not None:  # the deleted session is still in the AOF until then
            self.compactor.request()

    def touch(self, session_id: str) -> None:
        """Restart the idle TTL of every key of the session."""
        pipe = self.redis.pipeline(transaction=False)
        self._expire(pipe, SessionKeys(session_id))
        # a Redis at maxmemory refuses the expiry index's ZADD (EXPIRE it allows): reads go on
        # (nothing can change while it is full, so an archive made for the older expiry is whole)
        for answer in pipe.execute(raise_on_error=False):
            if isinstance(answer, Exception) and not isinstance(
                    answer, redis.exceptions.OutOfMemoryError):
                raise answer

    def _expire(self, pipe, keys: SessionKeys) -> None:
        for key in keys.data_keys:
            pipe.expire(key, self.ttl_s)
        # when it expires, for the archive sweeper (store/archive.py)
        pipe.zadd(EXPIRY_INDEX,
                  {keys.session_id: int(time.time() * 1000) + self.ttl_s * 1000})

    def ttl(self, session_id: str) -> int:
        return int(self.redis.ttl(SessionKeys(session_id).meta))

    @contextlib.contextmanager
    def locked(self, session_id: str, held: Fence | None = None) -> Iterator[Fence]:
        """The per-session writer lock, held across read-compute-write of a change; yields its
        fence (the token every commit under it checks). A holder's thread extends it every
        third of `lock_ttl_s` for as long as the block runs, so it expires `lock_ttl_s` after
        its holder died, never under a live one. SessionBusy after `lock_wait_s` of waiting.

        `held`: the lock is already held by the caller (another process that extends it, e.g.
        the API process around a compute process): yield it as it is."""
        if held is not None:
            yield held
            return
        with self.locked_reading(session_id) as (fence, _):
            yield fence

    @contextlib.contextmanager
    def locked_reading(self, session_id: str, segment_id: int | None = None,
                       ) -> Iterator[tuple[Fence, bytes | None]]:
        """`locked`, yielding beside the fence segment `segment_id`'s record (raw JSON; None
        when absent or no segment is named) as it is once the lock is taken, read by the
        lock's own script: one round trip fewer for a holder that needs it."""
        fence, segment = self._acquire(session_id, segment_id)
        self._keeper.keep(fence)
        try:
            yield fence, segment
        finally:
            self._keeper.stop(fence)
            self.release(fence)

    def acquire(self, session_id: str) -> Fence:
        return self._acquire(session_id)[0]

    def _acquire(self, session_id: str, segment_id: int | None = None,
                 ) -> tuple[Fence, bytes | None]:
        keys = SessionKeys(session_id)
        deadline = time.monotonic() + self.lock_wait_s
        pause = 0.002
        read = ([keys.segments], [str(segment_id)]) if segment_id is not None else ([], [])
        while True:
            answer = self._acquire_script(keys=[keys.lock, keys.counters, *read[0]],
                                          args=[int(self.lock_ttl_s * 1000), *read[1]])
            token = int(answer[0])
            if token > 0:
                return Fence(session_id, token), answer[1]
            if token < 0:
                raise SessionNotFound(f"session {session_id!r} not found")
            if time.monotonic() >= deadline:
                raise SessionBusy(f"session {session_id!r} is busy with another change; retry")
            time.sleep(pause)  # polling Redis for a lock: no notification exists for its release
            pause = min(2 * pause, 0.05)

    def extend(self, fence: Fence) -> bool:
        """Restart the lock's TTL; False when it is no longer this fence's (expired, taken)."""
        return bool(self._extend_script(keys=[SessionKeys(fence.session_id).lock],
                                        args=[fence.token, int(self.lock_ttl_s * 1000)]))

    def release(self, fence: Fence) -> bool:
        """Drop the lock if it is still this fence's. From then on no commit checking this
        fence can succeed (a revoked holder's late write is refused)."""
        return bool(self._release_script(keys=[SessionKeys(fence.session_id).lock],
                                         args=[fence.token]))

    def holds(self, fence: Fence) -> bool:
        value = self.redis.get(SessionKeys(fence.session_id).lock)
        return value is not None and text(value) == str(fence.token)

    # -- image -----------------------------------------------------------------------------
    def read_image(self, meta: SessionMeta, box: Box) -> np.ndarray:
        """The image inside the inclusive voxel box, (z, y, x), reading only the chunks it
        touches."""
        out = np.empty(chunks.box_shape(box), dtype=meta.dtype)
        indices = list(chunks.chunks_in(box, meta.chunk))
        blocks = self._image_chunks(meta, indices)
        for index, block in zip(indices, blocks):
            in_chunk, in_box = chunks.overlap(box, index, meta.shape, meta.chunk)
            out[in_box] = block[in_chunk]
        return out

    def _image_chunks(self, meta: SessionMeta, indices) -> builtins.list[np.ndarray]:
        cache_keys = [(meta.id, index) for index in indices]
        with self._cache_lock:
            found: builtins.list[np.ndarray | None] = [self._image_cache.get(k) for k in cache_keys]
        missing = [i for i, block in enumerate(found) if block is None]
        if missing:
            raw = self.redis.hmget(SessionKeys(meta.id).image,
                                   [chunks.chunk_key(indices[i]) for i in missing])
            for i, data in zip(missing, raw):
                if data is None:
                    raise SessionNotFound(f"session {meta.id!r} not found (image expired)")
                shape = tuple(s.stop - s.start for s in
                              chunks.chunk_box(indices[i], meta.shape, meta.chunk))
                found[i] = chunks.decode_array(blob(data), shape, meta.dtype)
                with self._cache_lock:
                    self._image_cache[cache_keys[i]] = found[i]
        return [block for block in found if block is not None]  # all of them by now


class _LockKeeper:
    """The holders' heartbeat: extends every lock held in this process every third of its
    TTL until its block ends or the lock is lost (like redis-py's `Lock.extend`).

    One thread per store, started on first use, rather than one per lock: starting a thread
    waits until it runs, ~0.5 ms of every 2D click on a busy host (issue 13 item 3)."""

    def __init__(self, sessions: SessionStore):
        self._sessions = sessions
        self._reset()
        # a forked child (RQ's work horse) has no keeper thread and maybe a Condition held by
        # a thread that did not come along: it starts afresh (a weak reference: a callback
        # registered for a fork does not keep the store alive)
        keeper = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _reset_if_alive(keeper))

    def _reset(self) -> None:
        self._due: dict[Fence, float] = {}  # held fence -> when its next extension is due
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def keep(self, fence: Fence) -> None:
        with self._changed:
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, name="session-lock",
                                                daemon=True)
                self._thread.start()
            if not self._due:  # the thread waits without a timeout: wake it
                self._changed.notify()
            self._due[fence] = time.monotonic() + self._sessions.lock_ttl_s / 3

    def stop(self, fence: Fence) -> None:
        with self._changed:
            self._due.pop(fence, None)

    def _beat(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                due = [f for f, t in self._due.items() if t <= now]
                if not due and not self._due:
                    # idle: a store no longer used (a test's) keeps no thread for ever; the
                    # next lock starts another
                    if not self._changed.wait(_KEEPER_IDLE_S) and not self._due:
                        self._thread = None
                        return
                    continue
                if not due:
                    self._changed.wait(min(self._due.values()) - now)
                    continue
                for fence in due:
                    self._due[fence] = now + self._sessions.lock_ttl_s / 3
            for fence in due:
                self._extend(fence)

    def _extend(self, fence: Fence) -> None:
        try:
            if self._sessions.extend(fence):
                return
        except redis.RedisError:
            return  # Redis unreachable for a moment: try again at the next beat
        self.stop(fence)  # lost (expired or revoked): the commit's fence check refuses it


def _reset_if_alive(keeper: weakref.ref[_LockKeeper]) -> None:
    found = keeper()
    if found is not None:
        found._reset()
