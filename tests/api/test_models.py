"""GET /v1/models lists the model cards of the weights folder."""

from __future__ import annotations

from fastapi.testclient import TestClient

from medseg.api.app import create_app
from tests.conftest import KEYS
from tests.models.tiny import write_tiny_model


def test_models_lists_cards_with_provider(settings, store, tmp_path, monkeypatch):
    write_tiny_model(tmp_path, dims=2, encoding="egd")
    (tmp_path / "junk.json").write_text("{}")
    monkeypatch.setenv("MEDSEG_MODELS_DIR", str(tmp_path))  # read when the app is wired
    with TestClient(create_app(settings, store), headers={"X-API-Key": KEYS["alice"]}) as client:
        body = client.get("/v1/models").json()
    [model] = body["models"]
    assert model["name"] == "mideepseg-2d-egd" and model["dims"] == 2
    assert model["input_size"] == [64, 64] and model["encoding"] == "egd"
    assert model["provider"].endswith("ExecutionProvider") and "dice_held_out" in model["metrics"]
    assert "junk.json" in body["problems"]


def test_models_needs_a_key(app):
    with TestClient(app) as anonymous:
        assert anonymous.get("/v1/models").status_code == 401


def test_the_organ_model_lists_the_organs_an_organ_start_takes(client):
    """How a client learns the organs it may ask for (the viewer's organ chooser): the organ
    model's card, served in /v1/models, names them; they are the network's channels and the
    names the `organ` start accepts (an unknown one is a 422: tests/api/test_refinenet_api)."""
    from typing import get_args

    from medseg.api.schemas import Organ
    from medseg.models import refinenet_io

    models = client.get("/v1/models").json()["models"]
    [organ_model] = [m for m in models if m["task"] == "organ"]
    assert organ_model["organs"] == list(refinenet_io.ORGANS) == list(get_args(Organ))
    assert all(m["organs"] == [] for m in models if m["task"] != "organ")
