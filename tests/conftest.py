"""Shared fixtures: a real Redis server, the app with two tenants, the shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from medseg.api.app import create_app
from medseg.api.auth import hash_key
from medseg.api.settings import Settings
from medseg.store import Store
from medseg.store.embedded import EmbeddedRedis

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDSEG_SHARED_DATA", ROOT.parent / "shared" / "data"))
TOTALSEG = SHARED_DATA / "totalseg"

KEYS = {"alice": "alice-test-key", "bob": "bob-test-key"}
# The suite shares one Redis and keeps its sessions (they expire with the Redis): the tenant
# quotas would refuse uploads halfway through. tests/api/test_quotas.py checks them on its own.
SHARED_REDIS_QUOTAS = {"tenant_max_sessions": 0, "tenant_max_mb": 0}


@pytest.fixture(scope="session")
def totalseg() -> Path:
    if not (TOTALSEG / "ct_3mm.nii.gz").exists():
        pytest.fail(f"shared data not found at {TOTALSEG} (set MEDSEG_SHARED_DATA)")
    return TOTALSEG


@pytest.fixture(scope="session")
def redis_url():
    with EmbeddedRedis() as url:
        yield url


def make_settings(redis_url: str, **overrides) -> Settings:
    entries = ",".join(f"{tenant}:sha256:{hash_key(key)}" for tenant, key in KEYS.items())
    # the test plug-in (job kind `paint`, predictor `slow-test`), as the test workers load it
    values = {"redis_url": redis_url, "api_keys": entries, "session_ttl_s": 3600, "log_json": True,
              "plugins": "tests.jobs.demo_kinds",
              # interactions in the test's own process (an app per test would spawn children);
              # tests/api/test_compute.py and the live servers run them in child processes
              "compute_processes": 0, **SHARED_REDIS_QUOTAS}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(redis_url) -> Settings:
    return make_settings(redis_url)


@pytest.fixture
def store(settings) -> Store:
    return Store.connect(settings.redis_url, settings.session_ttl_s)


@pytest.fixture(scope="session")
def plugins():
    """The built-in methods, predictors, job kinds and models (as the server wires them)."""
    from medseg import builtin

    return builtin.build()


@pytest.fixture
def app(settings, store):
    return create_app(settings, store)


@pytest.fixture
def client(app) -> TestClient:
    with TestClient(app, headers={"X-API-Key": KEYS["alice"]}) as c:
        yield c


@pytest.fixture
def bob(app) -> TestClient:
    with TestClient(app, headers={"X-API-Key": KEYS["bob"]}) as c:
        yield c


@pytest.fixture(scope="session")
def live_server(redis_url):
    """A real API process (uvicorn) on a free port, shared by the HTTP-level tests."""
    from tests.live import api_server

    with api_server(redis_url) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def bombs(tmp_path_factory):
    """The issue-12 decompression bombs, each built once (tests/engine/bombs.py)."""
    from tests.engine.bombs import BombFiles

    return BombFiles(tmp_path_factory.mktemp("bombs"))
