"""BIFSeg benchmark: box-only initial result, graph-cut-only refinement ("CRF"), unsupervised
and supervised image-specific fine-tuning, BIFSeg(-w); the paper's Tables I-III.

    python -m medseg.bench.bifseg            # 2D (three axial slices per organ) and 3D
    python -m medseg.bench.bifseg --quick    # one slice per organ, 3D on held-out organs only

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
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from scipy import ndimage

from medseg.engine.bifseg import BoxCrop, run_network
from medseg.engine.finetune import finetune, label_update, params_for
from medseg.models.bifseg_io import NAMES, mask_box
from medseg.models.block6 import load_block6
from medseg.training.data import HELD_OUT_ORGANS, load_case
from medseg.training.mideepseg import dice, validation_objects

WEIGHTS = Path(__file__).resolve().parents[1] / "models" / "weights"
METHODS = ("initial", "crf", "bifseg_w", "bifseg")
HEADERS = {"initial": "{net}", "crf": "{net}+CRF", "bifseg_w": "BIFSeg(-w)", "bifseg": "BIFSeg"}
MIN_ERROR = {2: 20, 3: 100}  # smaller error components get no scribble


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


def run(dims: int, quick: bool, weights_dir: Path = WEIGHTS) -> str:
    path = Path(weights_dir) / f"{NAMES[dims]}.onnx"
    if not path.exists():
        return f"({NAMES[dims]} not trained: {path} missing)\n"
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    weights = load_block6(path)
    rows: dict[str, Row] = {}
    items = validation_objects(dims)
    for group, case_name, organ, image, truth in _quick(items, dims) if quick else items:
        label = organ if group == "held_out" else "seen organs (ct_dicom)"
        spacing = load_case(case_name).spacing[-dims:]
        evaluate(session, weights, image, truth, spacing, dims, rows.setdefault(label, Row()))
    order = [o for o in HELD_OUT_ORGANS if o in rows] + [k for k in rows if k not in HELD_OUT_ORGANS]
    return tables({k: rows[k] for k in order}, dims)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m medseg.bench.bifseg", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer objects")
    parser.add_argument("--dims", type=int, nargs="+", choices=(2, 3), default=[2, 3])
    parser.add_argument("--weights", type=Path, default=WEIGHTS, help="folder of the ONNX files")
    parser.add_argument("--threads", type=int, default=1, help="torch / onnxruntime threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for dims in args.dims:
        print(run(dims, args.quick, args.weights), flush=True)


if __name__ == "__main__":
    main()
