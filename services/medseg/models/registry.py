"""Model registry: the model cards (`<name>.json`) beside the ONNX files in the weights folder.

A card names the task ("mideepseg"), dims (2 or 3), cue encoding, input size (spatial, voxels,
(Y, X) or (Z, Y, X)), the ONNX file and its sha256, and how the model was trained and scored.
The folder is `services/medseg/models/weights/` unless MEDSEG_MODELS_DIR names another. A file
whose sha256 differs from its card is refused (`ModelNotFound` names why) instead of served.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medseg.models import runtime

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class ModelNotFound(LookupError):
    """No usable model for a request; the message names the ones there are."""


@dataclass(frozen=True)
class ModelCard:
    name: str
    version: str
    task: str
    dims: int
    encoding: str
    input_size: tuple[int, ...]  # spatial, (Y, X) or (Z, Y, X) voxels
    file: Path
    sha256: str
    in_channels: int = 2
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, path: Path) -> ModelCard:
        raw = json.loads(Path(path).read_text())
        try:
            return cls(name=str(raw["name"]), version=str(raw["version"]), task=str(raw["task"]),
                       dims=int(raw["dims"]), encoding=str(raw.get("encoding", "")),
                       input_size=tuple(int(v) for v in raw["input_size"]),
                       file=Path(path).parent / raw["file"], sha256=str(raw["sha256"]).lower(),
                       in_channels=int(raw.get("in_channels", 2)),
                       metrics=dict(raw.get("metrics", {})), training=dict(raw.get("training", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"model card {path} is malformed: {exc!r}") from None

    @property
    def key(self) -> tuple[str, int, str]:
        return self.task, self.dims, self.encoding


class LoadedModel:
    """A card whose file checked out; `predict` runs it (session created on first use)."""

    def __init__(self, card: ModelCard):
        self.card = card

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Foreground probability (N, *input_size) of network inputs x (N, C, *input_size)."""
        x = np.asarray(x, dtype=np.float32)
        expected = (self.card.in_channels, *self.card.input_size)
        if x.ndim != len(expected) + 1 or x.shape[1:] != expected:
            raise ValueError(f"{self.card.name} takes (N, {', '.join(map(str, expected))}), "
                             f"got {x.shape}")
        return runtime.foreground_probability(runtime.run_logits(self.card.file, x))

    @property
    def provider(self) -> str:
        return runtime.active_provider(self.card.file) or runtime.preferred_providers()[0]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ModelRegistry:
    """The cards of one folder, read once; files are hashed on first use of each model."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.cards: list[ModelCard] = []
        self.problems: dict[str, str] = {}  # card file -> why it is not served
        for path in sorted(self.directory.glob("*.json")) if self.directory.is_dir() else []:
            try:
                self.cards.append(ModelCard.from_json(path))
            except (ValueError, OSError) as exc:
                self.problems[path.name] = str(exc)
        self._verified: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def available(self, task: str | None = None) -> list[ModelCard]:
        return [c for c in self.cards if task is None or c.task == task]

    def get(self, task: str, dims: int, encoding: str) -> LoadedModel:
        """The model for (task, dims, encoding), its file verified against the card's sha256.
        ModelNotFound (naming the models there are) when there is none or its file is bad."""
        matches = [c for c in self.cards if c.key == (task, dims, encoding)]
        if not matches:
            have = [f"{c.name} ({c.dims}D, {c.encoding})" for c in self.available(task)] or ["none"]
            raise ModelNotFound(f"no {dims}D {task} model for cue encoding {encoding!r} in "
                                f"{self.directory}; available: {', '.join(have)}")
        card = max(matches, key=lambda c: _version_key(c.version))
        with self._lock:
            loaded = self._verified.get(card.name)
            if loaded is None:
                if not card.file.is_file():
                    raise ModelNotFound(f"model {card.name}: file {card.file.name} is missing")
                if sha256_file(card.file) != card.sha256:
                    raise ModelNotFound(f"model {card.name}: {card.file.name} does not match the "
                                        "sha256 in its card (corrupt or replaced); not served")
                loaded = self._verified[card.name] = LoadedModel(card)
        return loaded


def _version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in version.split("."))


def models_dir() -> Path:
    return Path(os.environ.get("MEDSEG_MODELS_DIR") or WEIGHTS_DIR)


@functools.lru_cache(maxsize=8)
def _registry_for(directory: str) -> ModelRegistry:
    return ModelRegistry(Path(directory))


def default_registry() -> ModelRegistry:
    """The process-wide registry of `models_dir()` (one per folder, so tests may switch)."""
    return _registry_for(str(models_dir().resolve()))
