"""Redis administration the service does for itself: rewriting deleted sessions out of the
append-only file, and checking that a Redis it is given does not evict sessions."""

from __future__ import annotations

import threading

import redis
import structlog

from medseg.store.keys import text

log = structlog.get_logger("medseg.store")

IN_PROGRESS = "already in progress"


class AofCompactor:
    """Rewrites the append-only file (BGREWRITEAOF) `delay_s` after a session was deleted, so
    the deleted session's data leaves the disk: until the rewrite, the AOF still holds every
    command that wrote it.

    Debounced: deletes within `delay_s` of the first share one rewrite. A rewrite already
    running (started before the delete, so it may hold the session) is followed by another
    `delay_s` later. Without AOF (`appendonly no`, or CONFIG not allowed) it does nothing. So a
    deleted session is gone from the disk `delay_s` plus one rewrite after its delete (plus
    `delay_s` per rewrite that was already running); a rewrite of a few GB takes seconds."""

    def __init__(self, client: redis.Redis, delay_s: float = 5.0):
        self.redis, self.delay_s = client, delay_s
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._aof: bool | None = None
        self.rewrites = 0  # rewrites started (for tests and logs)

    def request(self) -> None:
        with self._lock:
            if self._timer is not None:
                return
            self._timer = threading.Timer(self.delay_s, self._run)
            self._timer.daemon = True
            self._timer.start()

    def _uses_aof(self) -> bool:
        if self._aof is None:
            try:
                answer = self.redis.config_get("appendonly")
                self._aof = text(answer.get("appendonly") or "no") == "yes"
            except redis.RedisError:  # CONFIG disabled (managed Redis): its operator's call
                self._aof = False
        return self._aof

    def _run(self) -> None:
        with self._lock:
            self._timer = None
        try:
            if not self._uses_aof():
                return
            self.redis.bgrewriteaof()
            self.rewrites += 1
        except redis.ResponseError as exc:
            if IN_PROGRESS in str(exc):
                self.request()  # that rewrite may predate the delete: one more after it
            else:
                log.warning("aof_rewrite_failed", error=str(exc))
        except redis.RedisError as exc:
            log.warning("aof_rewrite_failed", error=type(exc).__name__)

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


def eviction_warning(client: redis.Redis) -> str | None:
    """Why this Redis may lose sessions silently (it evicts keys when full: every session key
    has a TTL, so even the volatile-* policies take sessions), or None when it does not."""
    try:
        policy = text(client.config_get("maxmemory-policy").get("maxmemory-policy") or "")
    except redis.RedisError as exc:
        return (f"could not read the Redis maxmemory-policy ({type(exc).__name__}); make sure it "
                "is noeviction, or sessions can vanish when Redis is full")
    if policy and policy != "noeviction":
        return (f"Redis evicts keys when full (maxmemory-policy {policy}): sessions can vanish "
                "silently; set maxmemory-policy noeviction (the API then answers 507 when full)")
    return None
