"""Hints benchmark (issue 14 item 5): `python -m medseg_bench.hints [--split tuning|held|all]
[--sources graphcut,shape,editnet]`.
Prints markdown tables (docs/benchmarks.md#hints-where-the-mask-is-probably-wrong).

Masks with real errors, on objects no shipped network was trained on: the largest axial slice
of each object `medseg_bench.editing` scores (never-trained ct_dicom organs, held-out organs of
every volume) and of the evaluation-only lesion sets (`medseg_bench.clicks.lesion_objects`:
six BraTS 2013 tumours, BraTS 2021 oedema, NSCLC tumour); on each, the editing benchmark's
starts: the reference with one perturbation of each kind (boundary moved 1-3 voxels, a bite, a
bulge, a separate false blob) and the model-free mask of one `geodesic-graphcut` click.

Real errors: the connected components of mask XOR reference with at least N = 20 voxels
(`ERROR_VOXELS`; the size below which the editing tools' simulated user makes no selection
click, medseg.algorithms.editing.MIN_SELECT_VOXELS: smaller differences are one-voxel boundary
noise of a model-made reference, not something a reader would fix). A mask with none is
"correct" and scored apart (how many hints it still gets: false alarms).

A hint hits when at least `HIT_SHARE` (25 %) of its region's voxels lie in one real error
component (an overlap by a sliver does not count; a hint is a region the viewer draws).
precision@k = hits among the first min(k, n) hints / min(k, n), n the hints returned; a mask
with real errors and no hint scores 0. recall@k = share of the mask's real error components
that one of the first k hints hits. Centre hit@1: the first hint's centre point lies in a real
error component.
"""

from __future__ import annotations

import argparse
import time
import zlib
from collections import defaultdict

import numpy as np
from scipy import ndimage

from medseg.engine import hints as engine_hints
from medseg_bench.clicks import lesion_objects
from medseg_bench.editing import starts

ERROR_VOXELS = 20
HIT_SHARE = 0.25
K = 3


def real_errors(mask: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels of the error components >= ERROR_VOXELS (0 elsewhere) and their count."""
    labels, count = ndimage.label(mask ^ reference)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = np.flatnonzero(sizes >= ERROR_VOXELS)
    keep = keep[keep > 0]
    out = np.zeros(labels.shape, np.int32)
    for new, old in enumerate(keep, start=1):
        out[labels == old] = new
    return out, len(keep)


def score(hints, labels: np.ndarray, count: int, shape) -> dict[str, float]:
    hit_ids = []
    for hint in hints:
        box = tuple(slice(lo, hi + 1) for lo, hi in zip(hint.lo, hint.hi))
        inside = labels[box]
        values = inside[inside > 0]
        best = 0
        if len(values):
            ids, counts = np.unique(values, return_counts=True)
            if counts.max() >= HIT_SHARE * hint.voxels:
                best = int(ids[np.argmax(counts)])
        hit_ids.append(best)
    out: dict[str, float] = {}
    for k in (1, K):
        top = hit_ids[:k]
        out[f"p@{k}"] = (sum(1 for h in top if h) / len(top)) if top else 0.0
        out[f"r@{k}"] = len({h for h in top if h}) / count
    out["centre@1"] = float(bool(hints) and labels[hints[0].centre] > 0)
    out["returned"] = float(len(hints))
    return out


def objects(split: str):
    """"tuning": every 4th organ object and every 2nd lesion (the defaults of
    medseg.engine.hints.HintParams were chosen on these), "held": the others, "all": both."""
    from medseg_bench.clicks import bench_objects

    organs = bench_objects(2)
    lesions = lesion_objects(2)
    organs, lesions = _split(organs, lesions, split)
    return [("organs", o) for o in organs] + [("lesions", o) for o in lesions]


def _split(organs: list, lesions: list, split: str) -> tuple[list, list]:
    """The tuning / held split of `objects`: every 4th organ and every 2nd lesion tune."""
    if split == "tuning":
        return organs[::4], lesions[::2]
    if split == "held":
        return ([o for i, o in enumerate(organs) if i % 4],
                [o for i, o in enumerate(lesions) if i % 2])
    return organs, lesions


def perturb_3d(gt: np.ndarray, rng: np.random.Generator, kind: str) -> np.ndarray:
    """medseg_train.editing.perturb's kinds in 3D: the boundary moved 1-2 voxels, a ball bitten
    out at the boundary, a ball added there (bulge), a separate ball nearby (false blob)."""
    points = np.argwhere(gt)
    extent = float(max(np.ptp(points, axis=0).max(), 4))
    if kind == "boundary":
        op = ndimage.binary_dilation if rng.random() < 0.5 else ndimage.binary_erosion
        return op(gt, iterations=int(rng.integers(1, 3)))
    edge = np.argwhere(gt & ~ndimage.binary_erosion(gt))
    centre = edge[int(rng.integers(len(edge)))].astype(float)
    radius = rng.uniform(0.15, 0.3) * extent
    grid = np.ogrid[tuple(slice(0, n) for n in gt.shape)]

    def ball(c, r):
        return sum((g - v) ** 2 for g, v in zip(grid, c)) <= r * r

    if kind == "bite":
        return gt & ~ball(centre, radius)
    if kind == "bulge":
        outward = centre - points.mean(axis=0)
        outward /= max(float(np.linalg.norm(outward)), 1e-6)
        return gt | ball(centre + outward * radius * 0.5, radius)
    away = centre + rng.normal(size=3) * extent * 0.5
    return gt | ball(away, rng.uniform(0.08, 0.15) * extent)


def objects_3d(split: str):
    """3D: the largest held-out organs (4 per group of medseg_bench.clicks.bench_objects) and
    the evaluation-only lesions, as crops; the same split rule as `objects`."""
    from medseg_bench.clicks import bench_objects

    organs, lesions = bench_objects(3, per_group=4), lesion_objects(3)
    organs, lesions = _split(organs, lesions, split)
    return [("organs 3D", o) for o in organs] + [("lesions 3D", o) for o in lesions]


def starts_3d(obj, seed: int) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(kind, perturb_3d(obj.mask, rng, kind))
            for kind in ("boundary", "bite", "bulge", "false_blob")]


def run(split: str, sources: tuple[str, ...], editnet: bool, dims: int = 2,
        **overrides) -> str:
    forward = None
    if editnet and "editnet" in sources:
        from medseg.engine.editing_method import load_network

        _, session = load_network()
        name = session.get_inputs()[0].name
        forward = lambda x: session.run(None, {name: x})[0]  # noqa: E731
    params = engine_hints.HintParams(sources=sources, **overrides)
    rows: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    alarms: dict[str, list[float]] = defaultdict(list)
    seconds: list[float] = []
    cases = objects(split) if dims == 2 else objects_3d(split)
    for set_name, obj in cases:
        # the perturbations' seed is the object's own, so a split scores the same masks as
        # "all" does for its objects
        index = zlib.crc32(f"{obj.case}/{obj.organ}".encode())
        reference = obj.mask
        tried = [("reference", reference.copy())] + (
            starts(obj, index) if dims == 2 else starts_3d(obj, index))
        for start_kind, start in tried:
            group = "model-free" if start_kind == "model-free" else (
                "perturbed" if start_kind != "reference" else "reference")
            t0 = time.perf_counter()
            result = engine_hints.find_hints(obj.image, start, obj.spacing, K, params, forward)
            seconds.append(time.perf_counter() - t0)
            labels, count = real_errors(start, reference)
            if count == 0:
                alarms[set_name].append(len(result.hints))
                continue
            scored = score(result.hints, labels, count, start.shape)
            for key in ((set_name, group), (set_name, start_kind), ("all", "all")):
                rows[key].append(scored)
    lines = ["| objects | start | masks with real errors | precision@1 | precision@3 | "
             "recall@3 | centre hit@1 | hints returned (of 3) |",
             "|---|---|---|---|---|---|---|---|"]
    for (set_name, group), per_mask in sorted(rows.items()):
        mean = {key: float(np.mean([s[key] for s in per_mask])) for key in per_mask[0]}
        lines.append(f"| {set_name} | {group} | {len(per_mask)} | {mean['p@1']:.2f} | "
                     f"{mean['p@3']:.2f} | {mean['r@3']:.2f} | {mean['centre@1']:.2f} | "
                     f"{mean['returned']:.2f} |")
    lines.append("")
    lines.append("| objects | masks without real errors | hints returned (false alarms) "
                 "mean | share with none |")
    lines.append("|---|---|---|---|")
    for set_name, counts in sorted(alarms.items()):
        lines.append(f"| {set_name} | {len(counts)} | {np.mean(counts):.2f} | "
                     f"{np.mean(np.asarray(counts) == 0):.2f} |")
    lines.append("")
    lines.append(f"engine ms per mask: median {1000 * np.median(seconds):.0f}, "
                 f"p95 {1000 * np.percentile(seconds, 95):.0f} (sources: {', '.join(sources)}"
                 f"{'' if forward or 'editnet' not in sources else '; editnet not loaded'})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=("tuning", "held", "all"), default="all",
                        help="tuning: the quarter of the objects the defaults were chosen on; "
                             "held: the rest")
    parser.add_argument("--dims", type=int, choices=(2, 3), default=2)
    parser.add_argument("--sources", default=",".join(engine_hints.DEFAULT_SOURCES),
                        help="comma-separated: graphcut, editnet")
    args = parser.parse_args()
    sources = tuple(s for s in args.sources.split(",") if s)
    print(run(args.split, sources, editnet=True, dims=args.dims))


if __name__ == "__main__":
    main()
