"""Tiny randomly initialised U-Nets exported to ONNX with model cards, for plumbing tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from medseg.models.block6 import weights_to_bytes
from medseg.models.cards import sha256_file
from medseg_train.networks.export import export_onnx
from medseg_train.networks.pcnet import PCNet
from medseg_train.networks.unet import UNet

SIZES = {2: (64, 64), 3: (16, 32, 32)}


def write_tiny_model(directory: Path, dims: int = 2, encoding: str = "egd", seed: int = 0,
                     size: tuple[int, ...] | None = None) -> tuple[Path, UNet]:
    """Export a tiny U-Net and its card into `directory`; returns (onnx path, torch model)."""
    torch.manual_seed(seed)
    size = size or SIZES[dims]
    model = UNet(dims=dims, in_channels=2, base=4, levels=3).eval()
    name = f"mideepseg-{dims}d-{encoding}"
    path = Path(directory) / f"{name}.onnx"
    export_onnx(model, torch.randn(1, 2, *size), path)
    card = {"name": name, "version": "0.0.1", "task": "mideepseg", "dims": dims,
            "encoding": encoding, "input_size": list(size), "in_channels": 2,
            "outputs": ["logits"], "file": path.name, "sha256": sha256_file(path),
            "training": {"command": "tests/models/tiny.py (random weights)"},
            "metrics": {"dice_seen": 0.0, "dice_held_out": 0.0}}
    path.with_suffix(".json").write_text(json.dumps(card))
    return path, model


def tiny_models_dir(tmp_path_factory) -> Path:
    """A folder with tiny 2D and 3D EGD models (made once per test session)."""
    directory = tmp_path_factory.getbasetemp() / "tiny-models"
    if not (directory / "mideepseg-3d-egd.json").exists():
        directory.mkdir(exist_ok=True)
        write_tiny_model(directory, dims=2, encoding="egd")
        write_tiny_model(directory, dims=3, encoding="egd")
    return directory


def write_tiny_pcnet(directory: Path, seed: int = 0) -> PCNet:
    """An untrained tiny PC-Net (3D BIFSeg), its block-6 weights and its card in `directory`."""
    from medseg.models.bifseg_io import INPUT_SIZE

    torch.manual_seed(seed)
    net = PCNet(width=4, compressed=2, hidden=4).eval()
    path = Path(directory) / "pcnet-3d.onnx"
    export_onnx(net, torch.randn(1, 1, *INPUT_SIZE[3]), path, output_names=("logits", "features"))
    block6 = path.with_name("pcnet-3d.block6.npz")
    block6.write_bytes(weights_to_bytes(net.block6.weights()))
    card = {"name": "pcnet-3d", "version": "0.0.1", "task": "bifseg", "dims": 3,
            "input_size": list(INPUT_SIZE[3]), "in_channels": 1,
            "outputs": ["logits", "features"], "file": path.name, "sha256": sha256_file(path),
            "block6_weights": {"file": block6.name, "sha256": sha256_file(block6)},
            "training": {"command": "tests/models/tiny.py (random weights)"}}
    path.with_suffix(".json").write_text(json.dumps(card))
    return net
