"""Model cards: `<name>.json` beside each ONNX file in the weights folder.

A card names the task ("mideepseg", "bifseg", "propagation"), dims (2 or 3), cue encoding (if
any), input size (spatial voxels, (Y, X) or (Z, Y, X)), the ONNX file and its sha256, any
companion files (`block6_weights`: {"file", "sha256"}), and how the model was trained and
scored. An organ model (task "organ") lists the organs it segments (`organs`, its output
channels' names: what clients offer for an `organ` start). `runtime.intra_op_threads`
(optional) is the onnxruntime thread count the model runs best with on a CPU (small per-slice
networks: 1).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
    companions: dict[str, tuple[Path, str]] = field(default_factory=dict)  # key -> (file, sha256)
    intra_op_threads: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    organs: tuple[str, ...] = ()  # an organ model (task "organ"): the organs it segments

    @classmethod
    def from_json(cls, path: Path) -> ModelCard:
        """ValueError naming the card when it is malformed."""
        raw = json.loads(Path(path).read_text())
        folder = Path(path).parent
        try:
            companions = {key: (folder / value["file"], str(value["sha256"]).lower())
                          for key, value in raw.items()
                          if isinstance(value, dict) and {"file", "sha256"} <= set(value)}
            return cls(name=str(raw["name"]), version=str(raw["version"]), task=str(raw["task"]),
                       dims=int(raw["dims"]), encoding=str(raw.get("encoding") or ""),
                       input_size=tuple(int(v) for v in raw["input_size"]),
                       file=folder / raw["file"], sha256=str(raw["sha256"]).lower(),
                       in_channels=int(raw.get("in_channels", 2)), companions=companions,
                       intra_op_threads=raw.get("runtime", {}).get("intra_op_threads"),
                       metrics=dict(raw.get("metrics", {})), training=dict(raw.get("training", {})),
                       organs=tuple(str(o) for o in raw.get("organs", ())))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"model card {path} is malformed: {exc!r}") from None

    @property
    def key(self) -> tuple[str, int, str]:
        return self.task, self.dims, self.encoding

    def describe(self) -> str:
        return f"{self.name} ({self.dims}D{', ' + self.encoding if self.encoding else ''})"


def read_cards(directory: Path) -> tuple[list[ModelCard], dict[str, str]]:
    """(the folder's cards, {card file: why it is not served}); no folder: nothing."""
    cards, problems = [], {}
    for path in sorted(Path(directory).glob("*.json")) if Path(directory).is_dir() else []:
        try:
            cards.append(ModelCard.from_json(path))
        except (ValueError, OSError) as exc:
            problems[path.name] = str(exc)
    return cards, problems


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in version.split("."))
