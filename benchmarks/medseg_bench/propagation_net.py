"""Propagation-network benchmark: `python -m medseg_bench.propagation_net`. Prints markdown.

One-shot propagation (the paper's Table 2 protocol): the reference mask of each organ's largest
axial slice, propagated slice by slice both ways along z with the committed ONNX network until
the prediction is tiny; Dice against the organ's largest 3D component. Organs are "held-out"
(never trained on) or "seen" (trained on; in ct_3mm and mr_3mm the image itself was trained on
too, in ct_dicom it never was). Also the time per slice, and per 256 x 256 slice.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from medseg.algorithms.metrics import dice
from medseg.algorithms.resample import resize_linear
from medseg.engine import propagation_net
from medseg.models.loader import onnx_session
from medseg_train.data import HELD_OUT_ORGANS, load_case
from medseg_train.objects import largest_component
from medseg_train.propagation import one_shot

DEFAULT_CASES = ("ct_3mm", "mr_3mm")


def _timed(predict):
    times: list[float] = []

    def timed(*args):
        start = time.perf_counter()
        out = predict(*args)
        times.append(time.perf_counter() - start)
        return out

    return timed, times


def organ_rows(case_name: str, predict) -> list[dict]:
    case = load_case(case_name)
    rows = []
    for organ in case.present():
        mask = largest_component(case.mask(organ))
        timed, times = _timed(predict)
        out = one_shot(timed, case.image, mask, case.spacing)
        rows.append({"case": case_name, "organ": organ,
                     "group": "held-out" if organ in HELD_OUT_ORGANS else "seen",
                     "slices": int(mask.any(axis=(1, 2)).sum()), "predicted": len(times),
                     "dice": dice(out, mask), "ms": 1000 * float(np.mean(times)) if times else 0})
    return rows


def slice_256_ms(predict, repeats: int = 30) -> dict[str, float]:
    """Median ms of one call on a 256 x 256 slice (ct_dicom resampled, ~1.95 mm), for a small
    (spleen) and a large (liver) prior."""
    case = load_case("ct_dicom")
    z = case.image.shape[0] // 2
    image = resize_linear(case.image[z], (256, 256))
    spacing = tuple(s * n / 256 for s, n in zip(case.spacing[1:], case.image.shape[1:]))
    out = {}
    for organ in ("spleen", "liver"):
        prior = resize_linear(case.mask(organ)[z].astype(np.float32), (256, 256)) > 0.5
        predict(image, prior, spacing)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            predict(image, prior, spacing)
            times.append(time.perf_counter() - start)
        out[organ] = 1000 * float(np.median(times))
    return out


def render(rows: list[dict], per_256: dict[str, float]) -> str:
    lines = ["| case | group | organ | slices | slices predicted | Dice | ms / slice |",
             "|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["case"], r["group"], r["organ"])):
        lines.append(f"| {r['case']} | {r['group']} | {r['organ']} | {r['slices']} | "
                     f"{r['predicted']} | {r['dice']:.3f} | {r['ms']:.1f} |")
    lines += ["", "| case | group | organs | mean Dice | median Dice |", "|---|---|---|---|---|"]
    for case in sorted({r["case"] for r in rows}):
        for group in ("held-out", "seen"):
            scores = [r["dice"] for r in rows if r["case"] == case and r["group"] == group]
            if scores:
                lines.append(f"| {case} | {group} | {len(scores)} | {np.mean(scores):.3f} | "
                             f"{np.median(scores):.3f} |")
    held = [r["dice"] for r in rows if r["group"] == "held-out"]
    ms = [r["ms"] for r in rows if r["predicted"]]
    timing = (f"time per slice (mean over organs): {np.mean(ms):.1f} ms; per 256x256 slice "
              f"(median of 30): spleen prior {per_256['spleen']:.1f} ms, liver prior "
              f"{per_256['liver']:.1f} ms; a 100-slice organ: "
              f"{100 * max(per_256.values()) / 1000:.2f} s")
    lines += ["", f"held-out organs, all cases: mean Dice {np.mean(held):.3f} over {len(held)}",
              "", timing]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES),
                        choices=("ct_3mm", "mr_3mm", "ct_dicom"))
    parser.add_argument("--weights", default=None, help="ONNX file (default: the committed one)")
    args = parser.parse_args(argv)
    # candidate weights without a card yet go straight to onnxruntime (as the loader would)
    session = onnx_session(args.weights, 1) if args.weights else propagation_net.load_session()

    def predict(image, prior, spacing):
        return propagation_net.predict(image, prior, spacing, session=session)

    rows = [row for case in args.cases for row in organ_rows(case, predict)]
    print(f"providers: {', '.join(session.get_providers())}\n")
    print(render(rows, slice_256_ms(predict)))


if __name__ == "__main__":
    main()
