"""Model cards: the JSON beside each ONNX file that the server's model loader reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from medseg.models.cards import sha256_file


def write_card(onnx_path: Path, card: dict) -> Path:
    """Write `<model>.json` beside the ONNX file, adding its sha256 and the date."""
    onnx_path = Path(onnx_path)
    card = {**card, "sha256": sha256_file(onnx_path),
            "created": datetime.now(UTC).date().isoformat()}
    out = onnx_path.with_suffix(".json")
    out.write_text(json.dumps(card, indent=2) + "\n")
    return out
