"""RefineNet benchmark (issue 14 item 4) on the volume no RefineNet network was trained on,
totalseg/ct_dicom (512 x 512 x 20, 0.98 x 0.98 x 2 mm):

1. Automatic start: 3D Dice per organ of the `organ` start (the engine's organ_probability +
   organ_mask, as served), and for reference on the training volumes (seen: not a measure of
   generalisation).
2. Refinement: on every axial slice where the organ or the start shows, the robot user
   (medseg_bench.robot: deepest voxel of the largest error) clicks up to 3 times on that slice,
   starting from the organ start; each click goes through the served method (the engine's
   `refinenet` click: refinement network + local change; and, on the same starts, the
   model-free IF-GC click `geodesic-graphcut`). Reported: mean slice Dice after 0..3 clicks,
   the share of slices at >= 0.95 after at most 3 clicks, and the volume's 3D Dice once every
   slice got its clicks.

    python -m medseg_bench.refinenet            # both parts, markdown tables
    python -m medseg_bench.refinenet --clicks 3 --methods refinenet
    python -m medseg_bench.refinenet --no-seen --organs liver,spleen --methods refinenet \
        --params '{"snap": 0, "click_crop": true}'     # a variant of the served click
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from medseg.algorithms.metrics import dice
from medseg.engine.organ import organ_mask, organ_probability
from medseg.engine.prompts import Box, Marks, Plane
from medseg.models import refinenet_io
from medseg_bench.clicks import EngineSegment
from medseg_bench.robot import robot_click
from medseg_train.data import TRAIN_CASES, VALIDATION_CASE, load_case

MIN_AREA = 30  # reference voxels on a slice for it to count


def organ_starts(case_name: str) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """organ -> (probability, mask, seconds) for the organs the case labels."""
    case = load_case(case_name)
    out = {}
    for organ in refinenet_io.ORGANS:
        if organ not in case.present():
            continue
        start = time.perf_counter()
        probability = organ_probability(case.image, case.spacing, organ)
        out[organ] = (probability, organ_mask(probability), time.perf_counter() - start)
    return out


def refine_slices(case_name: str, organ: str, probability: np.ndarray, start: np.ndarray,
                  method: str, clicks: int, params: dict | None = None
                  ) -> tuple[list[list[float]], np.ndarray]:
    """Per slice: Dice after 0..clicks robot clicks of `method`; and the refined volume."""
    case = load_case(case_name)
    reference = case.mask(organ)
    volume = start.copy()
    traces = []
    for z in range(case.image.shape[0]):
        if reference[z].sum() < MIN_AREA and not start[z].any():
            continue
        segment = EngineSegment(case.image, case.spacing, Plane(0, z))
        segment.mask = start.copy()
        whole = Box((0, 0, 0), tuple(int(n) - 1 for n in start.shape))
        segment.stored = (whole, probability)
        segment.head = {"method": "refinenet", "plane": None}
        scores = [dice(segment.mask[z], reference[z])]
        for _ in range(clicks):
            if np.array_equal(segment.mask[z], reference[z]):
                scores.append(scores[-1])
                continue
            (_, y, x), foreground = robot_click(segment.mask[z:z + 1], reference[z:z + 1])
            point = np.asarray([[z, y, x]], np.int64)
            empty = np.zeros((0, 3), np.int64)
            segment.interact("click", method, Marks(point if foreground else empty,
                                                    empty if foreground else point), params)
            scores.append(dice(segment.mask[z], reference[z]))
        volume[z] = segment.mask[z]
        traces.append(scores)
    return traces, volume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=3)
    parser.add_argument("--methods", default="refinenet,geodesic-graphcut")
    parser.add_argument("--no-seen", action="store_true", help="skip the training volumes")
    parser.add_argument("--params", default="{}",
                        help='JSON parameters of the refinenet clicks, e.g. \'{"snap": 0}\'')
    parser.add_argument("--organs", default="", help="comma-separated organs (default: all "
                        "the held-out volume labels)")
    args = parser.parse_args()
    print(f"## Automatic organ start (3D Dice; held out = {VALIDATION_CASE})\n")
    print("| volume | organ | Dice | seconds |")
    print("|---|---|---|---|")
    held_out = organ_starts(VALIDATION_CASE)
    if args.organs:
        held_out = {o: v for o, v in held_out.items() if o in args.organs.split(",")}
    case = load_case(VALIDATION_CASE)
    for organ, (_, mask, seconds) in held_out.items():
        print(f"| {VALIDATION_CASE} (held out) | {organ} | {dice(mask, case.mask(organ)):.3f} | "
              f"{seconds:.1f} |")
    for name in () if args.no_seen else TRAIN_CASES:
        seen = load_case(name)
        for organ, (_, mask, seconds) in organ_starts(name).items():
            print(f"| {name} (trained on) | {organ} | {dice(mask, seen.mask(organ)):.3f} | "
                  f"{seconds:.1f} |")
    print(f"\n## Refinement clicks on the organ start ({VALIDATION_CASE}, axial slices, robot "
          f"user, up to {args.clicks} clicks per slice)\n")
    header = " | ".join(f"{k} clicks" for k in range(args.clicks + 1))
    print(f"| organ | method | slices | {header} | slices >= 0.95 | 3D start | 3D after |")
    print("|---|---|---|" + "---|" * (args.clicks + 1) + "---|---|---|")
    for organ, (probability, start, _) in held_out.items():
        reference = case.mask(organ)
        for method in args.methods.split(","):
            traces, volume = refine_slices(
                VALIDATION_CASE, organ, probability, start, method, args.clicks,
                json.loads(args.params) if method == "refinenet" else None)
            means = np.mean(np.asarray(traces), axis=0)
            reached = np.mean([max(t) >= 0.95 for t in traces])
            print(f"| {organ} | {method} | {len(traces)} | "
                  + " | ".join(f"{v:.3f}" for v in means)
                  + f" | {reached:.0%} | {dice(start, reference):.3f} | "
                    f"{dice(volume, reference):.3f} |", flush=True)


if __name__ == "__main__":
    main()
