"""`medseg-train`: train a model, validate it on the shared data, export ONNX and its card.

    medseg-train mideepseg --dims 2 --encoding egd --minutes 12
    medseg-train mideepseg --dims 3 --encoding egd --minutes 40

Weights and cards go to services/medseg/models/weights/ (or --out). CI runs a few steps on
tiny synthetic data only (--steps 2 --synthetic-only --out TMP) to prove the pipeline runs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from medseg.models.export import export_onnx
from medseg.training import mideepseg
from medseg.training.data import HELD_OUT_ORGANS, TRAIN_CASES, VALIDATION_CASE
from medseg.training.loop import RunConfig, train
from medseg.training.publish import write_card

WEIGHTS = Path(__file__).resolve().parents[1] / "models" / "weights"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=None, help="wall-time budget")
    parser.add_argument("--steps", type=int, default=None, help="step budget")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="sample-making processes")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("var/checkpoints"))
    parser.add_argument("--synthetic-only", action="store_true",
                        help="no real training data (CI smoke runs)")
    parser.add_argument("--skip-validation", action="store_true")
    parser.add_argument("--reuse", type=int, default=None,
                        help="times each sample is drawn (default 1 in 2D, 4 in 3D)")
    parser.add_argument("--quiet", action="store_true")


def run_mideepseg(args: argparse.Namespace) -> dict:
    name = f"mideepseg-{args.dims}d-{args.encoding}"
    batch = args.batch_size or (8 if args.dims == 2 else 2)
    model = mideepseg.build_network(args.dims)
    reuse = args.reuse or (1 if args.dims == 2 else 4)
    samples = mideepseg.Samples(args.dims, args.encoding, batch, args.seed,
                                real=not args.synthetic_only, reuse=reuse)
    config = RunConfig(name=name, steps=args.steps, minutes=args.minutes, lr=args.lr,
                       seed=args.seed, workers=args.workers, resume=args.resume,
                       checkpoint_dir=args.checkpoint_dir, quiet=args.quiet)
    run = train(model, samples, mideepseg.loss_fn, config)
    metrics = {} if args.skip_validation else mideepseg.validate(
        mideepseg.torch_predictor(model), args.dims, args.encoding)
    size = mideepseg.INPUT_SIZE[args.dims]
    example = torch.randn(1, 2, *size, generator=torch.Generator().manual_seed(0))
    path = args.out / f"{name}.onnx"
    max_diff = export_onnx(model, example, path)
    card = {
        "name": name, "version": "1.0.0", "task": "mideepseg", "dims": args.dims,
        "encoding": args.encoding, "input_size": list(size), "in_channels": 2,
        "outputs": ["logits"], "file": path.name,
        "network": {"type": "UNet", **mideepseg.NETWORK[args.dims], "norm": "instance",
                    "parameters": sum(p.numel() for p in model.parameters())},
        "training": {
            "command": "medseg-train " + shlex.join(sys.argv[1:]),
            "data": ("synthetic only" if args.synthetic_only else
                     f"synthetic (60 %) + seen organs of {', '.join(TRAIN_CASES)} (40 %)"),
            "held_out_organs": list(HELD_OUT_ORGANS), "validation_case": VALIDATION_CASE,
            "batch_size": batch, "sample_reuse": reuse, "lr": args.lr, "seed": args.seed, **run,
            "onnx_max_abs_diff": max_diff,
        },
        "metrics": metrics,
    }
    write_card(path, card)
    return card


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="medseg-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="recipe", required=True)
    mds = sub.add_parser("mideepseg", help="MIDeepSeg 2D/3D U-Net from interior margin points")
    mds.add_argument("--dims", type=int, choices=(2, 3), default=2)
    mds.add_argument("--encoding", choices=("egd", "geodesic", "euclidean", "gaussian"),
                     default="egd")
    _common(mds)
    args = parser.parse_args(argv)
    if args.steps is None and args.minutes is None:
        parser.error("give --minutes and/or --steps")
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.time()
    card = run_mideepseg(args)
    print(json.dumps({"name": card["name"], "metrics": {k: v for k, v in card["metrics"].items()
                                                         if k != "per_organ"},
                      "wall_time_s": round(time.time() - started, 1)}, indent=2))


if __name__ == "__main__":
    main()
