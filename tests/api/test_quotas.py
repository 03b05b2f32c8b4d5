"""Memory limits: per-tenant quotas (live sessions -> 429, stored bytes -> 507, unfinished jobs
-> 429, each with Retry-After), and a Redis at its `maxmemory` (noeviction) -> 507 that leaves
no half-written session and no half-applied change. A Redis of its own (not the shared test
Redis, whose tenants hold the other tests' sessions), filled for real: nothing is mocked."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import nibabel as nib
import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from medseg.api.app import create_app
from medseg.errors import TooManyJobs
from medseg.jobs import queue
from medseg.store import Store
from medseg.store.embedded import EmbeddedRedis
from medseg.store.keys import SessionKeys
from medseg.store.quotas import BYTES_FIELD, Quotas, session_usage
from tests.conftest import KEYS, make_settings
from tests.polling import poll

TTL_S = 3600


@pytest.fixture(scope="module")
def own_redis() -> Iterator[str]:
    with EmbeddedRedis() as url:
        yield url


@pytest.fixture
def raw(own_redis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(own_redis)
    client.flushall()
    client.config_set("maxmemory", 0)
    yield client
    client.config_set("maxmemory", 0)
    client.close()


def make_client(url: str, quotas: Quotas) -> tuple[TestClient, Store]:
    store = Store.connect(url, TTL_S, quotas=quotas)
    app = create_app(make_settings(url), store)
    return TestClient(app, headers={"X-API-Key": KEYS["alice"]}), store


def nifti(shape=(32, 32, 8), noise: bool = False, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    data = (rng.integers(-1000, 1000, shape) if noise else np.zeros(shape)).astype(np.int16)
    data[8:24, 8:24, 2:6] = 900  # an object a click can find
    return gzip.compress(nib.Nifti1Image(data, np.eye(4)).to_bytes(), mtime=0)


def upload(client: TestClient, content: bytes):
    return client.post("/v1/sessions", files=[("files", ("scan.nii.gz", content))])


def assert_refused(response, status: int, code: str, *words: str) -> int:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    for word in words:
        assert word in body["message"], body["message"]
    retry = int(response.headers["Retry-After"])
    assert retry >= 1
    return retry


def test_live_sessions_per_tenant_are_capped_and_expired_ones_do_not_count(raw, own_redis):
    client, store = make_client(own_redis, Quotas(max_sessions=2))
    with client:
        first, second = (upload(client, nifti()).json() for _ in range(2))
        retry = assert_refused(upload(client, nifti()), 429, "too_many_sessions",
                               "2 live sessions", "delete a session")
        assert retry <= TTL_S  # when the first of them expires
        with TestClient(client.app, headers={"X-API-Key": KEYS["bob"]}) as bob:
            assert upload(bob, nifti()).status_code == 201  # another tenant's quota
        assert client.delete(f"/v1/sessions/{first['id']}").status_code == 204
        third = upload(client, nifti())
        assert third.status_code == 201, third.text
        # Redis expires a session (its idle TTL, forced short): it stops counting
        for key in SessionKeys(second["id"]).data_keys:
            raw.pexpire(key, 1)
        poll(lambda: raw.exists(SessionKeys(second["id"]).meta), lambda n: n == 0, 10,
             "expiry of the session")
        assert upload(client, nifti()).status_code == 201
        assert session_usage(raw, "alice").sessions == 2


def test_stored_bytes_count_image_and_mask_chunks_and_are_capped(raw, own_redis):
    client, store = make_client(own_redis, Quotas(max_bytes=300_000))
    with client:
        session = upload(client, nifti((64, 64, 16), noise=True)).json()  # ~100 KB compressed
        keys = SessionKeys(session["id"])
        image_bytes = sum(raw.hstrlen(keys.image, f) for f in raw.hkeys(keys.image))
        assert int(raw.hget(keys.counters, BYTES_FIELD)) == image_bytes > 50_000
        seg = client.post(f"/v1/sessions/{session['id']}/segments", json={}).json()["id"]
        click = {"type": "click", "dim": "2d", "plane": {"axis": "z", "index": 4},
                 "clicks": [{"zyx": [4, 16, 16]}]}
        url = f"/v1/sessions/{session['id']}/segments/{seg}/interactions"
        assert client.post(url, json=click).status_code == 200
        blob_bytes = sum(raw.hstrlen(keys.blobs, f) for f in raw.hkeys(keys.blobs))
        assert blob_bytes > 0
        assert int(raw.hget(keys.counters, BYTES_FIELD)) == image_bytes + blob_bytes
        big = nifti((64, 64, 40), noise=True, seed=1)  # ~260 KB: with the first, over the quota
        assert_refused(upload(client, big), 507, "tenant_storage_full", "storage quota")
        assert client.delete(f"/v1/sessions/{session['id']}").status_code == 204
        assert upload(client, big).status_code == 201  # deleting frees the quota


def test_unfinished_jobs_per_tenant_are_capped(raw, own_redis, plugins):
    client, store = make_client(own_redis, Quotas(max_jobs=2))
    with client:
        session = upload(client, nifti()).json()
    noop = plugins.job_kinds.get("noop")
    jobs = [queue.submit(store, noop, "alice", session["id"], None, {}, None) for _ in range(2)]
    with pytest.raises(TooManyJobs, match="2 jobs queued or running") as caught:
        queue.submit(store, noop, "alice", session["id"], None, {}, None)
    assert caught.value.retry_after_s >= 1
    queue.submit(store, noop, "bob", session["id"], None, {}, None)  # another tenant's quota
    queue.cancel(store, jobs[0])  # a finished (cancelled) job no longer counts
    queue.submit(store, noop, "alice", session["id"], None, {}, None)


def test_a_full_redis_refuses_an_upload_with_507_and_keeps_no_part_of_it(raw, own_redis):
    client, store = make_client(own_redis, Quotas())
    used = int(raw.info("memory")["used_memory"])
    raw.config_set("maxmemory", used + (1 << 20))  # 1 MiB of room; the image needs ~2.5 MB
    with client:
        response = upload(client, nifti((128, 128, 64), noise=True))
        assert_refused(response, 507, "storage_full", "full")
        assert client.get("/v1/sessions").json() == []
    assert raw.keys("medseg:s:*") == []  # the chunks written before Redis was full are gone


def test_a_full_redis_refuses_a_change_with_507_and_applies_none_of_it(raw, own_redis):
    client, store = make_client(own_redis, Quotas())
    with client:
        session = upload(client, nifti()).json()
        seg = client.post(f"/v1/sessions/{session['id']}/segments", json={}).json()
        url = f"/v1/sessions/{session['id']}/segments/{seg['id']}"
        # Redis over its maxmemory (as after its data grew, or after an operator lowered it)
        raw.config_set("maxmemory", int(raw.info("memory")["used_memory"]) // 2)
        click = {"type": "click", "clicks": [{"zyx": [4, 16, 16]}]}
        assert_refused(client.post(f"{url}/interactions", json=click), 507, "storage_full")
        after = client.get(url).json()
        assert (after["revision"], after["voxels"]) == (seg["revision"], 0)  # nothing applied
        raw.config_set("maxmemory", 0)
        assert client.post(f"{url}/interactions", json=click).status_code == 200
