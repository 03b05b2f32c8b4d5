"""The model loader: cards, sha256 checks, companion files, sessions agreeing with torch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medseg.errors import ModelUnavailable
from medseg.models import loader as models
from medseg.models.loader import ModelLoader, default_loader
from tests.models.tiny import write_tiny_model, write_tiny_pcnet


@pytest.mark.parametrize("dims", [2, 3])
def test_loaded_session_reproduces_torch(tmp_path, dims):
    _, model = write_tiny_model(tmp_path, dims=dims, seed=dims)
    loader = ModelLoader(tmp_path)
    loaded = loader.load(loader.find("mideepseg", dims, "egd"))
    x = np.random.default_rng(dims).normal(size=(2, 2, *loaded.card.input_size)).astype(np.float32)
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(x)), dim=1)[:, 1].numpy()
    got = loaded.predict(x)
    assert got.shape == expected.shape == (2, *loaded.card.input_size)
    assert np.abs(got - expected).max() < 1e-4
    assert loaded.provider == loader.provider(loaded.card) == models.preferred_providers()[0]


def test_missing_model_names_the_available_ones(tmp_path):
    write_tiny_model(tmp_path, dims=2, encoding="egd")
    loader = ModelLoader(tmp_path)
    with pytest.raises(
        ModelUnavailable, match=r"gaussian.*available: mideepseg-2d-egd \(2D, egd\)"
    ):
        loader.find("mideepseg", 2, "gaussian")
    with pytest.raises(ModelUnavailable, match="available: none"):
        ModelLoader(tmp_path / "empty").find("mideepseg", 3, "egd")


def test_tampered_files_are_refused_and_bad_cards_are_reported(tmp_path):
    path, _ = write_tiny_model(tmp_path, dims=2)
    path.write_bytes(path.read_bytes() + b"\0")
    (tmp_path / "broken.json").write_text(json.dumps({"name": "x"}))
    loader = ModelLoader(tmp_path)
    with pytest.raises(ModelUnavailable, match="sha256"):
        loader.load(loader.find("mideepseg", 2, "egd"))
    assert "broken.json" in loader.problems and len(loader.cards) == 1


def test_companion_files_are_verified_too(tmp_path):
    write_tiny_pcnet(tmp_path)
    loader = ModelLoader(tmp_path)
    card = loader.find("bifseg", 3)
    assert loader.companion(card, "block6_weights")[:2] == b"PK"  # an .npz (zip) blob
    with pytest.raises(ModelUnavailable, match="no 'nope' file"):
        loader.companion(card, "nope")
    npz = tmp_path / "pcnet-3d.block6.npz"
    npz.write_bytes(npz.read_bytes() + b"\0")
    with pytest.raises(ModelUnavailable, match="pcnet-3d.block6.npz does not match"):
        ModelLoader(tmp_path).companion(card, "block6_weights")


def test_input_shape_is_checked(tmp_path):
    write_tiny_model(tmp_path, dims=2)
    loader = ModelLoader(tmp_path)
    with pytest.raises(ValueError, match=r"takes \(N, 2, 64, 64\)"):
        loader.load(loader.find("mideepseg", 2, "egd")).predict(np.zeros((1, 2, 32, 32)))


def test_models_dir_override(tmp_path, monkeypatch):
    write_tiny_model(tmp_path, dims=2, encoding="gaussian")
    monkeypatch.setenv("MEDSEG_MODELS_DIR", str(tmp_path))
    assert default_loader().cards.names() == ["mideepseg-2d-gaussian"]


def test_thread_count_comes_from_the_environment_then_the_card(monkeypatch):
    monkeypatch.delenv("MEDSEG_ONNX_THREADS", raising=False)
    assert models.intra_op_threads(1) == 1
    assert 1 <= models.intra_op_threads(None) <= 4
    monkeypatch.setenv("MEDSEG_ONNX_THREADS", "3")
    assert models.intra_op_threads(1) == 3
    committed = ModelLoader(models.WEIGHTS_DIR)
    assert committed.cards.get("propnet-2d").intra_op_threads == 1


def test_foreground_probability_is_the_softmax_channel_1():
    logits = np.random.default_rng(0).normal(size=(3, 2, 5, 5)).astype(np.float32) * 30
    expected = torch.softmax(torch.from_numpy(logits), dim=1)[:, 1].numpy()
    assert np.allclose(models.foreground_probability(logits), expected, atol=1e-6)


def test_provider_choice_cuda_first_when_offered_else_cpu(monkeypatch):
    """The one choice of execution provider, exercised on a CPU machine with onnxruntime-gpu's
    list of providers as it reports them on a GPU host."""
    from medseg.models.loader import CPU, CUDA, preferred_providers

    monkeypatch.delenv("MEDSEG_ONNX_DEVICE", raising=False)
    gpu_build = ["TensorrtExecutionProvider", CUDA, CPU]
    assert preferred_providers(gpu_build) == [CUDA, CPU]
    assert preferred_providers([CPU]) == [CPU]
    assert preferred_providers(gpu_build, device="cpu") == [CPU]
    monkeypatch.setenv("MEDSEG_ONNX_DEVICE", "cpu")
    assert preferred_providers(gpu_build) == [CPU]
    with pytest.raises(RuntimeError, match="no CUDA provider"):
        preferred_providers([CPU], device="cuda")
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        preferred_providers([CPU], device="tpu")
    # this machine's onnxruntime (the CPU build): what a real session gets
    import onnxruntime

    expected = [CUDA, CPU] if CUDA in onnxruntime.get_available_providers() else [CPU]
    monkeypatch.delenv("MEDSEG_ONNX_DEVICE")
    assert preferred_providers() == expected


def test_one_code_path_makes_inference_sessions():
    """Every onnxruntime session of the server is made by the loader (so by the choice above)."""
    from tests.conftest import ROOT

    makers = [p.relative_to(ROOT).as_posix()
              for p in (ROOT / "services" / "medseg").rglob("*.py")
              if "InferenceSession(" in p.read_text()]
    assert makers == ["services/medseg/models/loader.py"]
