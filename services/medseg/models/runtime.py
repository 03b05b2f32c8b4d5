"""onnxruntime inference sessions: one per model file per process, created on first use.

The CUDA execution provider is used when this onnxruntime build offers it (the `gpu` extra),
the CPU provider otherwise. Inputs are (N, C, *spatial) float32 arrays named "input"; the
networks answer "logits" (N, 2, *spatial): background, foreground.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

_SESSIONS: dict[str, object] = {}
_LOCK = threading.Lock()


def preferred_providers() -> list[str]:
    """Providers in the order onnxruntime should try them: CUDA first when available."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    return [CUDA, CPU] if CUDA in available else [CPU]


def intra_op_threads() -> int:
    """MEDSEG_ONNX_THREADS, else the CPU count capped at 4: a 64x64 2D U-Net gains nothing
    from more threads, and the API serves several requests at a time."""
    configured = os.environ.get("MEDSEG_ONNX_THREADS")
    if configured:
        return max(int(configured), 1)
    return max(min(os.cpu_count() or 1, 4), 1)


def session_for(path: Path):
    """The cached onnxruntime.InferenceSession of an ONNX file (created on first call)."""
    key = str(Path(path).resolve())
    with _LOCK:
        session = _SESSIONS.get(key)
        if session is None:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = intra_op_threads()
            options.inter_op_num_threads = 1
            # no busy-waiting after a run: the geodesics and graph cut that follow a network
            # call in the same request need those cores (spinning made them 2-3x slower)
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = onnxruntime.InferenceSession(key, sess_options=options,
                                                   providers=preferred_providers())
            _SESSIONS[key] = session
    return session


def forget(path: Path) -> None:
    """Drop a cached session (a model file was replaced)."""
    with _LOCK:
        _SESSIONS.pop(str(Path(path).resolve()), None)


def foreground_probability(logits: np.ndarray) -> np.ndarray:
    """Softmax over axis 1 of (N, 2, ...) logits, channel 1: float32 (N, ...) in [0, 1]."""
    logits = np.asarray(logits, dtype=np.float32)
    # two classes: softmax channel 1 = sigmoid(l1 - l0), computed without overflow
    return (1.0 / (1.0 + np.exp(np.clip(logits[:, 0] - logits[:, 1], -80.0, 80.0)))).astype(np.float32)


def run_logits(path: Path, x: np.ndarray) -> np.ndarray:
    """The model's "logits" output for input `x` ((N, C, *spatial) float32)."""
    session = session_for(path)
    return session.run(["logits"], {"input": np.ascontiguousarray(x, dtype=np.float32)})[0]


def active_provider(path: Path) -> str | None:
    """The provider the cached session runs on, or None when it is not loaded yet."""
    with _LOCK:
        session = _SESSIONS.get(str(Path(path).resolve()))
    return None if session is None else session.get_providers()[0]
