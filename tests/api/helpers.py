"""Small helpers for API tests: upload files, follow deltas, compare with references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from medseg_protocol import codec


def upload(client: TestClient, *paths: Path, name: str | None = None) -> dict:
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in paths]
    response = client.post("/v1/sessions", files=files, data={"name": name} if name else None)
    assert response.status_code == 201, response.text
    return response.json()


def new_segment(client: TestClient, session_id: str, name: str = "organ") -> dict:
    response = client.post(f"/v1/sessions/{session_id}/segments", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()


def full_mask(client: TestClient, session_id: str, segment_id: int,
              revision: int | None = None) -> np.ndarray:
    params = {} if revision is None else {"revision": revision}
    response = client.get(f"/v1/sessions/{session_id}/segments/{segment_id}/mask", params=params)
    assert response.status_code == 200, response.text
    return codec.decode_mask(response.json())


