"""Sessions: upload, metadata, listing, tenants, TTL expiry and DELETE purge (real Redis)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from fastapi.testclient import TestClient

from medseg.store import Store
from medseg.store.keys import SessionKeys, tenant_sessions_key
from tests.api.helpers import new_segment, upload
from tests.polling import poll


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
    store.sessions.redis.hmget = lambda key, fields: (
        calls.append(len(fields)) or original(key, fields)
    )
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


# Redis does the expiring; what our code must do is give every key of a session the idle TTL,
# renew it on every key at every touch, and treat a session whose keys Redis has expired as
# gone. Read back with PTTL and forced with PEXPIRE: no waiting for the wall clock.
SLACK_MS = 60_000  # a TTL read back within a minute of being (re)set is still "full"
LOWERED_MS = 100_000  # far under a full TTL minus the slack: a renewal cannot be mistaken


def ttls_ms(store: Store, session_id: str) -> dict[str, int]:
    redis = store.sessions.redis
    return {
        key.decode().rsplit(":", 1)[1]: redis.pttl(key) for key in session_keys(store, session_id)
    }


def assert_full_ttl(store: Store, session_id: str, after: str) -> None:
    full_ms = store.sessions.ttl_s * 1000
    ttls = ttls_ms(store, session_id)
    assert ttls and all(full_ms - SLACK_MS < ttl <= full_ms for ttl in ttls.values()), (after, ttls)


def test_every_key_gets_the_idle_ttl_and_every_touch_renews_it(client, store, totalseg):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    sid = session["id"]
    segment = new_segment(client, sid)
    base = f"/v1/sessions/{sid}"
    click = {
        "type": "click",
        "dim": "2d",
        "plane": {"axis": "z", "index": 15},
        "clicks": [{"zyx": [15, 50, 40]}],
    }
    assert (
        client.post(f"{base}/segments/{segment['id']}/interactions", json=click).status_code == 200
    )
    # (a) every key the session has by now: metadata, image, segments, revisions, blobs, counters
    assert {"meta", "img", "segs", "revs", "blobs", "ctr"} <= set(ttls_ms(store, sid))
    assert_full_ttl(store, sid, "upload, new segment and a click")
    # (b) each kind of touch, reads and a write, renews the TTL of every key
    touches = {
        "GET the session": lambda: client.get(base),
        "GET a slice": lambda: client.get(f"{base}/slices/z/12"),
        "GET the segments": lambda: client.get(f"{base}/segments"),
        "GET a mask": lambda: client.get(f"{base}/segments/{segment['id']}/mask"),
        "POST a click": lambda: client.post(
            f"{base}/segments/{segment['id']}/interactions",
            json={**click, "clicks": [{"zyx": [15, 60, 50]}]},
        ),
    }
    for touch, request in touches.items():
        for key in session_keys(store, sid):
            store.sessions.redis.pexpire(key, LOWERED_MS)
        assert all(0 < ttl <= LOWERED_MS for ttl in ttls_ms(store, sid).values())
        response = request()
        assert response.status_code == 200, (touch, response.text)
        assert_full_ttl(store, sid, touch)


def test_a_session_redis_has_expired_is_gone(client, store, totalseg):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    sid = session["id"]
    segment = new_segment(client, sid)
    assert sid in [s["id"] for s in client.get("/v1/sessions").json()]
    # (c) let Redis expire every key now, as it would after an idle TTL
    for key in session_keys(store, sid):
        store.sessions.redis.pexpire(key, 1)
    poll(lambda: session_keys(store, sid), lambda keys: keys == [], 10, "expiry of every key")
    for path in (f"/v1/sessions/{sid}", f"/v1/sessions/{sid}/segments/{segment['id']}"):
        response = client.get(path)
        assert response.status_code == 404 and response.json()["error"] == "session_not_found"
    assert sid not in [s["id"] for s in client.get("/v1/sessions").json()]
    # listing forgets it in the tenant's index too
    assert not store.sessions.redis.sismember(tenant_sessions_key("alice"), sid)


def test_a_session_with_a_lost_revision_does_not_hide_the_others(client, store, totalseg):
    """A key Redis lost (eviction) in one session: the listing still answers with the caller's
    other sessions (it answered 404 for all), and that session's own reads say what is gone."""
    healthy = upload(client, totalseg / "ct_3mm.nii.gz")["id"]
    broken = upload(client, totalseg / "ct_3mm.nii.gz")["id"]
    segment = new_segment(client, broken)
    assert store.sessions.redis.delete(SessionKeys(broken).revisions) == 1
    response = client.get("/v1/sessions")
    assert response.status_code == 200
    listed = [s["id"] for s in response.json()]
    assert healthy in listed and broken not in listed
    lost = client.get(f"/v1/sessions/{broken}/segments/{segment['id']}")
    assert lost.status_code == 404 and lost.json()["error"] == "revision_not_found"


def test_other_tenant_cannot_see_change_or_delete(client, bob, totalseg):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    sid = session["id"]
    segment = new_segment(client, sid)
    base = f"/v1/sessions/{sid}"
    for response in (
        bob.get(base),
        bob.get(f"{base}/segments"),
        bob.post(f"{base}/segments", json={"name": "x"}),
        bob.post(
            f"{base}/segments/{segment['id']}/interactions",
            json={"type": "click", "clicks": [{"zyx": [15, 50, 60]}]},
        ),
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
        # the key is checked before the path and body: a caller without one learns nothing
        # about id formats or request schemas from a 422
        for response in (anonymous.get("/v1/sessions/not!an-id"),
                         anonymous.get("/v1/jobs/not!an-id"),
                         anonymous.post("/v1/sessions/not!an-id/segments/x/interactions",
                                        content=b"{not json")):
            assert response.status_code == 401, response.text


def test_dev_mode_must_be_explicit_and_local(redis_url):
    from pydantic import ValidationError

    from medseg.api.settings import Settings

    with pytest.raises(ValidationError, match="no API keys configured"):
        Settings(redis_url=redis_url, api_keys="", dev_mode=False)
    with pytest.raises(ValidationError, match="localhost only"):
        Settings(redis_url=redis_url, api_keys="", dev_mode=True, host="0.0.0.0")
    assert Settings(redis_url=redis_url, api_keys="", dev_mode=True).key_hashes == {}


def test_segment_colours_never_repeat(client, totalseg):
    """The default colours came from a palette of 14 and repeated from segment 15 on; now the
    palette comes first and then generated colours, none equal to an earlier one, and the
    first 40 are at least 40 RGB units apart (told apart by eye)."""
    import itertools
    import math

    session = upload(client, totalseg / "ct_3mm.nii.gz")
    colours = [new_segment(client, session["id"], f"s{i}")["color"] for i in range(40)]
    assert len(set(colours)) == 40, colours
    from medseg.store.colors import PALETTE, segment_color

    assert colours[:14] == PALETTE  # the first ones as before
    rgb = [tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in colours]
    assert min(math.dist(a, b) for a, b in itertools.combinations(rgb, 2)) >= 40
    assert colours == [segment_color(i) for i in range(1, 41)]  # the same in every session
    many = [segment_color(i) for i in range(1, 5001)]
    assert len(set(many)) == len(many)
    assert all(len(c) == 7 and c.startswith("#") for c in many)
    chosen = client.post(f"/v1/sessions/{session['id']}/segments", json={"color": "#123456"})
    assert chosen.json()["color"] == "#123456"  # a colour asked for is kept
