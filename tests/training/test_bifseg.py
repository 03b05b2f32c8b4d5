"""BIFSeg training recipe end to end on tiny synthetic data: samples, two steps, ONNX with the
features output, block-6 weights beside it, model card."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
import torch

from medseg.models import bifseg_io
from medseg.models.block6 import load_block6
from medseg.models.cards import sha256_file
from medseg_train import bifseg, cli
from medseg_train.networks.block6 import weights_from_onnx
from medseg_train.networks.pcnet import PCNet
from medseg_train.networks.pnet import PNet


@pytest.mark.parametrize("dims", [2, 3])
def test_samples_are_box_crops_of_one_object(dims):
    x, y = next(iter(bifseg.Samples(dims, batch_size=2, seed=0, real=False)))
    size = bifseg_io.INPUT_SIZE[dims]
    assert x.shape == (2, 1, *size) and y.shape == (2, *size) and y.dtype == torch.bool
    assert abs(float(x.mean())) < 1e-3  # z-scored crops
    for target in y:  # a box crop: the object touches every side within the 0-10 margin
        assert target.any() and (~target).any()
        coords = np.argwhere(target.numpy())
        assert coords.min(axis=0).max() <= 12 * max(size) / 20


def test_networks_give_logits_and_features_of_the_input_size():
    logits, feats = PNet(width=4, hidden=8)(torch.zeros(1, 1, 40, 36))
    assert logits.shape == (1, 2, 40, 36) and feats.shape == (1, 20, 40, 36)
    logits, feats = PCNet(width=4, compressed=3, hidden=8)(torch.zeros(1, 1, 10, 20, 18))
    assert logits.shape == (1, 2, 10, 20, 18) and feats.shape == (1, 15, 10, 20, 18)


def test_block6_on_the_features_reproduces_the_logits():
    model = PNet(width=4, hidden=8).eval()
    with torch.no_grad():
        logits, feats = model(torch.randn(1, 1, 24, 24))
        assert torch.allclose(model.block6(feats), logits)


def test_two_steps_export_onnx_with_features_and_a_card(tmp_path):
    cli.main(["pnet", "--steps", "2", "--batch-size", "2", "--synthetic-only",
              "--skip-validation", "--workers", "0", "--quiet", "--out", str(tmp_path),
              "--checkpoint-dir", str(tmp_path / "ckpt")])
    card = json.loads((tmp_path / "pnet-2d.json").read_text())
    assert card["task"] == "bifseg" and card["outputs"] == ["logits", "features"]
    assert card["training"]["steps"] == 2 and card["input_size"] == [96, 96]
    onnx_path = tmp_path / card["file"]
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(3, 1, 96, 96)).astype(np.float32)
    logits, feats = session.run(None, {"input": x})
    assert logits.shape == (3, 2, 96, 96) and feats.shape == (3, card["feature_channels"], 96, 96)
    stored, in_onnx = load_block6(onnx_path), weights_from_onnx(onnx_path)
    assert all(np.array_equal(stored[k], in_onnx[k]) for k in stored)


def test_a_warm_start_carries_the_onnx_weights_over(tmp_path):
    """--init-from: a run with learning rate 0 from an exported P-Net exports the same network
    (every parameter copied), and the card names the file it started from."""
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--batch-size", "2", "--synthetic-only", "--skip-validation", "--workers", "0",
              "--quiet", "--checkpoint-dir"]
    cli.main(["pnet", "--steps", "2", *common, str(first / "ckpt"), "--out", str(first)])
    cli.main(["pnet", "--steps", "1", "--lr", "0", "--seed", "5", *common,
              str(second / "ckpt"), "--out", str(second), "--init-from",
              str(first / "pnet-2d.onnx")])
    card = json.loads((second / "pnet-2d.json").read_text())
    assert card["training"]["init_from"]["file"] == "pnet-2d.onnx"
    assert card["training"]["init_from"]["sha256"] == sha256_file(first / "pnet-2d.onnx")
    x = np.random.default_rng(1).normal(size=(2, 1, 96, 96)).astype(np.float32)
    outputs = [onnxruntime.InferenceSession(str(d / "pnet-2d.onnx"),
                                            providers=["CPUExecutionProvider"]).run(None,
                                                                                    {"input": x})
               for d in (first, second)]
    assert np.abs(outputs[0][0] - outputs[1][0]).max() < 1e-5
    fresh = tmp_path / "fresh"  # without --init-from the same run starts elsewhere
    cli.main(["pnet", "--steps", "1", "--lr", "0", "--seed", "5", *common,
              str(fresh / "ckpt"), "--out", str(fresh)])
    other = onnxruntime.InferenceSession(str(fresh / "pnet-2d.onnx"),
                                         providers=["CPUExecutionProvider"]).run(None, {"input": x})
    assert np.abs(outputs[0][0] - other[0]).max() > 1e-2
