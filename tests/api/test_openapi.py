"""The committed contract in openapi/ must match what the app serves."""

from __future__ import annotations

import json
from pathlib import Path

from medseg.api.openapi_export import render

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_committed_openapi_matches_the_app():
    assert COMMITTED.exists(), "openapi/openapi.json missing: run `make openapi`"
    assert COMMITTED.read_text() == render(), (
        "openapi/openapi.json is out of date with the code: run `make openapi` and commit it")


def test_contract_has_the_v1_resources():
    paths = json.loads(COMMITTED.read_text())["paths"]
    for path in ["/v1/sessions", "/v1/sessions/{session_id}",
                 "/v1/sessions/{session_id}/segments",
                 "/v1/sessions/{session_id}/segments/{segment_id}/interactions",
                 "/v1/sessions/{session_id}/segments/{segment_id}/mask",
                 "/v1/sessions/{session_id}/segments/{segment_id}/delta",
                 "/v1/sessions/{session_id}/segments/{segment_id}/undo",
                 "/v1/sessions/{session_id}/segments/{segment_id}/redo",
                 "/v1/sessions/{session_id}/segments/{segment_id}/history",
                 "/v1/capabilities"]:
        assert path in paths, path


def test_served_openapi_equals_committed(client):
    served = client.get("/openapi.json").json()
    assert served == json.loads(COMMITTED.read_text())
