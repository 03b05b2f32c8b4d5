"""The only code that talks to Redis."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from medseg.store.jobs import JobStore
from medseg.store.segments import SegmentStore
from medseg.store.sessions import SessionStore


@dataclass
class Store:
    sessions: SessionStore
    segments: SegmentStore
    jobs: JobStore

    @classmethod
    def connect(cls, url: str, ttl_s: int, cache_bytes: int = 512 << 20,
                job_heartbeat_s: float = 10.0) -> Store:
        client = redis.Redis.from_url(url, socket_timeout=30, health_check_interval=30)
        sessions = SessionStore(client, ttl_s, cache_bytes=cache_bytes // 2)
        return cls(sessions, SegmentStore(sessions, cache_bytes=cache_bytes // 2),
                   JobStore(client, ttl_s, heartbeat_s=job_heartbeat_s))
