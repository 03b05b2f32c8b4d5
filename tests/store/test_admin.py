"""A Redis the service is given is checked for eviction at start-up; the AOF rewrite after a
delete only runs where there is an append-only file (see tests/test_embedded_redis.py for the
rewrite itself)."""

from __future__ import annotations

import redis

from medseg.main import warn_if_evicting
from medseg.store.admin import AofCompactor, eviction_warning
from tests.polling import poll


def test_an_evicting_redis_is_named_at_start_up(redis_url, capsys):
    client = redis.Redis.from_url(redis_url)
    assert eviction_warning(client) is None  # the embedded one never evicts
    try:
        for policy in ("allkeys-lru", "volatile-ttl"):  # volatile-*: every session key has a TTL
            client.config_set("maxmemory-policy", policy)
            assert policy in (eviction_warning(client) or "")
            warn_if_evicting(redis_url)
            out = capsys.readouterr().out
            assert "WARNING" in out and policy in out and "noeviction" in out
            assert redis.connection.parse_url(redis_url)["password"] not in out
    finally:
        client.config_set("maxmemory-policy", "noeviction")


def test_without_an_append_only_file_no_rewrite_is_asked(redis_url):
    client = redis.Redis.from_url(redis_url)
    assert client.config_get("appendonly")["appendonly"] == "no"
    compactor = AofCompactor(client, delay_s=0.01)
    compactor.request()
    poll(lambda: compactor._aof, lambda aof: aof is not None, 10, "the delayed check")
    assert compactor._aof is False and compactor.rewrites == 0
