"""Nobody let in who does not belong, nothing lost: every session and job route is the owning
tenant's only, and the holes a review found stay closed (an unbounded metric label, label
values past the export's range, a restore around the tenant quota, encoded paths through the
OHIF proxy, an event id Redis refuses). Real Redis, real HTTP servers."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from fastapi.testclient import TestClient

from medseg.api.app import create_app
from medseg.jobs import queue
from medseg.store import Store, archive
from medseg.store.embedded import EmbeddedRedis
from medseg.store.keys import SessionKeys
from medseg.store.quotas import Quotas
from tests.api.helpers import new_segment, upload
from tests.conftest import KEYS, make_settings
from tests.jobs.demo_kinds import PAINT
from tests.jobs.helpers import submit_paint
from tests.live import api_server
from tests.polling import poll

# what a placeholder of a route's path is filled with (the ids are replaced per test)
PLACEHOLDERS = {"{axis}": "z", "{index}": "3", "{revision}": "2"}


def _filled(path: str, session_id: str, segment_id: int, job_id: str) -> str:
    path = (path.replace("{session_id}", session_id).replace("{segment_id}", str(segment_id))
            .replace("{job_id}", job_id))
    for placeholder, value in PLACEHOLDERS.items():
        path = path.replace(placeholder, value)
    assert "{" not in path, f"a placeholder this test does not know: {path}"
    return path


def test_every_route_of_a_session_or_job_is_its_tenants_only(app, client, bob, store, totalseg):
    """Every route of the contract that names a session or a job, with every method: another
    tenant gets 404 (existence is not disclosed), a caller without a key 401; and the owner's
    session is unchanged afterwards (nothing another tenant sent was applied)."""
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    sid, segment = session["id"], new_segment(client, session["id"])
    job = submit_paint(store, session, segment, steps=1, step_s=0)
    paths = app.openapi()["paths"]
    checked = 0
    with TestClient(app) as anonymous:
        for path, operations in paths.items():
            if "{session_id}" not in path and "{job_id}" not in path:
                continue
            url = _filled(path, sid, segment["id"], job.id)
            for method in operations:
                body = {"json": {}} if method in ("post", "put", "patch") else {}
                answer = bob.request(method.upper(), url, **body)
                assert answer.status_code == 404, (method, path, answer.text)
                assert answer.json()["error"] in ("session_not_found", "job_not_found")
                assert anonymous.request(method.upper(), url, **body).status_code == 401
                checked += 1
    assert checked >= 30  # the sweep really covered the routes
    # bob's session list, archive list and PACS list show nothing of alice's
    assert bob.get("/v1/sessions").json() == []
    assert client.get(f"/v1/sessions/{sid}").status_code == 200
    kept = client.get(f"/v1/sessions/{sid}/segments/{segment['id']}").json()
    assert kept["revision"] == segment["revision"] and kept["name"] == segment["name"]
    assert client.get(f"/v1/jobs/{job.id}").json()["cancel_requested"] is False


def test_unknown_http_methods_do_not_grow_the_metrics(client):
    """HTTP allows any token as a method: without a key, each new one would be a new series in
    every API process's memory and every /metrics scrape."""
    for n in range(3):
        client.request(f"PROBE{n}XYZ", "/healthz")
    scraped = client.get("/metrics").text
    assert "PROBE0XYZ" not in scraped and "PROBE2XYZ" not in scraped
    assert 'method="other"' in scraped


def test_labels_past_the_export_range_never_break_the_session(client, totalseg):
    """A segment labelled 65535 (the uint16 export's largest value), then a segment made
    without a label (created, imported or copied): it gets a free label, and the export of the
    label map still works."""
    sid = upload(client, totalseg / "ct_3mm.nii.gz")["id"]
    top = client.post(f"/v1/sessions/{sid}/segments", json={"label": 65535})
    assert top.status_code == 201, top.text
    made = client.post(f"/v1/sessions/{sid}/segments", json={})
    copied = client.post(f"/v1/sessions/{sid}/segments/{top.json()['id']}/copy")
    assert made.status_code == 201 and copied.status_code == 201, (made.text, copied.text)
    labels = {top.json()["label"], made.json()["label"], copied.json()["label"]}
    assert len(labels) == 3 and max(labels) == 65535 and min(labels) >= 1
    exported = client.get(f"/v1/sessions/{sid}/export")
    assert exported.status_code == 200, exported.text


@pytest.fixture(scope="module")
def own_redis():
    with EmbeddedRedis() as url:  # its own: the tenant's session count is this module's only
        yield url


def test_a_restore_counts_against_the_tenants_session_quota(own_redis, tmp_path, totalseg):
    """A restored session is a live session like an upload: at the quota, 429, and the archive
    is kept (nothing lost); once a place is free the restore succeeds."""
    directory = tmp_path / "archive"
    settings = make_settings(own_redis, archive_dir=directory)
    store = Store.connect(own_redis, settings.session_ttl_s, quotas=Quotas(max_sessions=1))
    with TestClient(create_app(settings, store), headers={"X-API-Key": KEYS["alice"]}) as alice:
        archived = upload(alice, totalseg / "ct_3mm.nii.gz")["id"]
        path = archive.archive(store.sessions.redis, archived, directory)
        assert path is not None and path.exists()
        store.sessions.redis.unlink(*SessionKeys(archived).data_keys)  # expired, as by its TTL
        live = upload(alice, totalseg / "ct_3mm.nii.gz")["id"]  # the one place the quota has
        refused = alice.post("/v1/sessions/restore", json={"session_id": archived})
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == "too_many_sessions" and "Retry-After" in refused.headers
        assert path.exists() and alice.get(f"/v1/sessions/{archived}").status_code == 404
        assert alice.delete(f"/v1/sessions/{live}").status_code == 204
        restored = alice.post("/v1/sessions/restore", json={"session_id": archived})
        assert restored.status_code == 200, restored.text
        assert [s["id"] for s in alice.get("/v1/sessions").json()] == [archived]
        # another tenant learns nothing of a live session from a restore: 404, as for none
        with TestClient(create_app(settings, store), headers={"X-API-Key": KEYS["bob"]}) as bob:
            probe = bob.post("/v1/sessions/restore", json={"session_id": archived})
        assert probe.status_code == 404 and probe.json()["error"] == "session_not_found"
        again = alice.post("/v1/sessions/restore", json={"session_id": archived})
        assert again.status_code == 409 and again.json()["error"] == "session_live"


class _Archive(BaseHTTPRequestHandler):
    """A DICOMweb archive that answers every GET with an empty JSON list and records the path
    it was asked for."""

    asked: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).asked.append(self.path)
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def archive_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Archive)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Archive.asked = []
    yield f"http://127.0.0.1:{server.server_address[1]}/dicom-web", _Archive.asked
    server.shutdown()
    server.server_close()


def test_the_ohif_proxy_passes_on_dicomweb_reads_only(redis_url, tmp_path, archive_server):
    """The proxy adds the server's credentials for the archive: a path it passes on must stay
    under studies/ once the archive decodes it too. A twice-encoded ".." ("%252E%252E", which
    reaches the archive as "%2E%2E") or an encoded "?" is refused before anything is sent."""
    url, asked = archive_server
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("<html></html>")
    pacs = json.dumps({"main": {"url": url, "tenants": ["alice"],
                                "auth": {"type": "bearer", "token": "archive-secret"}}})
    settings = make_settings(redis_url, ohif_dir=dist, pacs=pacs)
    with TestClient(create_app(settings), headers={"X-API-Key": KEYS["alice"]}) as alice:
        read = alice.get("/ohif/dicom-web/main/studies/1.2.3/series", params={"limit": "5"})
        assert read.status_code == 200 and read.json() == []
        assert asked == ["/dicom-web/studies/1.2.3/series?limit=5"]
        for path in ("studies/%252E%252E/%252E%252E/system", "studies/1.2/%252e%252e/tools",
                     "studies/%2E%2E/%2E%2E/system", "studies%3F/../system",
                     "studies/1.2%3Fx=1", "studies/1.2%23x", "studiesX/1.2", "instances"):
            refused = alice.get(f"/ohif/dicom-web/main/{path}")
            assert refused.status_code == 404, (path, refused.status_code)
        assert asked == ["/dicom-web/studies/1.2.3/series?limit=5"]  # nothing more was sent


def test_an_event_id_that_is_not_one_is_a_422(client, store, totalseg):
    """Last-Event-ID goes to Redis's XREAD: one it refuses failed the stream after its 200."""
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    job = submit_paint(store, session, new_segment(client, session["id"]), steps=1, step_s=0)
    for bad in ("abc", "1-2-3", "-1", "1" * 30):
        answer = client.get(f"/v1/jobs/{job.id}/events", headers={"Last-Event-ID": bad})
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.json()["error"] == "validation_error"
    # a well-formed id resumes as before: the job's first event is after the stream's start
    with client.stream("GET", f"/v1/jobs/{job.id}/events",
                       headers={"Last-Event-ID": "0-0"}) as answer:
        assert answer.status_code == 200
        first = next(line for line in answer.iter_lines() if line.startswith("event:"))
    assert first == "event: state"


def test_a_mask_import_gets_the_configured_decode_budget(redis_url, store, totalseg):
    """MEDSEG_MAX_EXPANSION_RATIO and MEDSEG_EXPANSION_ALLOWANCE_MB hold for every file the
    service decodes: a mask import (or a PACS pull) is no way around a stricter budget."""
    strict = make_settings(redis_url, max_expansion_ratio=1, expansion_allowance_mb=0)
    with TestClient(create_app(strict, store), headers={"X-API-Key": KEYS["alice"]}) as alice, \
            TestClient(create_app(make_settings(redis_url), store),
                       headers={"X-API-Key": KEYS["alice"]}) as usual:
        sid = upload(usual, totalseg / "ct_3mm.nii.gz")["id"]
        mask = totalseg / "ct_3mm_seg.nii.gz"  # a label map: it compresses far more than 1:1
        refused = alice.post(f"/v1/sessions/{sid}/segments/import", params={"labels": 5},
                             files={"file": (mask.name, mask.read_bytes())})
        assert refused.status_code == 413, refused.text
        assert refused.json()["error"] == "image_too_large"
        assert alice.get(f"/v1/sessions/{sid}/segments").json() == []  # nothing half-imported
        imported = usual.post(f"/v1/sessions/{sid}/segments/import", params={"labels": 5},
                              files={"file": (mask.name, mask.read_bytes())})
        assert imported.status_code == 201, imported.text


def test_a_tenant_follows_a_bounded_number_of_event_streams(redis_url, store, totalseg):
    """Each open event stream holds a Redis connection blocked in XREAD, and Redis serves a
    bounded number of clients to every tenant: past MEDSEG_TENANT_MAX_STREAMS a tenant's next
    stream is a 429 (another tenant's is not), and a place comes back when a stream closes.
    A real API process: a stream of a job that has not ended stays open."""
    with api_server(redis_url, MEDSEG_TENANT_MAX_STREAMS="2", MEDSEG_RUN_WORKER="0") as url, \
            httpx.Client(base_url=url, headers={"X-API-Key": KEYS["alice"]}) as alice, \
            httpx.Client(base_url=url, headers={"X-API-Key": KEYS["bob"]}) as bob:
        def a_job(client: httpx.Client, tenant: str) -> str:
            files = {"files": ("ct.nii.gz", (totalseg / "ct_3mm.nii.gz").read_bytes())}
            session = client.post("/v1/sessions", files=files).json()
            segment = client.post(f"/v1/sessions/{session['id']}/segments", json={}).json()
            return queue.submit(store, PAINT, tenant, session["id"], segment["id"],
                                {"steps": 1}, segment["revision"]).id

        job, bobs = a_job(alice, "alice"), a_job(bob, "bob")
        timeout = httpx.Timeout(30.0, read=None)
        with alice.stream("GET", f"/v1/jobs/{job}/events", timeout=timeout) as first, \
                alice.stream("GET", f"/v1/jobs/{job}/events", timeout=timeout) as second:
            assert first.status_code == 200 and second.status_code == 200
            third = alice.get(f"/v1/jobs/{job}/events")
            assert third.status_code == 429, third.text
            assert third.json()["error"] == "too_many_streams" and third.headers["Retry-After"]
            with bob.stream("GET", f"/v1/jobs/{bobs}/events", timeout=timeout) as bobs_stream:
                assert bobs_stream.status_code == 200  # another tenant's place is its own
        for job_id, client in ((job, alice), (bobs, bob)):  # end the streams: the jobs end
            assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200

        def reopened() -> int:
            with alice.stream("GET", f"/v1/jobs/{job}/events", timeout=timeout) as again:
                list(again.iter_lines())  # the cancelled job's events, to its end
                return again.status_code
        poll(reopened, lambda status: status == 200, 30, "a stream place given back")
