"""Model registry and onnxruntime sessions: cards, sha256 checks, torch/ONNX agreement."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from medseg.models import runtime
from medseg.models.registry import ModelNotFound, ModelRegistry, default_registry

from tests.models.tiny import write_tiny_model


@pytest.mark.parametrize("dims", [2, 3])
def test_registry_session_reproduces_torch(tmp_path, dims):
    _, model = write_tiny_model(tmp_path, dims=dims, seed=dims)
    loaded = ModelRegistry(tmp_path).get("mideepseg", dims, "egd")
    x = np.random.default_rng(dims).normal(size=(2, 2, *loaded.card.input_size)).astype(np.float32)
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(x)), dim=1)[:, 1].numpy()
    got = loaded.predict(x)
    assert got.shape == expected.shape == (2, *loaded.card.input_size)
    assert np.abs(got - expected).max() < 1e-4
    assert loaded.provider in runtime.preferred_providers()


def test_missing_model_names_the_available_ones(tmp_path):
    write_tiny_model(tmp_path, dims=2, encoding="egd")
    registry = ModelRegistry(tmp_path)
    with pytest.raises(ModelNotFound, match=r"gaussian.*available: mideepseg-2d-egd \(2D, egd\)"):
        registry.get("mideepseg", 2, "gaussian")
    with pytest.raises(ModelNotFound, match="available: none"):
        ModelRegistry(tmp_path / "empty").get("mideepseg", 3, "egd")


def test_tampered_file_is_refused_and_bad_cards_are_reported(tmp_path):
    path, _ = write_tiny_model(tmp_path, dims=2)
    path.write_bytes(path.read_bytes() + b"\0")
    (tmp_path / "broken.json").write_text(json.dumps({"name": "x"}))
    registry = ModelRegistry(tmp_path)
    with pytest.raises(ModelNotFound, match="sha256"):
        registry.get("mideepseg", 2, "egd")
    assert "broken.json" in registry.problems and len(registry.cards) == 1


def test_input_shape_is_checked(tmp_path):
    write_tiny_model(tmp_path, dims=2)
    with pytest.raises(ValueError, match=r"takes \(N, 2, 64, 64\)"):
        ModelRegistry(tmp_path).get("mideepseg", 2, "egd").predict(np.zeros((1, 2, 32, 32)))


def test_models_dir_override(tmp_path, monkeypatch):
    write_tiny_model(tmp_path, dims=2, encoding="gaussian")
    monkeypatch.setenv("MEDSEG_MODELS_DIR", str(tmp_path))
    assert [c.name for c in default_registry().available()] == ["mideepseg-2d-gaussian"]


def test_foreground_probability_is_the_softmax_channel_1():
    logits = np.random.default_rng(0).normal(size=(3, 2, 5, 5)).astype(np.float32) * 30
    expected = torch.softmax(torch.from_numpy(logits), dim=1)[:, 1].numpy()
    assert np.allclose(runtime.foreground_probability(logits), expected, atol=1e-6)
