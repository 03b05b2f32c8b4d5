"""The one model loader: every trained network this server runs is a card in the models
folder, checked against its sha256 and run by an onnxruntime session made once per process.

- Folder: `MEDSEG_MODELS_DIR`, else the committed `services/medseg/models/weights/`.
- Provider: CUDA when this onnxruntime build offers it (the `gpu` extra), the CPU otherwise.
- Threads: `MEDSEG_ONNX_THREADS`, else the card's `runtime.intra_op_threads`, else the CPU
  count capped at 4 (a small U-Net gains nothing from more, and the API serves several
  requests at a time).
- A file whose sha256 differs from its card is refused (ModelUnavailable says why).

Networks take (N, C, *spatial) float32 inputs named "input" and answer "logits" (N, 2, ...):
background, foreground (P-Net / PC-Net also answer "features").
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import ModelUnavailable
from medseg.models.cards import ModelCard, read_cards, sha256_file, version_key
from medseg.registry import Registry

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def models_dir() -> Path:
    return Path(os.environ.get("MEDSEG_MODELS_DIR") or WEIGHTS_DIR)


def preferred_providers(available: list[str] | None = None,
                        device: str | None = None) -> list[str]:
    """Providers in the order onnxruntime should try them: the one place that chooses. CUDA
    first when the installed onnxruntime offers it (onnxruntime-gpu, the GPU image), else the
    CPU. `available`: onnxruntime's list (default: asked); `device`: MEDSEG_ONNX_DEVICE, `auto`
    (default), `cpu` (never the GPU, e.g. a CPU-only worker on a GPU node) or `cuda` (the GPU
    or a configuration error)."""
    if available is None:
        import onnxruntime

        available = list(onnxruntime.get_available_providers())
    device = (device or os.environ.get("MEDSEG_ONNX_DEVICE") or "auto").strip().lower()
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"MEDSEG_ONNX_DEVICE must be auto, cpu or cuda, not {device!r}")
    if device == "cpu":
        return [CPU]
    if CUDA in available:
        return [CUDA, CPU]
    if device == "cuda":
        raise RuntimeError("MEDSEG_ONNX_DEVICE=cuda but onnxruntime offers no CUDA provider "
                           f"(it has {', '.join(available) or 'none'}): install the gpu extra "
                           "(onnxruntime-gpu) and run with a GPU")
    return [CPU]


def intra_op_threads(card_threads: int | None = None) -> int:
    configured = os.environ.get("MEDSEG_ONNX_THREADS")
    if configured:
        return max(int(configured), 1)
    if card_threads:
        return int(card_threads)
    return max(min(os.cpu_count() or 1, 4), 1)


_SESSIONS: dict[tuple[str, int], Any] = {}
_SESSIONS_LOCK = threading.Lock()


def onnx_session(path: Path, threads: int | None = None):
    """The process's onnxruntime.InferenceSession of an ONNX file (made on first call).
    Cards reach it through `ModelLoader.session`; training and benchmarks call it directly
    for candidate weights that have no card yet."""
    threads = intra_op_threads(threads)
    key = (str(Path(path).resolve()), threads)
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(key)
        if session is None:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            # no busy-waiting after a run: the geodesics and graph cut that follow a network
            # call in the same request need those cores (spinning made them 2-3x slower)
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = onnxruntime.InferenceSession(key[0], sess_options=options,
                                                   providers=preferred_providers())
            _SESSIONS[key] = session
    return session


def foreground_probability(logits: np.ndarray) -> np.ndarray:
    """Softmax over axis 1 of (N, 2, ...) logits, channel 1: float32 (N, ...) in [0, 1]."""
    logits = np.asarray(logits, dtype=np.float32)
    # two classes: softmax channel 1 = sigmoid(l1 - l0), computed without overflow
    margin = np.clip(logits[:, 0] - logits[:, 1], -80.0, 80.0)
    return (1.0 / (1.0 + np.exp(margin))).astype(np.float32)


class LoadedModel:
    """A card whose files checked out, with its session."""

    def __init__(self, card: ModelCard, session: Any):
        self.card, self.session = card, session

    def logits(self, x: np.ndarray) -> list[np.ndarray]:
        """Every output of the network for input `x` ((N, C, *spatial) float32)."""
        return self.session.run(None, {"input": np.ascontiguousarray(x, dtype=np.float32)})

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Foreground probability (N, *input_size) of network inputs x (N, C, *input_size)."""
        x = np.asarray(x, dtype=np.float32)
        expected = (self.card.in_channels, *self.card.input_size)
        if x.ndim != len(expected) + 1 or x.shape[1:] != expected:
            raise ValueError(f"{self.card.name} takes (N, {', '.join(map(str, expected))}), "
                             f"got {x.shape}")
        return foreground_probability(self.logits(x)[0])

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]


class ModelLoader:
    """The cards of one folder (read once) as a registry; files are hashed on first use."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.cards: Registry[ModelCard] = Registry("model")
        found, self.problems = read_cards(self.directory)  # card file -> why it is not served
        for card in found:
            self.cards.register(card)
        self._verified: set[Path] = set()
        self._lock = threading.Lock()

    def available(self, task: str | None = None) -> list[ModelCard]:
        return [c for c in self.cards if task is None or c.task == task]

    def find(self, task: str, dims: int, encoding: str = "") -> ModelCard:
        """The newest card for (task, dims, encoding); ModelUnavailable names the ones there are."""
        matches = [c for c in self.cards if c.key == (task, dims, encoding)]
        if not matches:
            have = [c.describe() for c in self.available(task)] or ["none"]
            wanted = f" for cue encoding {encoding!r}" if encoding else ""
            raise ModelUnavailable(f"no {dims}D {task} model{wanted} in {self.directory}; "
                                   f"available: {', '.join(have)}")
        return max(matches, key=lambda c: version_key(c.version))

    def load(self, card: ModelCard) -> LoadedModel:
        """The card's network, its file verified (ModelUnavailable when missing or altered)."""
        self._verify(card.name, card.file, card.sha256)
        return LoadedModel(card, onnx_session(card.file, card.intra_op_threads))

    def companion(self, card: ModelCard, key: str) -> bytes:
        """The bytes of a verified companion file of the card (e.g. "block6_weights")."""
        if key not in card.companions:
            raise ModelUnavailable(f"model {card.name} has no {key!r} file in its card")
        path, sha256 = card.companions[key]
        self._verify(card.name, path, sha256)
        return path.read_bytes()

    def provider(self, card: ModelCard) -> str:
        """The provider the card's network runs (or would run) on."""
        key = (str(card.file.resolve()), intra_op_threads(card.intra_op_threads))
        with _SESSIONS_LOCK:
            session = _SESSIONS.get(key)
        return session.get_providers()[0] if session is not None else preferred_providers()[0]

    def _verify(self, name: str, path: Path, sha256: str) -> None:
        with self._lock:
            if path in self._verified:
                return
            if not path.is_file():
                raise ModelUnavailable(f"model {name}: file {path.name} is missing")
            if sha256_file(path) != sha256:
                raise ModelUnavailable(f"model {name}: {path.name} does not match the sha256 in "
                                       "its card (corrupt or replaced); not served")
            self._verified.add(path)


@functools.lru_cache(maxsize=8)
def _loader_for(directory: str) -> ModelLoader:
    return ModelLoader(Path(directory))


def default_loader() -> ModelLoader:
    """The process-wide loader of `models_dir()` (one per folder, so tests may switch)."""
    return _loader_for(str(models_dir().resolve()))
