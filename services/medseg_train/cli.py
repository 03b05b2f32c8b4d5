"""`medseg-train`: train a model, validate it on the shared data, export ONNX and its card.

    medseg-train mideepseg --dims 2 --encoding egd --minutes 12
    medseg-train mideepseg --dims 3 --encoding egd --minutes 40
    medseg-train propagation --minutes 20
    medseg-train pnet --minutes 18      # BIFSeg P-Net (2D box segmentation)
    medseg-train pcnet --minutes 20     # BIFSeg PC-Net (3D)
    medseg-train editing --minutes 12   # deep-editing-tools 2D network (issue 14)
    medseg-train organ --minutes 20     # RefineNet backbone: organs by name (issue 14)
    medseg-train refine --minutes 20    # RefineNet refinement network (seeds, eq. 1)

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

from medseg.models import bifseg_io, editing_io, propagation_io, refinenet_io
from medseg.models.block6 import weights_to_bytes
from medseg.models.cards import sha256_file
from medseg.models.loader import WEIGHTS_DIR
from medseg_train import bifseg, editing, mideepseg, propagation, refinenet
from medseg_train.data import (
    EXTRA_SETS,
    HELD_OUT_ORGANS,
    TRAIN_CASES,
    VALIDATION_CASE,
    extra_held_out_cases,
    extra_train_cases,
)
from medseg_train.loop import RunConfig, train
from medseg_train.networks.export import export_onnx, load_onnx_weights
from medseg_train.publish import write_card

WEIGHTS = WEIGHTS_DIR  # the committed weights the server loads
# the model loader's thread hint (medseg.models.cards) for networks called per box or slice
SMALL_NETWORK_RUNTIME = {
    "intra_op_threads": 1,
    "why": "small networks called per box or per slice: on a shared CPU a second thread waits "
           "on the first (propnet 96x96: 14 ms median with one thread, 42 ms with two, under "
           "load)"}


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


def _box_or_points(parser: argparse.ArgumentParser) -> None:
    """Options of the BIFSeg and MIDeepSeg recipes (issue 13 item 5)."""
    parser.add_argument("--extra-sets", action="store_true",
                        help="also draw real objects from the licensed extra sets "
                             "(medseg_train.data.EXTRA_SETS), their held-out volumes and "
                             "structures never")
    _init_from(parser)


def _init_from(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--init-from", type=Path, default=None,
                        help="warm start from the weights of this ONNX file (one that "
                             "medseg-train exported for the same network, e.g. the shipped "
                             "one); ignored when --resume finds a checkpoint")


def _run_config(args: argparse.Namespace, name: str) -> RunConfig:
    """The training loop's budget, seed, workers and checkpoints from the command line (every
    recipe's the same flags)."""
    return RunConfig(name=name, steps=args.steps, minutes=args.minutes, lr=args.lr,
                     seed=args.seed, workers=args.workers, resume=args.resume,
                     checkpoint_dir=args.checkpoint_dir, quiet=args.quiet)


def _warm_start(model: torch.nn.Module, args: argparse.Namespace, name: str) -> dict:
    """Load --init-from into `model` unless a checkpoint will be resumed; the card's record."""
    if args.init_from is None:
        return {}
    record = {"init_from": {"file": args.init_from.name,
                            "sha256": sha256_file(args.init_from)}}
    if args.resume and (args.checkpoint_dir / f"{name}.pt").exists():
        return record  # the checkpoint already continues from the warm start
    load_onnx_weights(model, args.init_from)
    return record


def _data_record(args: argparse.Namespace, dims: int) -> dict:
    """What the real draws came from: the training cases by name (benchmarks group objects by
    them, medseg_bench.clicks.object_group) and what stayed out."""
    if args.synthetic_only:
        return {"data": "synthetic only"}
    if not getattr(args, "extra_sets", False):
        return {"data": f"synthetic (60 %) + seen organs of {', '.join(TRAIN_CASES)} (40 %)"}
    sets = [s for s in EXTRA_SETS if dims in s.dims]
    shares = ", ".join([f"totalseg {1 - sum(s.weight for s in sets):.0%}"]
                       + [f"{s.folder} {s.weight:.0%}" for s in sets])
    axial = ", ".join(s.folder for s in sets if s.axial_only)
    return {
        "data": "synthetic (60 %) + real (40 %): seen organs of the training cases, sets "
                f"drawn with shares {shares}; 2D slices of {axial} axial only",
        **_cases_record(dims),
    }


def _cases_record(dims: int) -> dict:
    """The card's training cases by name (benchmarks group objects by them) and what stayed
    out, for a `dims`-D recipe that draws from the licensed extra sets."""
    return {
        "training_cases": [*TRAIN_CASES, *extra_train_cases(dims)],
        "held_out_volumes": [VALIDATION_CASE, *extra_held_out_cases()],
        "held_out_structures": {s.folder: list(s.held_out_structures) for s in EXTRA_SETS
                                if dims in s.dims and s.held_out_structures},
    }


def _training(args: argparse.Namespace, batch: int, run: dict, max_diff: float,
              dims: int = 2, **extra) -> dict:
    """The card's "training" section: how the weights were made."""
    return {
        "command": "medseg-train " + shlex.join(sys.argv[1:]),
        **_data_record(args, dims),
        **extra, "held_out_organs": list(HELD_OUT_ORGANS), "validation_case": VALIDATION_CASE,
        "batch_size": batch, "lr": args.lr, "seed": args.seed, **run,
        "onnx_max_abs_diff": max_diff,
    }


def run_mideepseg(args: argparse.Namespace) -> dict:
    name = f"mideepseg-{args.dims}d-{args.encoding}"
    batch = args.batch_size or (8 if args.dims == 2 else 2)
    model = mideepseg.build_network(args.dims)
    warm = _warm_start(model, args, name)
    reuse = args.reuse or (1 if args.dims == 2 else 4)
    samples = mideepseg.Samples(args.dims, args.encoding, batch, args.seed,
                                real=not args.synthetic_only, reuse=reuse,
                                extra=args.extra_sets)
    config = _run_config(args, name)
    run = train(model, samples, mideepseg.loss_fn, config)
    metrics = {} if args.skip_validation else mideepseg.validate(
        mideepseg.torch_predictor(model), args.dims, args.encoding, new_sets=args.extra_sets)
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
        "training": _training(args, batch, run, max_diff, args.dims, sample_reuse=reuse,
                              **warm),
        "metrics": metrics,
    }
    write_card(path, card)
    return card


def run_bifseg(args: argparse.Namespace) -> dict:
    dims = 2 if args.recipe == "pnet" else 3
    name = bifseg_io.NAMES[dims]
    batch = args.batch_size or (6 if dims == 2 else 2)
    model = bifseg.build_network(dims)
    warm = _warm_start(model, args, name)
    samples = bifseg.Samples(dims, batch, args.seed, real=not args.synthetic_only,
                             extra=args.extra_sets)
    config = _run_config(args, name)
    run = train(model, samples, bifseg.loss_fn, config)
    metrics = {} if args.skip_validation else bifseg.validate(
        bifseg.torch_predictor(model), dims, new_sets=args.extra_sets)
    size = bifseg_io.INPUT_SIZE[dims]
    example = torch.randn(1, 1, *size, generator=torch.Generator().manual_seed(0))
    path = args.out / f"{name}.onnx"
    max_diff = export_onnx(model, example, path, output_names=("logits", "features"))
    block6_path = args.out / f"{name}.block6.npz"
    block6_path.write_bytes(weights_to_bytes(model.block6.weights()))
    network = bifseg_io.NETWORK[dims]
    features = 5 * network.get("compressed", network["width"])
    card = {
        "name": name, "version": "1.0.0", "task": "bifseg", "dims": dims,
        "input_size": list(size), "in_channels": 1, "outputs": ["logits", "features"],
        "feature_channels": features, "file": path.name,
        "block6_weights": {"file": block6_path.name, "sha256": sha256_file(block6_path)},
        "input": "box crop (grown by box_margin_voxels at test time), resized linearly to "
                 "input_size, z-scored by the crop's own mean and std",
        "box_margin_voxels": bifseg_io.BOX_MARGIN,
        "network": {"type": "PNet" if dims == 2 else "PCNet", **network, "norm": "instance",
                    "parameters": sum(p.numel() for p in model.parameters())},
        "training": _training(args, batch, run, max_diff, dims, loss="cross entropy",
                              box_margin_voxels=[0, bifseg.MAX_TRAIN_MARGIN], **warm),
        "metrics": metrics,
        "runtime": SMALL_NETWORK_RUNTIME,
    }
    write_card(path, card)
    return card


def run_propagation(args: argparse.Namespace) -> dict:
    name = "propnet-2d"
    batch = args.batch_size or 8
    model = propagation.build_network()
    samples = propagation.Samples(batch, args.seed, real=not args.synthetic_only)
    config = _run_config(args, name)
    started = time.time()
    run = train(model, samples, propagation.loss_fn, config)
    metrics = {} if args.skip_validation else propagation.validate(
        propagation.torch_predictor(model))
    size = propagation_io.INPUT_SIZE
    example = torch.randn(1, 2, *size, generator=torch.Generator().manual_seed(0))
    path = args.out / f"{name}.onnx"
    max_diff = export_onnx(model, example, path)
    card = {
        "name": name, "version": "1.0.0", "task": "propagation", "dims": 2,
        "input_size": list(size), "in_channels": 2, "inputs": ["image", "prior"],
        "outputs": ["logits"], "file": path.name,
        "contract": "medseg.models.propagation_io",
        "network": {"type": "UNet", **propagation.NETWORK, "norm": "instance",
                    "parameters": sum(p.numel() for p in model.parameters())},
        "training": {
            "command": "medseg-train " + shlex.join(sys.argv[1:]),
            "data": ("synthetic 3D volumes only" if args.synthetic_only else
                     f"synthetic 3D volumes ({propagation.SYNTHETIC_FRACTION:.0%}) + seen "
                     f"organs of {', '.join(TRAIN_CASES)} along all three axes"),
            "prior_offsets": list(propagation.OFFSETS),
            "stop_fraction": propagation.STOP_FRACTION,
            "held_out_organs": list(HELD_OUT_ORGANS), "validation_case": VALIDATION_CASE,
            "batch_size": batch, "lr": args.lr, "seed": args.seed, **run,
            "wall_time_with_validation_s": round(time.time() - started, 1),
            "onnx_max_abs_diff": max_diff,
        },
        "metrics": {"protocol": "one-shot propagation along z from the reference mask of the "
                                "organ's largest slice; Dice of the organ's largest 3D component",
                    **metrics},
        "runtime": SMALL_NETWORK_RUNTIME,
    }
    write_card(path, card)
    return card


def run_editing(args: argparse.Namespace) -> dict:
    name = "editnet-2d"
    batch = args.batch_size or 8
    model = editing.build_network()
    warm = _warm_start(model, args, name)
    samples = editing.samples(batch, args.seed, real=not args.synthetic_only)
    config = _run_config(args, name)
    started = time.time()
    run = train(model, samples, editing.loss_fn, config)
    metrics = {} if args.skip_validation else editing.validate(editing.torch_forward(model))
    size = editing_io.INPUT_SIZE
    example = torch.randn(1, editing_io.IN_CHANNELS, *size,
                          generator=torch.Generator().manual_seed(0))
    path = args.out / f"{name}.onnx"
    max_diff = export_onnx(model, example, path)
    card = {
        "name": name, "version": "1.0.0", "task": "editing", "dims": 2,
        "input_size": list(size), "in_channels": editing_io.IN_CHANNELS,
        "inputs": list(editing_io.CHANNELS), "outputs": ["logits"], "file": path.name,
        "contract": "medseg.models.editing_io",
        "network": {"type": "UNet", **editing.NETWORK, "norm": "instance",
                    "parameters": sum(p.numel() for p in model.parameters())},
        "training": {
            "command": "medseg-train " + shlex.join(sys.argv[1:]),
            "data": ("synthetic 3D volumes only" if args.synthetic_only else
                     "2D slices (any axis) of synthetic 3D volumes and seen organs of "
                     f"{', '.join(TRAIN_CASES)} ({1 - editing.EXTRA_FRACTION:.0%}: 40 % of "
                     "them synthetic), and of the trainable structures (never a held-out "
                     f"organ) of {', '.join(extra_train_cases(2))} "
                     f"({editing.EXTRA_FRACTION:.0%}, by set {editing.EXTRA_WEIGHTS}); "
                     "imperfect masks = perturbed references "
                     f"({', '.join(editing.PERTURBATIONS)}); one simulated edit kind per "
                     f"sample {editing.KIND_WEIGHTS} (refuse: an add mark 4-24 mm outside or "
                     "a remove mark deep inside, target the reference); cross entropy weighted "
                     f"{editing.SELECT_WEIGHT}x on the error components a selection click "
                     "lands in"),
            **_cases_record(2), **warm,
            "held_out_organs": list(HELD_OUT_ORGANS), "validation_case": VALIDATION_CASE,
            "batch_size": batch, "lr": args.lr, "seed": args.seed, **run,
            "wall_time_with_validation_s": round(time.time() - started, 1),
            "onnx_max_abs_diff": max_diff,
        },
        "metrics": {"protocol": "Dice of the network's answer on perturbed reference slices "
                                "(held-out organs of every volume, seen organs of the "
                                "validation volume) after one simulated edit of each kind",
                    **metrics},
        "runtime": SMALL_NETWORK_RUNTIME,
    }
    write_card(path, card)
    return card


def _refinenet_training(args: argparse.Namespace, batch: int, run: dict, max_diff: float,
                        started: float, data: str) -> dict:
    return {
        "command": "medseg-train " + shlex.join(sys.argv[1:]),
        "data": "synthetic only" if args.synthetic_only else data,
        "held_out_volume": VALIDATION_CASE,
        "held_out_organs": "none: a volume is held out instead (RefineNet must see the organs)",
        "batch_size": batch, "lr": args.lr, "seed": args.seed, **run,
        "wall_time_with_validation_s": round(time.time() - started, 1),
        "onnx_max_abs_diff": max_diff,
    }


def run_organ(args: argparse.Namespace) -> dict:
    name = "organnet-2d"
    fold = getattr(args, "fold", None)
    if fold is not None and Path(args.out).resolve() == Path(WEIGHTS).resolve():
        raise SystemExit("a fold model is never shipped: give --out outside the weights folder")
    cases = refinenet.fold_cases(fold) if fold else None
    batch = args.batch_size or 4
    model = refinenet.build_backbone()
    samples = refinenet.OrganSamples(batch, args.seed, real=not args.synthetic_only, cases=cases)
    config = _run_config(args, name)
    started = time.time()
    run = train(model, samples, refinenet.organ_loss, config)
    metrics = {} if args.skip_validation else refinenet.validate_organs(
        refinenet.torch_backbone(model), fold or VALIDATION_CASE)
    size = refinenet_io.GRID_SIZE
    example = torch.randn(1, 1, *size, generator=torch.Generator().manual_seed(0))
    path = args.out / f"{name}.onnx"
    max_diff = export_onnx(model, example, path,
                           output_names=("logits", "logits_half", "logits_quarter"))
    card = {
        "name": name, "version": "1.0.0", "task": "organ", "dims": 2,
        "input_size": list(size), "in_channels": 1, "inputs": ["image"],
        "outputs": ["logits", "logits_half", "logits_quarter"], "file": path.name,
        "organs": list(refinenet_io.ORGANS),
        "contract": "medseg.models.refinenet_io (backbone): axial slice on a "
                    f"{refinenet_io.GRID_MM:g} mm {size[0]}x{size[1]} grid centred on the slice; "
                    "one sigmoid channel per organ",
        "network": {"type": "U-Net with pyramid side outputs (RefineNet backbone)",
                    **refinenet.BACKBONE, "norm": "instance",
                    "parameters": sum(p.numel() for p in model.parameters())},
        "training": _refinenet_training(
            args, batch, run, max_diff, started,
            "axial slices of totalseg ct_3mm and mr_3mm (all organs) and the liver of "
            f"dcmqi_ct3slice; sampling weights {refinenet.CASE_WEIGHTS}" if cases is None else
            f"axial slices of {', '.join(cases)} (all labelled organs; dcmqi_ct3slice: liver "
            f"only); sampling weights { {c: refinenet.CASE_WEIGHTS[c] for c in cases} }"),
        "metrics": {"protocol": "3D Dice per organ on the never-trained volume totalseg/ct_dicom "
                                "(largest component of probability >= 0.5, as served); the "
                                "volume has no kidneys, so they are not measured"
                                if fold is None else
                                f"3D Dice per organ on the left-out volume totalseg/{fold} "
                                "(largest component of probability >= 0.5, as served)",
                    **metrics},
        "runtime": SMALL_NETWORK_RUNTIME,
    }
    if fold is not None:
        card["fold"] = {"left_out": fold, "trained_on": list(cases or ()), "shipped": False,
                        "why": f"a leave-one-volume-out model to measure kidneys on a held-out "
                               f"volume ({fold}); it trains on {VALIDATION_CASE}, the shipped "
                               "model's held-out volume, so it is never shipped"}
        card["training"]["held_out_volume"] = fold
    write_card(path, card)
    return card


def run_refine(args: argparse.Namespace) -> dict:
    name = "refinenet-2d"
    batch = args.batch_size or 8
    model = refinenet.build_refiner()
    _warm_start(model, args, name)
    real_starts = getattr(args, "real_starts", False)
    samples = refinenet.RefineSamples(batch, args.seed, real=not args.synthetic_only,
                                      real_starts=real_starts)
    config = _run_config(args, name)
    started = time.time()
    run = train(model, samples, propagation.loss_fn, config)
    metrics = {} if args.skip_validation else refinenet.validate_refiner(
        refinenet.torch_refiner(model))
    size = refinenet_io.INPUT_SIZE
    example = torch.randn(1, len(refinenet_io.REFINE_CHANNELS), *size,
                          generator=torch.Generator().manual_seed(0))
    path = args.out / f"{name}.onnx"
    max_diff = export_onnx(model, example, path)
    card = {
        "name": name, "version": "1.0.0", "task": "refinement", "dims": 2,
        "input_size": list(size), "in_channels": len(refinenet_io.REFINE_CHANNELS),
        "inputs": list(refinenet_io.REFINE_CHANNELS), "outputs": ["logits"], "file": path.name,
        "contract": "medseg.models.refinenet_io (refiner)",
        "network": {"type": "RefineNet refinement network (multi-scale initial result and "
                            "seed maps joined at 1x, 1/2, 1/4)", **refinenet.REFINER,
                    "norm": "instance", "parameters": sum(p.numel() for p in model.parameters())},
        "training": _refinenet_training(
            args, batch, run, max_diff, started,
            "2D slices (any axis) of synthetic 3D volumes (40 %) and every organ of "
            f"{', '.join(TRAIN_CASES)}; initial results = perturbed references "
            f"({', '.join(editing.PERTURBATIONS)}) or empty ({refinenet.EMPTY_START:.0%}); "
            f"seeds from the skeletons of the over-/under-segmented regions (eq. 1), modes "
            f"{refinenet.SEED_MODES}"
            + (f"; --real-starts: {refinenet.AXIAL_STARTS:.0%} axial slices of "
               f"{', '.join(TRAIN_CASES)} and the liver of {refinenet.EXTRA_CASE} with initial "
               f"results {refinenet.AXIAL_KINDS} (backbone = the committed organ start on these "
               f"training volumes: its real errors), {refinenet.COARSE_START:.0%} of the others "
               f"the reference on a coarse grid, {refinenet.CLICK_CROP:.0%} of the samples with "
               f"a click cut as the click crop around the robot's click" if real_starts else "")
            + (f"; warm start from {args.init_from.name}" if args.init_from is not None else "")),
        "metrics": {"protocol": "axial slices of the never-trained volume totalseg/ct_dicom "
                                "(largest slice and quartile slices of each organ) started from "
                                "a perturbed reference; robot clicks at the deepest voxel of the "
                                "largest error, all clicks as seeds; the network's own answer",
                    **metrics},
        "runtime": SMALL_NETWORK_RUNTIME,
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
    _box_or_points(mds)
    prop = sub.add_parser("propagation", help="slice-propagation 2D U-Net (image + prior mask)")
    _common(prop)
    edit = sub.add_parser("editing", help="deep-editing-tools 2D network (image, mask, edits)")
    _common(edit)
    _init_from(edit)
    organ = sub.add_parser("organ", help="RefineNet backbone: organs by name (axial 2D)")
    _common(organ)
    organ.add_argument("--fold", choices=TRAIN_CASES, default=None,
                       help="a leave-one-volume-out fold model, NOT for shipping: train on every "
                            "labelled abdominal volume but this one (the shipped model's held-out "
                            "volume included) and validate on it (it labels kidneys); write it "
                            "to --out, never to the committed weights")
    refine = sub.add_parser("refine", help="RefineNet refinement network (image, initial "
                                           "result, seed maps)")
    _common(refine)
    _init_from(refine)
    refine.add_argument("--real-starts", action="store_true",
                        help="also train on the backbone's real starts, coarse-grid starts and "
                             "click crops (refinenet.AXIAL_STARTS, COARSE_START, CLICK_CROP)")
    for recipe, what in (("pnet", "BIFSeg P-Net: 2D box segmentation"),
                         ("pcnet", "BIFSeg PC-Net: 3D box segmentation")):
        box = sub.add_parser(recipe, help=what)
        _common(box)
        _box_or_points(box)
    args = parser.parse_args(argv)
    if args.steps is None and args.minutes is None:
        parser.error("give --minutes and/or --steps")
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.time()
    recipes = {"mideepseg": run_mideepseg, "propagation": run_propagation,
               "pnet": run_bifseg, "pcnet": run_bifseg, "editing": run_editing,
               "organ": run_organ, "refine": run_refine}
    card = recipes[args.recipe](args)
    print(json.dumps({"name": card["name"], "metrics": {k: v for k, v in card["metrics"].items()
                                                         if k != "per_organ"},
                      "wall_time_s": round(time.time() - started, 1)}, indent=2))


if __name__ == "__main__":
    main()
