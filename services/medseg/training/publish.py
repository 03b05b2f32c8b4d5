"""Model cards: the JSON beside each ONNX file that the server's registry reads."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_card(onnx_path: Path, card: dict) -> Path:
    """Write `<model>.json` beside the ONNX file, adding its sha256 and the date."""
    onnx_path = Path(onnx_path)
    card = {**card, "sha256": sha256_of(onnx_path),
            "created": datetime.now(UTC).date().isoformat()}
    out = onnx_path.with_suffix(".json")
    out.write_text(json.dumps(card, indent=2) + "\n")
    return out
