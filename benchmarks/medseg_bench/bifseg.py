"""BIFSeg benchmark: box-only initial result, graph-cut-only refinement ("CRF"), unsupervised
and supervised image-specific fine-tuning, BIFSeg(-w); the paper's Tables I-III.

    python -m medseg_bench.bifseg            # 2D (three axial slices per organ) and 3D
    python -m medseg_bench.bifseg --quick    # one slice per organ, 3D on held-out organs only
    python -m medseg_bench.bifseg --tune omega=2,5,10 --tune epsilon=0.1,0.2,0.3
                                             # grid search on the training data (2D)

Objects: the held-out organs of every shared volume (never trained on) and the seen organs
of the validation volume (an image never trained on). The box is the reference mask's
bounding box grown by BOX_MARGIN voxels. Scribbles are simulated once per object on the
initial result: in the largest false-negative and the largest false-positive component, the
voxels where the distance to the component's border is a local maximum (its medial ridge,
a skeleton approximation), on the slice where the component is largest; every refinement
method gets the same scribbles. Dice is measured on the image grid (crop pasted back).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from medseg.algorithms.metrics import dice
from medseg.engine.bifseg import BoxCrop, run_network
from medseg.engine.finetune import finetune, label_update, params_for
from medseg.models.bifseg_io import NAMES, mask_box
from medseg.models.block6 import load_block6
from medseg.models.loader import WEIGHTS_DIR, onnx_session
from medseg_train.data import HELD_OUT_ORGANS, TRAIN_CASES, load_case
from medseg_train.mideepseg import validation_objects

METHODS = ("initial", "crf", "bifseg_w", "bifseg")
HEADERS = {"initial": "{net}", "crf": "{net}+CRF", "bifseg_w": "BIFSeg(-w)", "bifseg": "BIFSeg"}
MIN_ERROR = {2: 20, 3: 100}  # smaller error components get no scribble
MIN_TUNE_AREA = 100  # pixels: smaller training slices are not tuned on


def ridge(component: np.ndarray) -> np.ndarray:
    """Medial ridge of a 2D component: local maxima (3x3) of its distance transform."""
    dist = ndimage.distance_transform_edt(component)
    return component & (dist >= ndimage.maximum_filter(dist, size=3)) & (dist >= 1)


def largest_component(mask: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    return labels == int(np.argmax(np.bincount(labels.ravel())[1:])) + 1


def simulate_scribble(error: np.ndarray, dims: int) -> np.ndarray:
    """(N, ndim) voxels: the ridge of the largest error component on its largest slice (3D)."""
    component = largest_component(error)
    if component.sum() < MIN_ERROR[dims]:
        return np.zeros((0, error.ndim), dtype=int)
    if dims == 2:
        return np.argwhere(ridge(component))
    z = int(np.argmax(component.sum(axis=(1, 2))))
    points = np.argwhere(ridge(component[z]))
    return np.column_stack([np.full(len(points), z), points])


@dataclass
class Row:
    dice: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # mode -> method -> ..
    seconds: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def add(self, mode: str, method: str, score: float, seconds: float | None = None) -> None:
        self.dice.setdefault(mode, {}).setdefault(method, []).append(score)
        if seconds is not None:
            self.seconds.setdefault(mode, {}).setdefault(method, []).append(seconds)


def evaluate(session, weights, image, truth, spacing, dims: int, row: Row) -> None:
    started = time.perf_counter()
    crop = BoxCrop.around(image.shape, *mask_box(truth), spacing)
    state = run_network(session, image, crop)
    net_seconds = time.perf_counter() - started
    initial = crop.to_image(state.probability > 0.5, image.shape)
    row.add("box", "initial", dice(initial, truth), net_seconds)
    fg_vox = simulate_scribble(truth & ~initial, dims)
    bg_vox = simulate_scribble(initial & ~truth, dims)
    fg, bg = crop.marks_to_grid(fg_vox), crop.marks_to_grid(bg_vox)
    for mode, (f, b) in (("unsupervised", (None, None)), ("supervised", (fg, bg))):
        row.add(mode, "initial", dice(initial, truth))
        t = time.perf_counter()
        labels = label_update(state.probability, state.image_norm, crop.grid_spacing, f, b,
                              params_for(dims))
        fv, bv = (fg_vox, bg_vox) if mode == "supervised" else (None, None)
        row.add(mode, "crf", dice(crop.to_image(labels, image.shape, fv, bv), truth),
                time.perf_counter() - t)
        for method, weighted in (("bifseg_w", False), ("bifseg", True)):
            out = finetune(state.features, state.image_norm, weights, f, b, crop.grid_spacing,
                           params_for(dims, weighted=weighted))
            row.add(mode, method, dice(crop.to_image(out.mask, image.shape, fv, bv), truth),
                    out.timings["total"])


def _stat(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    v = np.asarray(values) * scale
    return f"{v.mean():.{digits}f}±{v.std():.{digits}f}" if len(v) else "-"


def tables(rows: dict[str, Row], dims: int) -> str:
    net = "P-Net" if dims == 2 else "PC-Net"
    out = []
    title = {"box": f"Table I ({dims}D): Dice (%) of the initial result from a box",
             "unsupervised": f"Table II ({dims}D): unsupervised refinement, Dice (%)",
             "supervised": f"Table III ({dims}D): supervised refinement with the same "
                           "simulated scribbles, Dice (%)"}
    for mode in ("box", "unsupervised", "supervised"):
        methods = ("initial",) if mode == "box" else METHODS
        names = [HEADERS[m].format(net=net) for m in methods]
        out += [f"**{title[mode]}**", "", "| object | n | " + " | ".join(names) + " |",
                "|---" * (len(methods) + 2) + "|"]
        for label, row in rows.items():
            if mode not in row.dice:
                continue
            d = row.dice[mode]
            n = len(d["initial"])
            out.append(f"| {label} | {n} | " + " | ".join(_stat(d[m]) for m in methods) + " |")
        every = [t for r in rows.values() for t in [r.seconds.get(mode, {})]]
        times = [_stat([x for t in every for x in t.get(m, [])], 1.0, 3) for m in methods]
        out += ["| Tm (s) |  | " + " | ".join(times if mode == "box" else ["-", *times[1:]])
                + " |", ""]
    return "\n".join(out)


def _quick(items: list, dims: int) -> list:
    """One object per organ and volume (2D: the middle of its three slices); 3D: held-out only."""
    if dims == 3:
        return [item for item in items if item[0] == "held_out"]
    groups: dict[tuple[str, str], list] = {}
    for item in items:
        groups.setdefault((item[1], item[2]), []).append(item)
    return [g[len(g) // 2] for g in groups.values()]


def run(dims: int, quick: bool, weights_dir: Path = WEIGHTS_DIR, threads: int = 1) -> str:
    path = Path(weights_dir) / f"{NAMES[dims]}.onnx"
    if not path.exists():
        return f"({NAMES[dims]} not trained: {path} missing)\n"
    session = onnx_session(path, threads)
    weights = load_block6(path)
    rows: dict[str, Row] = {}
    items = validation_objects(dims)
    for group, case_name, organ, image, truth in _quick(items, dims) if quick else items:
        label = organ if group == "held_out" else "seen organs (ct_dicom)"
        spacing = load_case(case_name).spacing[-dims:]
        evaluate(session, weights, image, truth, spacing, dims, rows.setdefault(label, Row()))
    order = ([o for o in HELD_OUT_ORGANS if o in rows]
             + [k for k in rows if k not in HELD_OUT_ORGANS])
    return tables({k: rows[k] for k in order}, dims)


def timing(dims: int, repeats: int, weights_dir: Path = WEIGHTS_DIR, threads: int = 1) -> str:
    """Median machine time of the network and of one supervised fine-tuning (paper defaults)
    on one held-out organ: the largest ct_dicom liver slice (2D), ct_3mm's left kidney (3D)."""
    path = Path(weights_dir) / f"{NAMES[dims]}.onnx"
    session = onnx_session(path, threads)
    case = load_case("ct_dicom" if dims == 2 else "ct_3mm")
    truth = largest_component(case.mask("liver" if dims == 2 else "kidney_left"))
    image = case.image
    spacing: tuple[float, ...] = case.spacing  # (sz, sy, sx), in-plane (sy, sx) in 2D
    if dims == 2:
        z = int(np.argmax(truth.sum(axis=(1, 2))))
        image, truth, spacing = image[z], largest_component(truth[z]), spacing[1:]
    crop = BoxCrop.around(truth.shape, *mask_box(truth), spacing)
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        state = run_network(session, image, crop)
        runs.append({"network": time.perf_counter() - t})
    initial = crop.to_image(state.probability > 0.5, truth.shape)
    fg = crop.marks_to_grid(simulate_scribble(truth & ~initial, dims))
    bg = crop.marks_to_grid(simulate_scribble(initial & ~truth, dims))
    for run_ in runs:
        out = finetune(state.features, state.image_norm, load_block6(path), fg, bg,
                       crop.grid_spacing, params_for(dims))
        run_.update(out.timings)
    keys = ["network", "geodesic", "graphcut", "total"]
    median = {k: float(np.median([r[k] for r in runs])) for k in keys}
    return (f"| {dims}D, grid {'x'.join(map(str, crop.grid))} | {repeats} | "
            + " | ".join(f"{median[k]:.3f}" for k in keys) + " |")


def training_slices() -> list[tuple[np.ndarray, np.ndarray, tuple[float, float]]]:
    """(image, mask, spacing) 2D objects of the training data (never held-out organs): three
    axial slices (quartiles of the z extent, as the benchmark's objects) of every seen organ
    of the training volumes, where it covers at least MIN_TUNE_AREA pixels."""
    items = []
    for case in map(load_case, TRAIN_CASES):
        for organ in case.present(held_out=False):
            mask = largest_component(case.mask(organ))
            slices = np.flatnonzero(mask.sum(axis=(1, 2)) >= MIN_TUNE_AREA)
            for z in sorted({int(np.percentile(slices, q, method="nearest"))
                             for q in (25, 50, 75)} if len(slices) else ()):
                items.append((case.image[z], largest_component(mask[z]), case.spacing[1:]))
    return items


def tune(grid: dict[str, list], weights_dir: Path = WEIGHTS_DIR, threads: int = 1) -> str:
    """The paper's grid search "with the training data" (sec. II-E) for the supervised
    fine-tuning's parameters: every combination of `grid` (other parameters at the paper's 2D
    values) on every training slice, with the scribbles simulated as in the benchmark. A
    markdown table, best mean Dice first, with graph-cut-only refinement for reference."""
    path = Path(weights_dir) / f"{NAMES[2]}.onnx"
    session = onnx_session(path, threads)
    weights = load_block6(path)
    prepared = []
    for image, truth, spacing in training_slices():
        crop = BoxCrop.around(image.shape, *mask_box(truth), spacing)
        state = run_network(session, image, crop)
        initial = crop.to_image(state.probability > 0.5, image.shape)
        fg_vox = simulate_scribble(truth & ~initial, 2)
        bg_vox = simulate_scribble(initial & ~truth, 2)
        prepared.append((truth, crop, state, fg_vox, bg_vox))
    names = list(grid)
    results = []
    for values in itertools.product(*(grid[n] for n in names)):
        params = params_for(2, **dict(zip(names, values)))
        scores: list[float] = []
        crf: list[float] = []
        for truth, crop, state, fg_vox, bg_vox in prepared:
            fg, bg = crop.marks_to_grid(fg_vox), crop.marks_to_grid(bg_vox)
            out = finetune(state.features, state.image_norm, weights, fg, bg,
                           crop.grid_spacing, params)
            scores.append(dice(crop.to_image(out.mask, truth.shape, fg_vox, bg_vox), truth))
            labels = label_update(state.probability, state.image_norm, crop.grid_spacing, fg,
                                  bg, params)
            crf.append(dice(crop.to_image(labels, truth.shape, fg_vox, bg_vox), truth))
        results.append((float(np.mean(scores)), float(np.mean(crf)), values))
    lines = [f"{len(prepared)} training slices; supervised fine-tuning, mean Dice (%)", "",
             "| " + " | ".join(names) + " | BIFSeg | graph cut only | gain |",
             "|---" * (len(names) + 3) + "|"]
    for score, crf_score, values in sorted(results, key=lambda r: -r[0]):
        lines.append("| " + " | ".join(str(v) for v in values)
                     + f" | {100 * score:.2f} | {100 * crf_score:.2f} "
                     f"| {100 * (score - crf_score):+.2f} |")
    return "\n".join(lines)


def _grid_arg(text: str) -> tuple[str, list]:
    name, _, values = text.partition("=")
    return name, [json.loads(v) for v in values.split(",")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m medseg_bench.bifseg", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer objects")
    parser.add_argument("--dims", type=int, nargs="+", choices=(2, 3), default=[2, 3])
    parser.add_argument("--weights", type=Path, default=WEIGHTS_DIR,
                        help="folder of the ONNX files")
    parser.add_argument("--threads", type=int, default=1, help="torch / onnxruntime threads")
    parser.add_argument("--timing", type=int, default=0, metavar="REPEATS",
                        help="only time the network and one fine-tuning, REPEATS times")
    parser.add_argument("--tune", action="append", type=_grid_arg, metavar="NAME=V1,V2,...",
                        help="grid-search these fine-tuning parameters on the training data")
    args = parser.parse_args(argv)
    import torch  # the fine-tuning's network update

    torch.set_num_threads(args.threads)
    if args.tune:
        print(tune(dict(args.tune), args.weights, args.threads))
        return
    if args.timing:
        print("| case | n | network s | geodesic s | graph cuts s | fine-tuning total s |")
        print("|---|---|---|---|---|---|")
        for dims in args.dims:
            print(timing(dims, args.timing, args.weights, args.threads), flush=True)
        return
    for dims in args.dims:
        print(run(dims, args.quick, args.weights, args.threads), flush=True)


if __name__ == "__main__":
    main()
