"""Block 6 of P-Net / PC-Net: the classifier on the concatenated features of blocks 1-5.

Two 1x1 (x1) convolutions with a ReLU between them. It is the only part image-specific
fine-tuning updates (BIFSeg sec. II-A), so it is defined once here for the networks, the
fine-tuning and its storage: weights travel as a plain dict of float32 arrays with the keys
of BLOCK6_KEYS (`hidden.weight` (H, F, 1, 1[, 1]), `hidden.bias` (H,), `out.weight`
(2, H, 1, 1[, 1]), `out.bias` (2,)), the same names the ONNX initialisers carry under the
prefix `block6.`. Training writes them beside the ONNX file as `<model>.block6.npz`
(`load_block6`), so the server needs no `onnx` package to read them; `weights_from_onnx`
(dev dependency) checks that both agree.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from torch import nn

BLOCK6_KEYS = ("hidden.weight", "hidden.bias", "out.weight", "out.bias")


class Block6(nn.Module):
    """features (N, F, *spatial) -> logits (N, 2, *spatial); dims 2 or 3."""

    def __init__(self, dims: int, features: int, hidden: int):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.dims = dims
        self.hidden = conv(features, hidden, 1)
        self.out = conv(hidden, 2, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(features)))

    def weights(self) -> dict[str, np.ndarray]:
        """The weights as float32 arrays keyed by BLOCK6_KEYS (copies)."""
        state = self.state_dict()
        return {k: state[k].detach().cpu().numpy().astype(np.float32).copy() for k in BLOCK6_KEYS}

    @classmethod
    def from_weights(cls, weights: dict[str, np.ndarray]) -> Block6:
        """A Block6 holding `weights` (a dict as `weights()` returns); ValueError when keys or
        shapes do not fit together."""
        missing = [k for k in BLOCK6_KEYS if k not in weights]
        if missing:
            raise ValueError(f"block-6 weights lack {missing}")
        hidden_w = np.asarray(weights["hidden.weight"])
        dims = hidden_w.ndim - 2
        if dims not in (2, 3) or np.asarray(weights["out.weight"]).shape[:2] != (2, hidden_w.shape[0]):
            raise ValueError("block-6 weight shapes do not fit together")
        block = cls(dims, hidden_w.shape[1], hidden_w.shape[0])
        block.load_state_dict({k: torch.from_numpy(np.asarray(weights[k], dtype=np.float32))
                               for k in BLOCK6_KEYS})
        return block.eval()


def weights_to_bytes(weights: dict[str, np.ndarray]) -> bytes:
    """Block-6 weights as one compact .npz blob (a few kB to ~20 kB), e.g. for a Redis value."""
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(weights[k], dtype=np.float32) for k in BLOCK6_KEYS})
    return buffer.getvalue()


def weights_from_bytes(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        return {k: data[k] for k in BLOCK6_KEYS}


def load_block6(onnx_path) -> dict[str, np.ndarray]:
    """The trained block-6 weights of a P-Net / PC-Net: `<model>.block6.npz` beside the ONNX."""
    from pathlib import Path

    path = Path(onnx_path)
    return weights_from_bytes(path.with_name(path.stem + ".block6.npz").read_bytes())


def weights_from_onnx(path) -> dict[str, np.ndarray]:
    """Block-6 weights read from the initialisers of an exported P-Net / PC-Net ONNX file
    (the export keeps the torch parameter names `block6.hidden.weight`, ...)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    found = {init.name: init for init in model.graph.initializer}
    missing = [k for k in BLOCK6_KEYS if f"block6.{k}" not in found]
    if missing:
        raise ValueError(f"{path}: no block-6 initialisers {missing}")
    return {k: numpy_helper.to_array(found[f"block6.{k}"]).astype(np.float32) for k in BLOCK6_KEYS}
