"""Block 6 of P-Net / PC-Net in NumPy: its weights' storage and its forward pass, without torch.

The server (the `bifseg` method and the fine-tuning job) only ever evaluates or adapts block 6
on stored features, so it needs neither torch nor onnx; the torch module `Block6` for training
and `weights_from_onnx` live in medseg_train/networks/block6.py.

Weights travel as a plain dict of float32 arrays with the keys of BLOCK6_KEYS
(`hidden.weight` (H, F, 1, 1[, 1]), `hidden.bias` (H,), `out.weight` (2, H, 1, 1[, 1]),
`out.bias` (2,)), the same names the ONNX initialisers carry under the prefix `block6.`.
Training writes them beside the ONNX file as `<model>.block6.npz` (`load_block6`).

The two 1x1 (x1) convolutions are matrix products on features flattened to (F, N), N voxels:
    hidden = relu(W1 @ x + b1)   (H, N)        logits = W2 @ hidden + b2   (2, N)
with W1 (H, F) and W2 (2, H) the convolution kernels without their 1-sized axes
(`to_matrices` / `from_matrices`).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

BLOCK6_KEYS = ("hidden.weight", "hidden.bias", "out.weight", "out.bias")


def weights_to_bytes(weights: dict[str, np.ndarray]) -> bytes:
    """Block-6 weights as one compact .npz blob (a few kB to ~20 kB), e.g. for a Redis value."""
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {k: np.asarray(weights[k], dtype=np.float32) for k in BLOCK6_KEYS}
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def weights_from_bytes(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        return {k: np.asarray(data[k], dtype=np.float32) for k in BLOCK6_KEYS}


def load_block6(onnx_path) -> dict[str, np.ndarray]:
    """The trained block-6 weights of a P-Net / PC-Net: `<model>.block6.npz` beside the ONNX."""
    path = Path(onnx_path)
    return weights_from_bytes(path.with_name(path.stem + ".block6.npz").read_bytes())


def to_matrices(weights: dict[str, np.ndarray]) -> list[np.ndarray]:
    """[W1 (H, F), b1 (H,), W2 (2, H), b2 (2,)]: float32 copies (safe to update in place);
    ValueError when keys are missing or shapes do not fit together."""
    missing = [k for k in BLOCK6_KEYS if k not in weights]
    if missing:
        raise ValueError(f"block-6 weights lack {missing}")
    w1, b1, w2, b2 = (np.array(weights[k], dtype=np.float32) for k in BLOCK6_KEYS)
    hidden = w1.shape[0] if w1.ndim in (4, 5) else -1
    if (hidden < 0 or w2.shape[:2] != (2, hidden) or w2.ndim != w1.ndim or b1.shape != (hidden,)
            or b2.shape != (2,) or any(n != 1 for n in w1.shape[2:] + w2.shape[2:])):
        raise ValueError("block-6 weight shapes do not fit together")
    return [w1.reshape(hidden, -1), b1, w2.reshape(2, hidden), b2]


def from_matrices(matrices: list[np.ndarray], dims: int) -> dict[str, np.ndarray]:
    """The inverse of `to_matrices` for a 2D or 3D network (copies, float32)."""
    ones = (1,) * dims
    w1, b1, w2, b2 = matrices
    return {"hidden.weight": w1.reshape(*w1.shape, *ones).astype(np.float32),
            "hidden.bias": b1.astype(np.float32),
            "out.weight": w2.reshape(*w2.shape, *ones).astype(np.float32),
            "out.bias": b2.astype(np.float32)}


def forward(matrices: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hidden (H, N), logits (2, N)) float32 of block 6 on x (F, N) float32."""
    w1, b1, w2, b2 = matrices
    if w1.shape[1] != x.shape[0]:
        raise ValueError(f"block-6 weights take {w1.shape[1]} features, got {x.shape[0]}")
    hidden = w1 @ x
    hidden += b1[:, None]
    np.maximum(hidden, 0.0, out=hidden)  # in place: (H, N) is the largest array of a step
    return hidden, w2 @ hidden + b2[:, None]


def sigmoid(d: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-d)) = softmax([0, d])[1], without overflow for any d (same dtype)."""
    e = np.exp(-np.abs(d))
    return np.where(d >= 0, 1.0, e) / (1.0 + e)


def probability(weights: dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
    """Foreground p = softmax(logits)[1] (float32, grid shape) of block 6 with `weights` on
    `features` (F, *grid), the network's second output for one crop."""
    features = np.asarray(features, dtype=np.float32)
    _, logits = forward(to_matrices(weights), features.reshape(len(features), -1))
    return sigmoid(logits[1] - logits[0]).reshape(features.shape[1:]).astype(np.float32)
