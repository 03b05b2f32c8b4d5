"""Editing benchmark (issue 14): `python -m medseg_bench.editing [--quick] [--api]`. Prints
markdown tables (docs/benchmarks.md#editing-an-existing-mask).

Objects: the largest axial slice of each organ that `medseg_bench.clicks` scores in 2D (seen
organs of the never-trained-on ct_dicom volume, held-out organs of every volume). Starts:
- perturbed: the reference slice with one fixed perturbation each of the editing network's
  training kinds (medseg_train.editing.perturb: boundary moved 1-3 voxels, a bite, a bulge, a
  separate false blob), seeded per object;
- model-free: the mask `geodesic-graphcut` makes from one click at the organ's centre.
On each start, a robot makes 1, 2, 4 edits with one tool, each from the current mask against the
reference, as the paper simulates them (medseg.algorithms.editing): `select` clicks the core of
the largest error component, `brush` strokes the longest path inside it, `adjust` takes
amount = -K / (1 + K) with K = (V_over - V_under) / V_gt (not truncated; the amount is relative
to the mask's own size); `deep-editing` (network) and
`classical-editing` (model-free) both; against the same number of `geodesic-graphcut` refinement
clicks at the centre of the largest error (the IF-GC fusion of the refinement contract).

Also: the share of a bitten-out region one selection click recovers (target 80 %); adjustment
monotonicity (13 amounts from -0.9 to 2 on every start: a larger amount never gives a smaller
mask); the paper's robustness test (an "add" edit in clear background 10-20 mm away from a
correct mask, a "remove" edit at its deepest voxel: how much changes); and milliseconds per edit
in the engine. `--api` times the tools end to end through the API on ct_3mm (its own Redis).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from medseg import builtin
from medseg.algorithms.editing import (
    adjustment_k,
    simulate_brush,
    simulate_selection,
)
from medseg.algorithms.metrics import dice
from medseg.engine.method import SegmentContext
from medseg.engine.prompts import Box, Marks, Plane, Prompt, plane_record
from medseg_bench.clicks import BenchObject, bench_objects
from medseg_bench.robot import robot_click
from medseg_train.editing import PERTURBATIONS, perturb

METHODS = builtin.build().methods
BUDGETS = (1, 2, 4)
TOOLS = [("select", "deep-editing"), ("select", "classical-editing"),
         ("brush", "deep-editing"), ("brush", "classical-editing"),
         ("adjust", "deep-editing"), ("click", "geodesic-graphcut")]
MONOTONE_AMOUNTS = (-0.9, -0.5, -0.3, -0.2, -0.1, -0.05, 0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 2.0)
EMPTY = np.zeros((0, 3), dtype=np.int64)


@dataclass
class Segment:
    """One 2D segment on the engine alone (a (1, Y, X) slice, plane z=0), as
    usecases/interactions.py drives a method: cumulative marks for clicks, the edit's own
    marks for edits, the head's stored probability."""

    image: np.ndarray
    spacing: tuple[float, float, float]
    mask: np.ndarray
    marks: Marks = field(default_factory=Marks)
    head: dict = field(default_factory=dict)
    stored: tuple[Box, np.ndarray] | None = None
    seconds: list[float] = field(default_factory=list)

    def copy(self) -> Segment:
        return Segment(self.image, self.spacing, self.mask.copy(), self.marks, dict(self.head),
                       self.stored)

    def _read(self, array: np.ndarray) -> Callable[[Box], np.ndarray]:
        return lambda box: array[tuple(slice(lo, hi + 1) for lo, hi in zip(box.lo, box.hi))]

    def apply(self, kind: str, method_name: str, marks: Marks,
              options: dict | None = None) -> None:
        method = METHODS.get(method_name)
        plane = Plane(0, 0)
        prompt = Prompt(kind, marks, plane, dict(options or {}))
        prompt.check(self.image.shape)
        cumulative = prompt.apply_to(self.marks)
        stored = self.stored
        context = SegmentContext(kind, dict(self.head), lambda: stored,
                                 options=dict(prompt.options))
        idx = np.argwhere(self.mask)
        bbox = None if len(idx) == 0 else Box(tuple(idx.min(axis=0)), tuple(idx.max(axis=0)))
        start = time.perf_counter()
        result = method.run(read_image=self._read(self.image), read_mask=self._read(self.mask),
                            shape=self.image.shape, spacing=self.spacing,
                            marks=(prompt.marks if prompt.edits else cumulative),
                            plane=plane, params=method.parse_params({}),
                            current_mask_bbox=bbox, context=context)
        self.seconds.append(time.perf_counter() - start)
        roi = tuple(slice(lo, hi + 1) for lo, hi in zip(result.roi.lo, result.roi.hi))
        self.mask[roi] = result.mask
        self.marks, self.stored = cumulative, (result.roi, result.probability)
        self.head = {"method": method_name, "plane": plane_record(plane)}


def _at(points2d: np.ndarray) -> np.ndarray:
    points2d = np.asarray(points2d, dtype=np.int64).reshape(-1, 2)
    return np.column_stack([np.zeros(len(points2d), np.int64), points2d])


def robot_edit(segment: Segment, reference: np.ndarray, kind: str, method: str) -> bool:
    """One edit of `kind` from the current mask against the reference; False when the robot
    finds nothing to edit."""
    current, truth = segment.mask[0], reference[0]
    if kind == "select":
        add, remove = simulate_selection(current, truth, min_voxels=1, limit=1)
        if len(add) + len(remove) == 0:
            return False
        segment.apply("select", method, Marks(fg=_at(add), bg=_at(remove)))
    elif kind == "brush":
        found = simulate_brush(current, truth, min_voxels=1)
        if found is None:
            return False
        stroke, sign = found
        marks = Marks(fg=_at(stroke)) if sign > 0 else Marks(bg=_at(stroke))
        segment.apply("brush", method, marks)
    elif kind == "adjust":
        if not current.any():
            return False
        # the paper's K is relative to the reference volume, the amount to the mask's own:
        # |mask| = (1 + K) V_gt, so reaching V_gt takes amount = -K / (1 + K)
        k = adjustment_k(current, truth, None)
        segment.apply("adjust", method, Marks(), {"amount": -k / (1.0 + k)})
    else:
        if not (current ^ truth).any():
            return False
        zyx, foreground = robot_click(segment.mask, reference)
        point = np.asarray([zyx], dtype=np.int64)
        segment.apply("click", method, Marks(fg=point, bg=EMPTY) if foreground
                      else Marks(fg=EMPTY, bg=point))
    return True


def starts(obj: BenchObject, seed: int) -> list[tuple[str, np.ndarray]]:
    """(start kind, mask (1, Y, X)) of an object: its perturbations and the model-free mask."""
    rng = np.random.default_rng(seed)
    out = [(kind, perturb(obj.mask[0], rng, kind)[None]) for kind in PERTURBATIONS]
    free = Segment(obj.image, obj.spacing, np.zeros(obj.mask.shape, bool))
    robot_edit(free, obj.mask, "click", "geodesic-graphcut")
    out.append(("model-free", free.mask.copy()))
    return out


def _mean(values: list[float]) -> str:
    return f"{np.mean(values):.3f}" if values else "-"


def run(quick: bool) -> str:
    objects = bench_objects(2)
    if quick:
        objects = objects[::4]
    scores: dict[tuple[str, str, str], dict[int, list[float]]] = defaultdict(
        lambda: defaultdict(list))  # (start group, tool, method) -> budget -> Dice
    started: dict[str, list[float]] = defaultdict(list)
    recovered: dict[str, list[float]] = defaultdict(list)
    seconds: dict[tuple[str, str], list[float]] = defaultdict(list)
    monotone_cases, monotone_failures = 0, 0
    robust: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for index, obj in enumerate(objects):
        reference = obj.mask
        for start_kind, start in starts(obj, index):
            group = "model-free" if start_kind == "model-free" else "perturbed"
            started[group].append(dice(start, reference))
            if start_kind == "boundary":
                started["boundary"].append(dice(start, reference))
            for kind, method in TOOLS:
                segment = Segment(obj.image, obj.spacing, start.copy())
                for n in range(1, max(BUDGETS) + 1):
                    try:
                        robot_edit(segment, reference, kind, method)
                    except Exception as exc:  # noqa: BLE001 - counted, reported
                        print(f"{obj.case}/{obj.organ} {start_kind} {kind} {method}: {exc}")
                        break
                    if n in BUDGETS:
                        scores[(group, kind, method)][n].append(dice(segment.mask, reference))
                        if start_kind == "boundary":  # the error adjust is for
                            scores[("boundary", kind, method)][n].append(
                                dice(segment.mask, reference))
                    if n == 1 and start_kind == "bite":
                        bitten = reference & ~start
                        recovered[f"{kind} {method}"].append(
                            float((segment.mask & bitten).sum() / max(bitten.sum(), 1)))
                seconds[(kind, method)] += segment.seconds
            if start.any():  # adjustment monotonicity
                monotone_cases += 1
                masks = []
                for amount in MONOTONE_AMOUNTS:
                    segment = Segment(obj.image, obj.spacing, start.copy())
                    segment.apply("adjust", "deep-editing", Marks(), {"amount": amount})
                    masks.append(segment.mask.copy())
                if any((a & ~b).any() for a, b in zip(masks, masks[1:])):
                    monotone_failures += 1
        robustness(obj, robust)
    return tables(scores, started, recovered, seconds, monotone_cases, monotone_failures, robust,
                  len(objects))


def robustness(obj: BenchObject, out: dict) -> None:
    """The paper's sec. 3.3 on a correct mask (the reference): an "add" edit (a click, a
    5-voxel stroke) in clear background 10-20 mm from the mask, a "remove" edit at its deepest
    voxel; the changed voxels as a share of the organ's area."""
    reference = obj.mask
    area = float(reference.sum())
    sy, sx = obj.spacing[1:]
    outside = ndimage.distance_transform_edt(~reference[0], sampling=(sy, sx))
    ring = np.argwhere((outside >= 10) & (outside <= 20))
    inside = ndimage.distance_transform_edt(np.pad(reference[0], 1))[1:-1, 1:-1]
    deep = np.unravel_index(int(np.argmax(inside)), inside.shape)
    if len(ring) == 0:
        return
    far = ring[len(ring) // 2]
    for method in ("deep-editing", "classical-editing"):
        for kind in ("select", "brush"):
            for sign, (y, x) in (("add", far), ("remove", deep)):
                xs = np.clip(np.arange(x - 2, x + 3), 0, reference.shape[2] - 1)
                pts = np.array([[0, y, x]]) if kind == "select" else \
                    np.column_stack([np.zeros(5, int), np.full(5, y), xs])
                marks = Marks(fg=pts) if sign == "add" else Marks(bg=pts)
                segment = Segment(obj.image, obj.spacing, reference.copy())
                segment.apply(kind, method, marks)
                out[(method, kind, sign)].append(float((segment.mask ^ reference).sum()) / area)


def tables(scores, started, recovered, seconds, monotone_cases, monotone_failures, robust,
           count: int) -> str:
    lines = [f"{count} objects (2D largest slices), {len(PERTURBATIONS)} perturbed starts and "
             "1 model-free start each.", ""]
    for group in ("perturbed", "model-free"):
        lines += [f"**Start: {group}** (mean Dice at start {_mean(started[group])})", "",
                  "| tool | method | " + " | ".join(f"Dice after {n}" for n in BUDGETS) + " |",
                  "|---|---|" + "---|" * len(BUDGETS)]
        for kind, method in TOOLS:
            row = scores[(group, kind, method)]
            tool = "click (IF-GC refinement)" if kind == "click" else kind
            lines.append(f"| {tool} | {method} | "
                         + " | ".join(_mean(row[n]) for n in BUDGETS) + " |")
        lines.append("")
    lines += ["**Start: boundary moved in or out by 1-3 voxels only** (mean Dice at start "
              f"{_mean(started['boundary'])}: the error `adjust` is for)", "",
              "| tool | method | " + " | ".join(f"Dice after {n}" for n in BUDGETS) + " |",
              "|---|---|" + "---|" * len(BUDGETS)]
    for kind, method in TOOLS:
        row = scores[("boundary", kind, method)]
        tool = "click (IF-GC refinement)" if kind == "click" else kind
        lines.append(f"| {tool} | {method} | " + " | ".join(_mean(row[n]) for n in BUDGETS) + " |")
    lines.append("")
    lines += ["**One selection click on a bitten-out region** (share of it recovered; target "
              "0.80)", "", "| tool | recovered |", "|---|---|"]
    lines += [f"| {name} | {_mean(v)} |" for name, v in sorted(recovered.items())]
    lines += ["", f"**Adjustment monotonicity**: {monotone_cases - monotone_failures} of "
              f"{monotone_cases} starts monotone over {len(MONOTONE_AMOUNTS)} amounts "
              f"({MONOTONE_AMOUNTS[0]} .. {MONOTONE_AMOUNTS[-1]}).", "",
              "**Robustness** (paper sec. 3.3; changed voxels / organ area on a correct mask)", "",
              "| method | edit | mean | max |", "|---|---|---|---|"]
    for (method, kind, sign), values in sorted(robust.items()):
        where = "in clear background" if sign == "add" else "deep inside the organ"
        lines.append(f"| {method} | {kind} {sign} {where} | {np.mean(values):.3f} | "
                     f"{np.max(values):.3f} |")
    lines += ["", "**Engine ms per edit** (2D slice, median / 90th percentile)", "",
              "| tool | method | median ms | p90 ms |", "|---|---|---|---|"]
    for (kind, method), values in sorted(seconds.items()):
        ms = np.asarray(values) * 1000
        lines.append(f"| {kind} | {method} | {np.median(ms):.1f} | "
                     f"{np.percentile(ms, 90):.1f} |")
    return "\n".join(lines)


def api_timings(repeats: int = 20) -> str:
    """Each tool through the API (TestClient, own Redis, compute in-process) on ct_3mm's liver
    (imported), on its largest axial slice: median server time (the answer's timings_ms:
    load + compute + encode) and median wall time of the request."""
    from fastapi.testclient import TestClient

    from medseg.api.app import create_app
    from medseg.api.settings import Settings
    from medseg.engine import imageio
    from medseg.store.embedded import EmbeddedRedis
    from medseg_train.data import data_root, load_case

    case = load_case("ct_3mm")
    liver = case.mask("liver")
    z = int(np.argmax(liver.sum(axis=(1, 2))))
    with EmbeddedRedis() as url:
        app = create_app(Settings(redis_url=url, compute_processes=0, dev_mode=True,
                                   log_level="warning"))
        with TestClient(app) as client:
            content = (data_root() / "ct_3mm.nii.gz").read_bytes()
            sid = client.post("/v1/sessions", files=[("files", ("ct.nii.gz", content))]).json()
            affine = np.asarray(sid["affine"])
            sid = sid["id"]
            mask = imageio.save_nifti(liver.astype(np.uint8), affine)
            seg = client.post(f"/v1/sessions/{sid}/segments/import",
                              files=[("file", ("m.nii.gz", mask))]).json()[0]["id"]
            y, x = (int(v) for v in ndimage.center_of_mass(liver[z]))
            plane = {"axis": "z", "index": z}
            bodies = {
                "paint 2D (6 mm)": {"type": "paint", "plane": plane, "radius_mm": 6,
                                    "path": [[z, 5, 5], [z, 5, 25]]},
                "erase 2D (6 mm)": {"type": "erase", "plane": plane, "radius_mm": 6,
                                    "path": [[z, y, x], [z, y, x + 5]]},
                "paint 3D ball (6 mm)": {"type": "paint", "dim": "3d", "radius_mm": 6,
                                         "path": [[z, 5, 5]]},
                "select (deep-editing)": {"type": "select", "plane": plane,
                                          "clicks": [{"zyx": [z, 8, 8]}]},
                "select (classical-editing)": {"type": "select", "plane": plane,
                                               "method": "classical-editing",
                                               "clicks": [{"zyx": [z, 8, 8]}]},
                "brush (deep-editing)": {"type": "brush", "plane": plane,
                                         "scribbles": [{"path": [[z, 8, 8], [z, 8, 16]]}]},
                "adjust 2D (+10 %)": {"type": "adjust", "plane": plane, "amount": 0.1},
                "adjust 3D (+10 %)": {"type": "adjust", "dim": "3d", "amount": 0.1},
            }
            lines = ["| tool (ct_3mm liver, 101 x 122 slice) | server ms (median) | "
                     "request ms (median) |", "|---|---|---|"]
            url_i = f"/v1/sessions/{sid}/segments/{seg}/interactions"
            for name, body in bodies.items():
                server, wall = [], []
                for _ in range(repeats):
                    start = time.perf_counter()
                    answer = client.post(url_i, json=body)
                    wall.append(time.perf_counter() - start)
                    assert answer.status_code == 200, answer.text
                    server.append(sum(answer.json()["timings_ms"].values()))
                    client.post(f"/v1/sessions/{sid}/segments/{seg}/undo")
                lines.append(f"| {name} | {np.median(server):.1f} | "
                             f"{np.median(wall) * 1000:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every fourth object only")
    parser.add_argument("--api", action="store_true", help="only the API timings")
    args = parser.parse_args(argv)
    print(api_timings() if args.api else run(args.quick))


if __name__ == "__main__":
    main()
