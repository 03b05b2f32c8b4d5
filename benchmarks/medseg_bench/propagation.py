"""Propagation benchmark: `python -m medseg_bench.propagation [--quick] [--method NAME ...]`.

For each organ of the shared CT and MR volumes (ct_3mm, mr_3mm, and the 512 x 512 DICOM CT
for time per slice at full resolution): the organ's reference mask on
its middle slice (along z) is propagated one-shot (slice-propagation paper, Table 2 style), then
the worst slice is corrected with the reference mask, locked, and re-propagated in both
directions up to the neighbouring locked slices (the paper's multiple-corrections experiment),
1, 2 and 4 times. Dice is over the whole volume, corrected slices included. Prints a markdown
table, with each method's means over all, held-out (training.data.HELD_OUT_ORGANS: no network
saw them) and seen organs. Every registered predictor runs unless --method is given: a new
predictor (the network) joins the table by registering it.
"""

from __future__ import annotations

import argparse
import json
from typing import TypedDict

import numpy as np

from medseg import builtin
from medseg.algorithms.metrics import dice
from medseg.algorithms.resample import resize_linear
from medseg.engine import imageio
from medseg.engine.prompts import Box
from medseg.engine.propagation import propagate, split_params
from medseg_train.data import HELD_OUT_ORGANS, data_root, load_nifti

DATA = data_root()
ORGANS = ["liver", "spleen", "kidney_left", "kidney_right", "aorta", "stomach", "gallbladder",
          "pancreas", "inferior_vena_cava", "urinary_bladder", "heart", "esophagus"]
QUICK = {"ct_3mm": ["liver", "spleen"], "mr_3mm": ["liver"], "ct_dicom": ["liver"]}
VOLUMES = ("ct_3mm", "mr_3mm", "ct_dicom")  # ct_dicom: 512 x 512 slices, 0.98 mm
CORRECTIONS = (1, 2, 4)


def load(name: str):
    """(image float32 (Z, Y, X), labels (Z, Y, X), spacing (sz, sy, sx) mm, {organ: label}).
    ct_dicom is read as the service reads it (DICOM series) and its mask put on that grid."""
    seg = load_nifti(DATA / f"{name}_seg.nii.gz")
    labels = json.loads((DATA / "labels.json").read_text())[f"{name}_seg.nii.gz"]
    seg_zyx = np.asarray(seg.dataobj).transpose(2, 1, 0)
    if name == "ct_dicom":
        files = sorted((DATA / "ct_dicom").iterdir())
        volume = imageio.load_image([(f.name, f.read_bytes()) for f in files])
        seg_zyx = imageio.reorient_to(volume.affine, volume.shape, seg_zyx, seg.affine)
        return (volume.array.astype(np.float32), seg_zyx, volume.spacing,
                {v: int(k) for k, v in labels.items()})
    image = load_nifti(DATA / f"{name}.nii.gz")
    return (np.asarray(image.dataobj, np.float32).transpose(2, 1, 0), seg_zyx,
            tuple(float(s) for s in image.header.get_zooms()[::-1]),
            {v: int(k) for k, v in labels.items()})


def run_from(image, spacing, mask, start, locked, method: str, overrides=None) -> list[float]:
    """Propagate from slice `start` of `mask` (z axis) into `mask` in place; seconds per slice."""
    spec = builtin.build().predictors.get(method)
    params, own = split_params(spec, overrides or {})
    predictor = spec.build(own, image[start], mask[start], spacing[1:])

    def read_image(box: Box) -> np.ndarray:
        return image[tuple(slice(lo, hi + 1) for lo, hi in zip(box.lo, box.hi))]

    seconds = []
    for result in propagate(read_image, image.shape, spacing, 0, start, mask[start], predictor,
                            params, locked):
        mask[result.index] = result.mask
        if not result.cleared:
            seconds.append(result.seconds)
    return seconds


class Row(TypedDict):
    slices: int
    dice: list[float]  # one-shot, then after each of CORRECTIONS
    ms_per_slice: float


def evaluate(image, reference, spacing, method: str, overrides: dict | None = None) -> Row:
    """Dice one-shot and after 1, 2, 4 corrections; ms per predicted slice."""
    zs = np.nonzero(reference.any(axis=(1, 2)))[0]
    start = int((zs.min() + zs.max()) // 2)
    mask = np.zeros_like(reference)
    mask[start] = reference[start]
    locked = {start}
    seconds = run_from(image, spacing, mask, start, locked, method, overrides)
    dices = [dice(mask, reference)]
    for done in range(1, max(CORRECTIONS) + 1):
        errors = [int((mask[z] ^ reference[z]).sum()) if z not in locked else 0
                  for z in range(len(mask))]
        worst = int(np.argmax(errors))  # the slice a user would fix: most wrong voxels
        if errors[worst] > 0:
            mask[worst] = reference[worst]
            locked.add(worst)
            if reference[worst].any():
                seconds += run_from(image, spacing, mask, worst, locked, method, overrides)
        if done in CORRECTIONS:
            dices.append(dice(mask, reference))
    return {"slices": len(zs), "dice": dices,
            "ms_per_slice": 1000.0 * float(np.mean(seconds)) if seconds else 0.0}


def ms_per_256_slice(method: str, overrides: dict | None = None, repeats: int = 15) -> float:
    """Median ms per predicted slice (the engine's whole step: ROI, predictor, clean-up) on
    256 x 256 slices: ct_dicom's largest liver slice and its neighbours resampled from 512 x
    512 (~1.95 mm), the start slice's reference propagated one slice each way."""
    image, labels, spacing, label_ids = load("ct_dicom")
    liver = labels == label_ids["liver"]
    z = int(np.argmax(liver.sum(axis=(1, 2))))
    size = (256, 256)
    small = np.stack([resize_linear(s, size) for s in image[z - 1:z + 2]])
    reference = np.stack([resize_linear(m.astype(np.float32), size) > 0.5
                          for m in liver[z - 1:z + 2]])
    small_spacing = (spacing[0],) + tuple(s * n / 256 for s, n in zip(spacing[1:], image.shape[1:]))
    seconds = []
    for _ in range(repeats):
        mask = np.zeros_like(reference)
        mask[1] = reference[1]
        seconds += run_from(small, small_spacing, mask, 1, {1}, method, overrides)
    return 1000.0 * float(np.median(seconds))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="medseg_bench.propagation", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="liver/spleen only")
    parser.add_argument("--method", action="append", help="predictor(s) (default: all)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=JSON",
                        help="parameter override, e.g. --param dilation_mm=12")
    parser.add_argument("--min-voxels", type=int, default=200, help="skip smaller organs")
    args = parser.parse_args(argv)
    methods = args.method or builtin.build().predictors.names()
    overrides = {k: json.loads(v) for k, v in (p.split("=", 1) for p in args.param)}
    print("| method | volume | organ | slices | one-shot | 1 corr. | 2 corr. | 4 corr. "
          "| ms/slice |")
    print("|---|---|---|---|---|---|---|---|---|")
    for method in methods:
        means: list[list[float]] = []
        groups: dict[str, list[list[float]]] = {"held-out": [], "seen": []}
        for name in VOLUMES:
            image, labels, spacing, label_ids = load(name)
            for organ in QUICK[name] if args.quick else ORGANS:
                if organ not in label_ids or (labels == label_ids[organ]).sum() < args.min_voxels:
                    continue
                row = evaluate(image, labels == label_ids[organ], spacing, method, overrides)
                means.append(row["dice"])
                groups["held-out" if organ in HELD_OUT_ORGANS else "seen"].append(row["dice"])
                cells = " | ".join(f"{d:.3f}" for d in row["dice"])
                print(f"| {method} | {name} | {organ} | {row['slices']} | {cells} | "
                      f"{row['ms_per_slice']:.1f} |", flush=True)
        mean = " | ".join(f"**{v:.3f}**" for v in np.mean(means, axis=0))
        print(f"| {method} | all | **mean of {len(means)}** | | {mean} | |")
        for group, rows in groups.items():
            if rows:
                mean = " | ".join(f"{v:.3f}" for v in np.mean(rows, axis=0))
                print(f"| {method} | all | mean of {len(rows)} {group} | | {mean} | |")
    print()
    for method in methods:
        print(f"{method}: {ms_per_256_slice(method, overrides):.1f} ms per 256 x 256 slice "
              "(median, ct_dicom liver resampled)")


if __name__ == "__main__":
    main()
