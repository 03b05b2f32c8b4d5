"""Sessions in Redis: metadata, the chunked image, idle TTL, one-shot purge, writer lock."""

from __future__ import annotations

import builtins
import contextlib
import secrets
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import redis
from cachetools import LRUCache

from medseg.engine.prompts import Box
from medseg.engine.volume import Volume
from medseg.errors import SessionBusy, SessionNotFound
from medseg.store import chunks
from medseg.store.keys import SessionKeys, blob, tenant_sessions_key, text
from medseg.store.records import SessionMeta

_WRITE_BATCH = 256  # chunks per pipeline round trip when storing an image


class SessionStore:
    """All session-level Redis access. Thread-safe: redis-py clients are.

    The in-process cache holds decoded image chunks; images never change after upload and
    session ids are never reused, so an entry is valid for as long as the session exists
    (which every request checks against Redis first).
    """

    def __init__(self, client: redis.Redis, ttl_s: int, cache_bytes: int = 256 << 20,
                 lock_timeout_s: float = 120.0, lock_wait_s: float = 30.0):
        self.redis = client
        self.ttl_s = ttl_s
        self.lock_timeout_s = lock_timeout_s
        self.lock_wait_s = lock_wait_s
        self._image_cache: LRUCache = LRUCache(maxsize=cache_bytes, getsizeof=lambda a: a.nbytes)
        self._cache_lock = threading.Lock()  # cachetools caches are not thread-safe

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
        self._write_image(keys, volume.array)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(keys.counters, mapping={"revision": 0, "segment": 0})
        if also is not None:
            also(pipe, keys)
        # meta last: a session is visible only once its image is complete
        pipe.set(keys.meta, meta.model_dump_json())
        pipe.sadd(tenant_sessions_key(tenant), session_id)
        self._expire(pipe, keys)
        pipe.execute()
        return meta

    def _write_image(self, keys: SessionKeys, array: np.ndarray) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pending = 0
        for index in chunks.all_chunks(array.shape):
            block = array[chunks.chunk_box(index, array.shape)]
            pipe.hset(keys.image, chunks.chunk_key(index), chunks.encode_array(block))
            pending += 1
            if pending >= _WRITE_BATCH:
                pipe.expire(keys.image, self.ttl_s)
                pipe.execute()
                pending = 0
        pipe.expire(keys.image, self.ttl_s)
        pipe.execute()

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
        pipe.execute()

    def touch(self, session_id: str) -> None:
        """Restart the idle TTL of every key of the session."""
        pipe = self.redis.pipeline(transaction=False)
        self._expire(pipe, SessionKeys(session_id))
        pipe.execute()

    def _expire(self, pipe, keys: SessionKeys) -> None:
        for key in keys.data_keys:
            pipe.expire(key, self.ttl_s)

    def ttl(self, session_id: str) -> int:
        return int(self.redis.ttl(SessionKeys(session_id).meta))

    @contextlib.contextmanager
    def locked(self, session_id: str) -> Iterator[None]:
        """The per-session writer lock (held across read-compute-write of an interaction)."""
        lock = self.redis.lock(SessionKeys(session_id).lock, timeout=self.lock_timeout_s,
                               blocking_timeout=self.lock_wait_s)
        if not lock.acquire():
            raise SessionBusy(f"session {session_id!r} is busy with another change; retry")
        try:
            yield
        finally:
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()

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
