"""Sessions: upload, metadata, listing, tenants, TTL expiry and DELETE purge (real Redis)."""

from __future__ import annotations

import time

import nibabel as nib
import numpy as np
import pytest
from fastapi.testclient import TestClient

from medseg.api.app import create_app
from medseg.store import Store
from medseg.store.keys import SessionKeys, tenant_sessions_key
from tests.api.helpers import new_segment, upload
from tests.conftest import KEYS, make_settings


def session_keys(store: Store, session_id: str) -> list[bytes]:
    return list(store.sessions.redis.scan_iter(match=SessionKeys.pattern(session_id), count=1000))


def test_upload_nifti_keeps_geometry(client, totalseg):
    session = upload(client, totalseg / "ct_3mm.nii.gz", name="abdomen")
    reference = nib.load(totalseg / "ct_3mm.nii.gz")
    assert session["shape"] == list(reference.shape[::-1])
    assert np.allclose(session["affine"], reference.affine)
    assert session["spacing"] == pytest.approx([3.0, 3.0, 3.0])
    assert session["name"] == "abdomen" and session["segments"] == []
    assert 0 < session["expires_in_s"] <= 3600
    listed = client.get("/v1/sessions").json()
    assert session["id"] in [s["id"] for s in listed]


def test_image_is_chunked_so_a_slice_reads_only_its_chunks(client, store, totalseg):
    from medseg.engine.prompts import Box

    session = upload(client, totalseg / "ct_3mm.nii.gz")
    meta = store.sessions.get(session["id"])
    expected = np.asarray(nib.load(totalseg / "ct_3mm.nii.gz").dataobj).transpose(2, 1, 0)
    whole = store.sessions.read_image(meta, Box((0, 0, 0), tuple(s - 1 for s in meta.shape)))
    assert np.array_equal(whole, expected)
    calls = []
    original = store.sessions.redis.hmget
    store.sessions.redis.hmget = lambda key, fields: calls.append(len(fields)) or original(key, fields)
    store.sessions._image_cache.clear()
    region = store.sessions.read_image(meta, Box((12, 10, 10), (12, 40, 40)))
    assert np.array_equal(region, expected[12:13, 10:41, 10:41])
    total_chunks = store.sessions.redis.hlen(SessionKeys(meta.id).image)
    assert calls == [1] and total_chunks > 10  # one chunk of many


def test_delete_purges_every_key(client, store, totalseg):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    new_segment(client, session["id"])
    assert len(session_keys(store, session["id"])) >= 4
    assert client.delete(f"/v1/sessions/{session['id']}").status_code == 204
    assert session_keys(store, session["id"]) == []
    assert not store.sessions.redis.sismember(tenant_sessions_key("alice"), session["id"])
    assert client.get(f"/v1/sessions/{session['id']}").status_code == 404


def test_idle_ttl_expires_every_key(redis_url, totalseg):
    settings = make_settings(redis_url, session_ttl_s=2)
    store = Store.connect(redis_url, settings.session_ttl_s)
    with TestClient(create_app(settings, store), headers={"X-API-Key": KEYS["alice"]}) as c:
        session = upload(c, totalseg / "ct_3mm.nii.gz")
        new_segment(c, session["id"])
        keys = session_keys(store, session["id"])
        assert len(keys) >= 4
        assert all(0 < store.sessions.redis.ttl(k) <= 2 for k in keys)
        time.sleep(1.2)
        assert c.get(f"/v1/sessions/{session['id']}").status_code == 200  # touch: idle restarts
        time.sleep(1.2)
        assert session_keys(store, session["id"]) != []  # still alive thanks to the touch
        time.sleep(2.5)
        assert session_keys(store, session["id"]) == []
        assert c.get(f"/v1/sessions/{session['id']}").status_code == 404
        assert session["id"] not in [s["id"] for s in c.get("/v1/sessions").json()]


def test_other_tenant_cannot_see_change_or_delete(client, bob, totalseg):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    sid = session["id"]
    segment = new_segment(client, sid)
    base = f"/v1/sessions/{sid}"
    for response in (
        bob.get(base),
        bob.get(f"{base}/segments"),
        bob.post(f"{base}/segments", json={"name": "x"}),
        bob.post(f"{base}/segments/{segment['id']}/interactions",
                 json={"type": "click", "clicks": [{"zyx": [15, 50, 60]}]}),
        bob.post(f"{base}/segments/{segment['id']}/undo"),
        bob.get(f"{base}/export"),
        bob.delete(base),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "session_not_found"
    assert sid not in [s["id"] for s in bob.get("/v1/sessions").json()]
    assert client.get(base).status_code == 200
    assert len(client.get(f"{base}/segments").json()) == 1


def test_missing_or_wrong_key_is_401(app):
    with TestClient(app) as anonymous:
        response = anonymous.get("/v1/sessions")
        assert response.status_code == 401 and "API key" in response.json()["message"]
        response = anonymous.get("/v1/sessions", headers={"Authorization": "Bearer nope"})
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"
        assert anonymous.get("/healthz").status_code == 200


def test_dev_mode_must_be_explicit_and_local(redis_url):
    from pydantic import ValidationError

    from medseg.api.settings import Settings

    with pytest.raises(ValidationError, match="no API keys configured"):
        Settings(redis_url=redis_url, api_keys="", dev_mode=False)
    with pytest.raises(ValidationError, match="localhost only"):
        Settings(redis_url=redis_url, api_keys="", dev_mode=True, host="0.0.0.0")
    assert Settings(redis_url=redis_url, api_keys="", dev_mode=True).key_hashes == {}
