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
    python -m medseg_bench.refinenet --no-seen --organs spleen --methods refinenet --per-slice
    python -m medseg_bench.refinenet --proxy '{}' '{"crop_grow": 0.1}'   # tune on training data

3. `--per-slice` (diagnosis): per slice of the held-out volume, the Dice trace, the object
   crop's grid scale (slice voxels per network grid voxel), the *grid ceiling* (the reference
   itself resampled onto that crop's 96 x 96 grid and back: what a perfect network answer on
   that grid would score), the *smooth ceiling* (the reference smoothed, Gaussian of one voxel,
   and thresholded at 0.5: what a smooth outline scores against a staircase reference), the
   error voxels after the clicks that lie within 3 voxels of the reference's outline, and how
   many of the errors are additions / misses.
4. `--proxy PARAMS...` (tuning without the held-out volume): refinenet click parameters on
   training-volume slices at ~1 mm in-plane, the resolution where the coarse-grid effects
   show: `dcmqi_ct3slice`'s liver (0.8 mm CT, each slice 3 times) and 8 liver and 8 spleen
   slices of `ct_3mm` resampled to 1 mm in-plane (image linear, labels nearest: the held-out
   volume's labels are such a 3 mm label map, see docs/benchmarks.md). Starts: the reference
   on a coarse grid (medseg_train.refinenet.coarse, the recipe's model of the 3.75 mm
   backbone's start), and with `--proxy-perturb` that start perturbed once more (a bite,
   bulge, blob or boundary shift), fixed seeds; 3 robot clicks through the engine's
   refine_slice. Both networks trained on these volumes, so the numbers only rank settings.
"""

from __future__ import annotations

import argparse
import functools
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


def slice_diagnosis(case_name: str, organ: str, start: np.ndarray, volume: np.ndarray,
                    traces: list[list[float]]) -> list[str]:
    """The `--per-slice` rows (module doc, 3) of one organ's refined volume."""
    from scipy import ndimage

    from medseg.models.propagation_io import probability_on_slice

    case = load_case(case_name)
    reference = case.mask(organ)
    rows = []
    shown = [z for z in range(reference.shape[0])
             if not (reference[z].sum() < MIN_AREA and not start[z].any())]
    for z, trace in zip(shown, traces):
        ref, mask = reference[z], volume[z]
        crop = refinenet_io.refine_crop(ref | start[z], np.zeros((0, 2)), np.zeros((0, 2)),
                                        case.spacing[1:])
        on_grid = refinenet_io.target_on_grid(ref, crop).astype(np.float32)
        ceiling = dice(probability_on_slice(on_grid, crop, ref.shape) >= 0.5, ref)
        smooth = dice(ndimage.gaussian_filter(ref.astype(np.float32), 1.0) >= 0.5, ref)
        error = ref ^ mask
        outline = (ndimage.distance_transform_edt(ref)
                   + ndimage.distance_transform_edt(~ref)) <= 3  # one of the two is 0
        near = float((error & outline).sum()) / max(int(error.sum()), 1)
        added, missed = int((mask & ~ref).sum()), int((ref & ~mask).sum())
        rows.append(f"| {organ} | {z} | {int(ref.sum())} | {refinenet_io.grid_scale(crop):.2f} | "
                    + " / ".join(f"{v:.3f}" for v in trace)
                    + f" | {ceiling:.3f} | {smooth:.3f} | {near:.0%} | {added} / {missed} |")
    return rows


def proxy_slices() -> list[tuple[str, np.ndarray, np.ndarray, tuple[float, float], int]]:
    """(name, image, reference, spacing, draw) of the `--proxy` slices (module doc, 4)."""
    from scipy import ndimage

    from medseg_train.refinenet import EXTRA_CASE, organ_volume

    out = []
    image, targets, _, spacing = organ_volume(EXTRA_CASE)
    k = refinenet_io.organ_index("liver")
    for z in range(image.shape[0]):
        if targets[z, k].sum() > MIN_AREA:
            out += [("dcmqi_ct3slice liver", image[z], targets[z, k] > 0,
                     (spacing[1], spacing[2]), draw) for draw in range(3)]
    image, targets, _, spacing = organ_volume("ct_3mm")
    factor = 3
    for organ in ("liver", "spleen"):
        k = refinenet_io.organ_index(organ)
        shown = [z for z in range(image.shape[0]) if targets[z, k].sum() >= 2 * MIN_AREA]
        for z in shown[::max(len(shown) // 8, 1)][:8]:
            fine = ndimage.zoom(image[z], factor, order=1)
            reference = np.kron(targets[z, k], np.ones((factor, factor), np.uint8)) > 0
            out.append((f"ct_3mm at 1 mm {organ}", fine, reference,
                        (spacing[1] / factor, spacing[2] / factor), 0))
    return out


def proxy_row(slices, params: dict, clicks: int, perturbed: bool) -> str:
    """Mean slice Dice after 0..clicks on the `--proxy` slices with refinenet `params`."""
    from medseg.engine import refinenet_method
    from medseg_train.editing import perturb
    from medseg_train.refinenet import coarse, robot_click_trace

    _, forward = refinenet_method.load_refiner()
    settings = refinenet_method.RefineNetParams(**params)

    def served_answer(image, spacing, head, fg, bg, _click):
        return refinenet_method.refine_slice(image, head, fg, bg, spacing, settings, forward)[0]

    traces: dict[str, list[list[float]]] = {}
    for name, image, reference, spacing, draw in slices:
        rng = np.random.default_rng([7, draw, int(reference.sum())])
        head = coarse(reference, rng, spacing)
        if perturbed:
            head = perturb(head, rng)
        answer = functools.partial(served_answer, image, spacing)
        traces.setdefault(name, []).append(robot_click_trace(head, reference, clicks, answer))
    return " | ".join(f"{name} ({len(t)}): " + " / ".join(f"{v:.4f}" for v in np.mean(t, axis=0))
                      for name, t in traces.items())


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
    parser.add_argument("--per-slice", action="store_true",
                        help="per-slice refinenet diagnosis rows (module doc, 3)")
    parser.add_argument("--proxy", nargs="+", metavar="PARAMS",
                        help="only rank refinenet parameter sets (JSON each) on training-volume "
                        "slices at ~1 mm (module doc, 4)")
    parser.add_argument("--proxy-perturb", action="store_true",
                        help="--proxy starts perturbed once more (bite, bulge, blob, boundary)")
    args = parser.parse_args()
    if args.proxy:
        slices = proxy_slices()
        print(f"## Training-volume proxy, mean slice Dice after 0..{args.clicks} clicks "
              f"({'perturbed ' if args.proxy_perturb else ''}coarse-grid starts)\n")
        for params in args.proxy:
            print(f"- `{params}`: "
                  + proxy_row(slices, json.loads(params), args.clicks, args.proxy_perturb),
                  flush=True)
        return
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
    diagnosis: list[str] = []
    for organ, (probability, start, _) in held_out.items():
        reference = case.mask(organ)
        for method in args.methods.split(","):
            traces, volume = refine_slices(
                VALIDATION_CASE, organ, probability, start, method, args.clicks,
                json.loads(args.params) if method == "refinenet" else None)
            if args.per_slice and method == "refinenet":
                diagnosis += slice_diagnosis(VALIDATION_CASE, organ, start, volume, traces)
            means = np.mean(np.asarray(traces), axis=0)
            reached = np.mean([max(t) >= 0.95 for t in traces])
            print(f"| {organ} | {method} | {len(traces)} | "
                  + " | ".join(f"{v:.3f}" for v in means)
                  + f" | {reached:.0%} | {dice(start, reference):.3f} | "
                    f"{dice(volume, reference):.3f} |", flush=True)
    if diagnosis:
        print(f"\n## Per slice (refinenet, {VALIDATION_CASE})\n")
        print("| organ | z | reference voxels | grid scale | Dice after 0..clicks | grid ceiling "
              "| smooth ceiling | errors within 3 voxels of the outline | added / missed voxels |")
        print("|---|---|---|---|---|---|---|---|---|")
        print("\n".join(diagnosis))


if __name__ == "__main__":
    main()
