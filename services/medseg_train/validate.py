"""`python -m medseg_train.validate`: score exported weights with their card's validation, so
two sets of weights (the shipped ones and a retrained candidate) are compared on the same
objects in one run.

    python -m medseg_train.validate --new-sets pnet-2d mideepseg-2d-egd \\
        --weights services/medseg/models/weights var/newweights/pnet

Prints one markdown table: per weights folder and model, the card metrics' Dice per group
(seen, held_out, and with --new-sets held_out_new_sets: the held-out scans and structures of
the licensed extra sets, medseg_train.data.EXTRA_SETS). A folder that lacks a model is
skipped. --json writes every per-organ score too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from medseg.models.loader import onnx_session
from medseg_train import bifseg, mideepseg

MODELS = {  # name -> (task, dims, encoding)
    "pnet-2d": ("bifseg", 2, None),
    "pcnet-3d": ("bifseg", 3, None),
    "mideepseg-2d-egd": ("mideepseg", 2, "egd"),
    "mideepseg-3d-egd": ("mideepseg", 3, "egd"),
}


def onnx_predictor(path: Path):
    """(1, C, *size) input -> (1, *size) foreground probability, from the ONNX file."""
    session = onnx_session(path, 1)

    def predict(x: np.ndarray) -> np.ndarray:
        logits = session.run(None, {"input": x.astype(np.float32)})[0]
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (shifted[:, 1] / shifted.sum(axis=1)).astype(np.float32)

    return predict


def validate_file(name: str, path: Path, new_sets: bool) -> dict:
    task, dims, encoding = MODELS[name]
    predict = onnx_predictor(path)
    if task == "bifseg":
        return bifseg.validate(predict, dims, new_sets=new_sets)
    assert encoding is not None
    return mideepseg.validate(predict, dims, encoding, new_sets=new_sets)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m medseg_train.validate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", choices=sorted(MODELS))
    parser.add_argument("--weights", type=Path, nargs="+", required=True,
                        help="folders holding <model>.onnx")
    parser.add_argument("--new-sets", action="store_true",
                        help="also the held-out scans and structures of the extra sets")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    results: dict[str, dict] = {}
    print("| weights | model | Dice seen | Dice held-out organs | Dice held-out new sets "
          "| objects |\n|---|---|---|---|---|---|")
    for folder in args.weights:
        for name in args.models:
            path = folder / f"{name}.onnx"
            if not path.exists():
                continue
            metrics = validate_file(name, path, args.new_sets)
            results[f"{folder}/{name}"] = metrics
            counts = ", ".join(f"{k} {v}" for k, v in metrics["objects"].items())
            print(f"| {folder} | {name} | {metrics['dice_seen']} | {metrics['dice_held_out']} "
                  f"| {metrics.get('dice_held_out_new_sets', '–')} | {counts} |", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
