"""Collapse diagnostic: `python -m medseg_bench.collapses [--dims 2,3] [--refinements 10]`.

Replays the robustness robot (medseg_bench.clicks --robustness: same objects, starts and
corrective clicks) and prints one line per click after which Dice fell by more than
`--drop` (default the benchmark's 0.05), with what is needed to tell why:

- the object, the method x start, the click number, its kind (fg / bg) and the size of the
  reference error component it lands in (and the click's depth in it, voxels);
- the head mask before and after (voxels), what the click added and removed, split into
  right (towards the reference) and wrong, and how much of the wrong change lies outside the
  clicked error component (dilated by 2 voxels);
- the code path, from the method's `info`: the model-free refinement's window, influence and
  cut size, MIDeepSeg's IF-GC / GC, ROI growths;
- a cause: `fg-leak` (a foreground click added tissue outside the object), `bg-bite` (a
  background click removed object), `fg-removes` / `bg-adds` (a breach of the refinement
  contract), `other`.

`--json FILE` writes the lines as JSON too (masks not included).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
from scipy import ndimage

from medseg.algorithms.metrics import dice
from medseg.engine.prompts import Marks
from medseg_bench.clicks import (
    COLLAPSE_DROP,
    GROUPS,
    METHODS,
    REFINE_PARAMS,
    ROBUST_CONFIGS,
    ROBUST_PER_GROUP,
    BenchObject,
    EngineSegment,
    _click_marks,
    _robot_box,
    model_cards,
    robust_objects,
)
from medseg_bench.robot import robot_click
from medseg_train.simulate import interior_margin_points


def _error_component(pred: np.ndarray, ref: np.ndarray, zyx, fg: bool) -> tuple[np.ndarray, int]:
    """(the error component the click lands in, the click's depth in it in voxels)."""
    error = (ref & ~pred) if fg else (pred & ~ref)
    labels, _ = ndimage.label(error)
    comp = labels == labels[tuple(zyx)]
    pad = [(1, 1) if n > 1 else (0, 0) for n in comp.shape]  # not along a 2D slice's axis
    edt = ndimage.distance_transform_edt(np.pad(comp, pad))
    edt = edt[tuple(slice(a, a + n) for (a, _), n in zip(pad, comp.shape))]
    return comp, int(round(float(edt[tuple(zyx)])))


def diagnose(obj: BenchObject, label: str, start: str, start_method: str, method: str,
             refinements: int, seed: int, drop: float) -> list[dict]:
    """The robot session of run_robust, with a record of every click whose Dice fell by more
    than `drop`."""
    segment = EngineSegment(obj.image, obj.spacing, obj.plane)
    if start == "click":
        zyx, fg = robot_click(segment.mask, obj.mask)
        segment.interact("click", start_method, _click_marks(zyx, fg))
    elif start == "box":
        segment.interact("box", start_method, Marks(boxes=[_robot_box(obj)]))
    else:
        squeezed = obj.mask[0] if obj.plane is not None else obj.mask
        points = interior_margin_points(squeezed, np.random.default_rng(seed), extra=(0, 0))
        if obj.plane is not None:
            points = np.concatenate([np.zeros((len(points), 1), int), points], axis=1)
        segment.interact("points", start_method, Marks(points=points))
    ref = obj.mask
    before_dice = dice(segment.mask, ref)
    out = []
    for k in range(1, refinements + 1):
        if np.array_equal(segment.mask, ref):
            break
        zyx, fg = robot_click(segment.mask, ref)
        before = segment.mask.copy()
        comp, depth = _error_component(before, ref, zyx, fg)
        segment.interact("click", method, _click_marks(zyx, fg), REFINE_PARAMS.get(method))
        after = segment.mask
        now = dice(after, ref)
        if before_dice - now > drop:
            added, removed = after & ~before, before & ~after
            wrong = (added & ~ref) | (removed & ref)
            near = ndimage.binary_dilation(comp, iterations=2)
            if fg and (removed.sum() > 0):
                cause = "fg-removes"
            elif not fg and added.sum() > 0:
                cause = "bg-adds"
            elif fg and (added & ~ref).sum() > 0:
                cause = "fg-leak"
            elif not fg and (removed & ref).sum() > 0:
                cause = "bg-bite"
            else:
                cause = "other"
            info = segment.last_info
            out.append({
                "object": f"{obj.case}/{obj.organ}", "group": obj.group,
                "dims": 2 if obj.plane is not None else 3, "voxels": int(ref.sum()),
                "config": f"{label} ({start})", "click": k, "kind": "fg" if fg else "bg",
                "zyx": [int(v) for v in zyx], "error_voxels": int(comp.sum()), "depth": depth,
                "dice": [round(before_dice, 3), round(now, 3)],
                "head": [int(before.sum()), int(after.sum())],
                "added": [int((added & ref).sum()), int((added & ~ref).sum())],
                "removed": [int((removed & ~ref).sum()), int((removed & ref).sum())],
                "wrong_outside_error": int((wrong & ~near).sum()),
                "info": {k2: v for k2, v in info.items() if k2 != "model"}, "cause": cause})
        before_dice = now
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", default="2")
    parser.add_argument("--refinements", type=int, default=10)
    parser.add_argument("--per-group", type=int, default=None)
    parser.add_argument("--drop", type=float, default=COLLAPSE_DROP)
    parser.add_argument("--only", default=None, help="substring of the config label")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    cards = model_cards()
    records: list[dict] = []
    for dims in [int(d) for d in args.dims.split(",")]:
        objects = robust_objects(dims, args.per_group or ROBUST_PER_GROUP[dims], cards)
        for label, start, start_method, method in ROBUST_CONFIGS:
            if f"{dims}d" not in METHODS.get(start_method).dims:
                continue
            if args.only and args.only not in f"{label} ({start})":
                continue
            for group in GROUPS:
                members = [o for o in objects if o.group == group]
                for k, obj in enumerate(members):
                    for rec in diagnose(obj, label, start, start_method, method,
                                         args.refinements, k, args.drop):
                        records.append(rec)
                        print(json.dumps(rec), flush=True)
    print("\ncauses:", dict(Counter(r["cause"] for r in records)))
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
