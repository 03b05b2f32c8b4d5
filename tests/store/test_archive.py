"""Sessions that outlive a coffee break, with a real Redis and a real job worker whose sweeper
archives: a session with a short TTL is archived before it expires (0600, no file names),
vanishes from Redis, and its owner restores it whole (masks, history, redo) under its own id;
another tenant cannot. Keep-alive extends the expiry; a deleted session's archive goes too."""

from __future__ import annotations

import stat

import pytest
import redis
import zstandard
from fastapi.testclient import TestClient

from medseg.api.app import create_app
from medseg.store import Store, archive
from medseg.store.embedded import EmbeddedRedis
from medseg.store.keys import EXPIRY_INDEX, SessionKeys
from medseg_client.client import Client
from tests.api.helpers import full_mask, new_segment, upload
from tests.conftest import KEYS, make_settings
from tests.live import job_worker
from tests.polling import poll

TTL_S = 6
SECRET_NAME = "Doe^Jane-ct-3mm-upload"


@pytest.fixture(scope="module")
def own_redis():
    with EmbeddedRedis() as url:  # its own: the sweeper sees only this module's sessions
        yield url


@pytest.fixture
def archive_dir(tmp_path):
    return tmp_path / "archive"


@pytest.fixture
def clients(own_redis, archive_dir):
    settings = make_settings(own_redis, session_ttl_s=TTL_S, archive_dir=archive_dir)
    app = create_app(settings, Store.connect(own_redis, TTL_S))
    with TestClient(app, headers={"X-API-Key": KEYS["alice"]}) as alice, \
            TestClient(app, headers={"X-API-Key": KEYS["bob"]}) as bob:
        yield alice, bob


def _clicked_session(client, totalseg):
    session = upload(client, totalseg / "ct_3mm.nii.gz", name=SECRET_NAME)
    segment = new_segment(client, session["id"])
    url = f"/v1/sessions/{session['id']}/segments/{segment['id']}"
    for zyx in ([15, 50, 40], [15, 60, 45]):
        answer = client.post(f"{url}/interactions", json={
            "type": "click", "dim": "2d", "plane": {"axis": "z", "index": 15},
            "clicks": [{"zyx": zyx}]})
        assert answer.status_code == 200, answer.text
    assert client.post(f"{url}/undo").status_code == 200
    return session, segment, url


def test_archive_before_expiry_and_restore_by_the_owner_only(clients, own_redis, archive_dir,
                                                            totalseg):
    alice, bob = clients
    # a real worker's sweeper: everything expiring within 60 s is due, a pass every 0.1 s; it
    # runs before the session exists, so the session never waits for a slow worker start
    with job_worker(own_redis, MEDSEG_ARCHIVE_DIR=str(archive_dir), MEDSEG_ARCHIVE_LEAD_S="60",
                    MEDSEG_ARCHIVE_SWEEP_S="0.1", MEDSEG_SESSION_TTL_S=str(TTL_S)), \
            redis.Redis.from_url(own_redis) as connection:
        session, segment, url = _clicked_session(alice, totalseg)
        sid = session["id"]
        assert session["expires_at"] and 0 < session["expires_in_s"] <= TTL_S
        kept = alice.post(f"/v1/sessions/{sid}/keepalive")
        assert kept.status_code == 200 and kept.json()["archived"] is True
        assert 0 < kept.json()["expires_in_s"] <= TTL_S
        assert bob.post(f"/v1/sessions/{sid}/keepalive").status_code == 404
        mask = full_mask(alice, sid, segment["id"])
        history = alice.get(f"{url}/history").json()  # the last request: nothing touches it now
        path = archive.archive_path(archive_dir, "alice", sid)
        keys = SessionKeys(sid)
        # archived for the expiry the last request set (every touch made a later one)
        poll(lambda: (connection.hget(keys.counters, archive.ARCHIVED_FIELD),
                      connection.zscore(EXPIRY_INDEX, sid)),
             lambda a: a[0] is not None and a[1] is not None and int(a[0]) == int(a[1]), 30,
             "the session's archive for its last expiry")
        assert path.exists()
        # then the session expires by its idle TTL (not read through the API: no touch)
        poll(lambda: connection.exists(keys.meta), lambda n: n == 0, 30, "the session's expiry")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    raw = path.read_bytes()
    content = raw + _body(raw)
    for name in (SECRET_NAME.encode(), b"ct_3mm", b"nii.gz"):
        assert name not in content, name  # no file names, in the header or the body
    assert alice.get(f"/v1/sessions/{sid}").status_code == 404
    listed = alice.get("/v1/sessions/archived").json()
    assert [a["session_id"] for a in listed] == [sid] and listed[0]["segments"] == 1
    assert bob.get("/v1/sessions/archived").json() == []
    # another tenant cannot restore it (nor learn that it exists)
    refused = bob.post("/v1/sessions/restore", json={"session_id": sid})
    assert refused.status_code == 404 and refused.json()["error"] == "session_not_found"
    restored = alice.post("/v1/sessions/restore", json={"session_id": sid})
    assert restored.status_code == 200, restored.text
    assert restored.json()["id"] == sid and restored.json()["name"] is None
    assert (full_mask(alice, sid, segment["id"]) == mask).all()
    assert alice.get(f"{url}/history").json() == history
    assert alice.post(f"{url}/redo").status_code == 200  # the undone click came back too
    assert not path.exists()  # live again: no archive until it nears expiry again
    again = alice.post("/v1/sessions/restore", json={"session_id": sid})
    assert again.status_code == 409 and again.json()["error"] == "session_live"
    assert alice.delete(f"/v1/sessions/{sid}").status_code == 204


def _body(raw: bytes) -> bytes:
    """The archive's compressed records, decompressed."""
    header_end = len(archive.MAGIC) + 4 + int.from_bytes(raw[len(archive.MAGIC):][:4], "big")
    return zstandard.ZstdDecompressor().stream_reader(raw[header_end:]).read()


def test_sweep_once_per_expiry_and_delete_removes_the_archive(clients, own_redis, archive_dir,
                                                              totalseg):
    alice, _ = clients
    session, _, _ = _clicked_session(alice, totalseg)
    sid = session["id"]
    client = Store.connect(own_redis, TTL_S).sessions.redis
    first = archive.sweep(client, archive_dir, lead_s=60, retention_s=3600)
    assert sid in first.archived
    assert sid not in archive.sweep(client, archive_dir, 60, 3600).archived  # same expiry
    alice.post(f"/v1/sessions/{sid}/keepalive")  # used again: a later expiry
    assert sid in archive.sweep(client, archive_dir, 60, 3600).archived
    path = archive.archive_path(archive_dir, "alice", sid)
    assert path.exists()
    assert alice.delete(f"/v1/sessions/{sid}").status_code == 204
    assert not path.exists()  # deleted means gone, from the archive too
    # past its retention an archive is deleted by the sweep
    other, _, _ = _clicked_session(alice, totalseg)
    archive.sweep(client, archive_dir, 60, 3600)
    kept = archive.archive_path(archive_dir, "alice", other["id"])
    assert kept.exists() and archive.sweep(client, archive_dir, 60, -1).pruned >= 1
    assert not kept.exists()


def test_no_archive_configured_is_a_clear_404(own_redis):
    app = create_app(make_settings(own_redis), Store.connect(own_redis, 60))
    with TestClient(app, headers={"X-API-Key": KEYS["alice"]}) as alice:
        for answer in (alice.post("/v1/sessions/restore", json={"session_id": "0" * 32}),
                       alice.get("/v1/sessions/archived")):
            # not a missing session: the code says archiving is off, the message how to enable it
            assert answer.status_code == 404, answer.text
            assert answer.json()["error"] == "archive_not_configured"
            assert "MEDSEG_ARCHIVE_DIR" in answer.json()["message"]
        assert alice.post("/v1/sessions/restore", json={"session_id": "x"}).status_code == 422


def test_sdk_keepalive_list_and_restore(clients, own_redis, archive_dir, totalseg):
    alice, _ = clients
    session, segment, _ = _clicked_session(alice, totalseg)
    sid = session["id"]
    # the SDK over the app's own transport (the same requests as over the network)
    with Client("http://testserver", api_key=KEYS["alice"], transport=alice._transport) as sdk, \
            redis.Redis.from_url(own_redis) as connection:
        kept = sdk.keepalive(sid)
        assert kept["archived"] and kept["expires_in_s"] > 0
        assert sid in archive.sweep(connection, archive_dir, 60, 3600).archived
        poll(lambda: connection.exists(SessionKeys(sid).meta), lambda n: n == 0, 30,
             "the session's expiry")
        assert [a["session_id"] for a in sdk.archived_sessions()] == [sid]
        restored = sdk.restore_session(sid)
        assert restored.id == sid and [s.id for s in restored.segments] == [segment["id"]]
        assert restored.expires_at is not None
        sdk.delete_session(sid)
