"""Health, readiness, metrics with per-stage histograms, capabilities, request ids."""

from __future__ import annotations

from fastapi.testclient import TestClient

from medseg.api.app import create_app
from medseg.store import Store
from tests.conftest import KEYS, make_settings


def test_health_ready_and_request_id(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    response = client.get("/readyz", headers={"X-Request-ID": "abc123"})
    assert response.status_code == 200 and response.json()["redis"] == "ok"
    assert response.headers["X-Request-ID"] == "abc123"


def test_readyz_is_503_when_redis_is_unreachable(redis_url):
    from medseg.store.embedded import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = create_app(make_settings(dead), Store.connect(dead, 60))
    with TestClient(app, headers={"X-API-Key": KEYS["alice"]}) as c:
        assert c.get("/readyz").status_code == 503
        response = c.get("/v1/sessions")
        assert response.status_code == 503 and response.json()["error"] == "store_unavailable"


def test_capabilities_describe_methods_and_limits(client, settings):
    caps = client.get("/v1/capabilities").json()
    assert set(caps["interaction_types"]) >= {"click", "scribble", "box"}
    method = next(m for m in caps["methods"] if m["name"] == caps["default_method"])
    assert set(method["dims"]) == {"2d", "3d"} and "sigma" in method["params"]
    assert caps["delta_encodings"] == ["rle-xor/1"]
    assert caps["limits"]["max_upload_bytes"] == settings.max_upload_bytes
    assert caps["auth"] == "api-key"


def test_metrics_expose_stage_histograms(client, totalseg):
    from tests.api.helpers import new_segment, upload

    session = upload(client, totalseg / "ct_3mm.nii.gz")
    segment = new_segment(client, session["id"])
    url = f"/v1/sessions/{session['id']}/segments/{segment['id']}/interactions"
    assert (
        client.post(url, json={"type": "click", "clicks": [{"zyx": [15, 50, 40]}]}).status_code
        == 200
    )
    text = client.get("/metrics").text
    for stage in ("load", "compute", "encode"):
        assert f'medseg_stage_seconds_count{{operation="interaction",stage="{stage}"}}' in text
    assert "medseg_request_seconds_bucket" in text
