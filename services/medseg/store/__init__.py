"""The only code that talks to Redis."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from medseg.store.admin import AofCompactor
from medseg.store.jobs import JobStore
from medseg.store.quotas import Quotas
from medseg.store.segments import SegmentStore
from medseg.store.sessions import SessionStore


@dataclass
class Store:
    sessions: SessionStore
    segments: SegmentStore
    jobs: JobStore
    quotas: Quotas = field(default_factory=Quotas)  # per tenant; none unless configured

    @classmethod
    def connect(cls, url: str, ttl_s: int, cache_bytes: int = 512 << 20,
                job_heartbeat_s: float = 10.0, quotas: Quotas | None = None,
                aof_rewrite_delay_s: float | None = None) -> Store:
        """`aof_rewrite_delay_s`: rewrite the append-only file this long after a session is
        deleted (None: never; see AofCompactor)."""
        client = redis.Redis.from_url(url, socket_timeout=30, health_check_interval=30)
        sessions = SessionStore(client, ttl_s, cache_bytes=cache_bytes // 2)
        if aof_rewrite_delay_s is not None:
            sessions.compactor = AofCompactor(client, aof_rewrite_delay_s)
        return cls(sessions, SegmentStore(sessions, cache_bytes=cache_bytes // 2),
                   JobStore(client, ttl_s, heartbeat_s=job_heartbeat_s), quotas or Quotas())
