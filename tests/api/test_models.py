"""GET /v1/models lists the model cards of the weights folder."""

from __future__ import annotations

from tests.models.tiny import write_tiny_model


def test_models_lists_cards_with_provider(client, tmp_path, monkeypatch):
    write_tiny_model(tmp_path, dims=2, encoding="egd")
    (tmp_path / "junk.json").write_text("{}")
    monkeypatch.setenv("MEDSEG_MODELS_DIR", str(tmp_path))
    body = client.get("/v1/models").json()
    [model] = body["models"]
    assert model["name"] == "mideepseg-2d-egd" and model["dims"] == 2
    assert model["input_size"] == [64, 64] and model["encoding"] == "egd"
    assert model["provider"].endswith("ExecutionProvider") and "dice_held_out" in model["metrics"]
    assert "junk.json" in body["problems"]


def test_models_needs_a_key(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as anonymous:
        assert anonymous.get("/v1/models").status_code == 401
