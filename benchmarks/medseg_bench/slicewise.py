"""3D starts on anisotropic volumes: `python -m medseg_bench.slicewise [--refinements 10]`.

The robustness benchmark's objects (`medseg_bench.clicks --robustness`: evaluation-only
lesion sets of ../shared/data, never trained on) are block-downsampled to ~2-3 mm voxels, i.e.
nearly isotropic. Issue 13 says anisotropic volumes (3-7 mm slices) are the normal case in MR
and oncology, so this benchmark builds the same objects with thick slices: SLICE_MM along z,
IN_PLANE_MM in-plane (`round(target / spacing)` per axis as there), adds the natively
anisotropic sarcomas of mirp_sts (CT and MR, 3.27 mm slices, IN_PLANE_MM in-plane), and runs
every 3D start of `clicks.ROBUST_CONFIGS` (the same robot: a box = reference bounding box +
3 voxels, or MIDeepSeg's simulated interior margin points, then corrective clicks at the
centre of the largest error). Prints the same table as `--robustness`.
`--start slicewise` forces the slice-by-slice start of the `slicewise` rows (its default,
`auto`, picks per case type).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from medseg_bench import clicks
from medseg_bench.clicks import BenchObject
from medseg_train.data import data_root, load_nifti
from medseg_train.objects import largest_component

SLICE_MM = 5.0  # target slice thickness (BraTS 1 mm -> 5 mm; NSCLC 3 mm -> 6 mm)
IN_PLANE_MM = 2.0  # target in-plane spacing
# natively anisotropic (0.98 x 0.98 x 3.27 mm): the three sarcomas of mirp_sts, CT and T1 MR;
# never trained on (the shipped weights predate the set), kept at their own slice thickness
STS_SETS = tuple(("mirp_sts", f"STS_00{k}_{m}", f"STS_00{k}_{m}", (1,), f"sts-{k} {m}")
                 for k in (1, 2, 3) for m in ("ct", "t1"))


def anisotropic_objects(slice_mm: float = SLICE_MM,
                        in_plane_mm: float = IN_PLANE_MM) -> list[BenchObject]:
    root = data_root().parent
    out = []
    sets = [(*entry, slice_mm) for entry in clicks.LESION_SETS]
    sets += [(*entry, 0.0) for entry in STS_SETS]  # 0: the native slices
    for folder, image_stem, mask_stem, labels, name, thickness in sets:
        image_nii = load_nifti(root / folder / f"{image_stem}_image.nii.gz")
        labels_nii = load_nifti(root / folder / f"{mask_stem}_mask.nii.gz")
        zooms = [float(s) for s in image_nii.header.get_zooms()[:3][::-1]]
        targets = (thickness or zooms[0], in_plane_mm, in_plane_mm)
        factors = tuple(max(1, round(t / s)) for t, s in zip(targets, zooms))
        image = np.asarray(image_nii.dataobj, dtype=np.float32).transpose(2, 1, 0)
        mask = np.isin(np.asarray(labels_nii.dataobj).transpose(2, 1, 0), labels)
        mask = largest_component(clicks._block_down(mask, factors, "mask"))
        image = clicks._block_down(image, factors, "image")
        spacing = (zooms[0] * factors[0], zooms[1] * factors[1], zooms[2] * factors[2])
        box = clicks._crop(mask, clicks.LESION_CROP)
        out.append(BenchObject("held-out", folder, name, np.ascontiguousarray(image[box]),
                               np.ascontiguousarray(mask[box]), spacing, None))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refinements", type=int, default=10)
    parser.add_argument("--slice-mm", type=float, default=SLICE_MM)
    parser.add_argument("--in-plane-mm", type=float, default=IN_PLANE_MM)
    parser.add_argument("--only", default=None,
                        help="comma-separated start methods (default: every 3D start)")
    parser.add_argument("--start", default=None, choices=("auto", "slicewise", "volumetric"),
                        help="the slicewise method's `start` parameter (default: its own)")
    parser.add_argument("--params", default=None,
                        help="JSON object of more slicewise parameters for its starts")
    parser.add_argument("--isotropic", action="store_true",
                        help="the robustness benchmark's own ~2-3 mm objects instead")
    parser.add_argument("--groups", nargs="?", const="", default=None,
                        help="the robustness benchmark's 3D groups (held-out organs, held-out "
                             "volumes, trained-on; `clicks --robustness --dims 3`) instead; "
                             "a value: only the groups whose name holds it (e.g. held-out)")
    parser.add_argument("--per-group", type=int, default=None,
                        help="with --groups: objects per group (default: the robustness one)")
    parser.add_argument("--configs", default=None,
                        help="comma-separated substrings: only the rows whose 'label (start)' "
                             "holds one, e.g. 'geodesic-graphcut (click),slicewise click'")
    args = parser.parse_args()
    if args.groups is not None:
        cards = clicks.model_cards()
        everything = clicks.robust_objects(3, args.per_group or clicks.ROBUST_PER_GROUP[3],
                                           cards)
        for group in clicks.GROUPS:
            members = [o for o in everything if o.group == group]
            if members and args.groups in group:
                _table(f"3D {group}", members, args)
        return
    objects = (clicks.lesion_objects(3) if args.isotropic
               else anisotropic_objects(args.slice_mm, args.in_plane_mm))
    kind = "isotropic" if args.isotropic else "anisotropic"
    _table(f"3D {kind} held-out lesions", objects, args)


def _table(title: str, objects: list[BenchObject], args) -> None:
    sizes = [int(o.mask.sum()) for o in objects]
    print(f"\n### {title} ({len(objects)}; spacing "
          f"{sorted({tuple(round(s, 2) for s in o.spacing) for o in objects})}; "
          f"{min(sizes)}-{max(sizes)} voxels); {args.refinements} refinement clicks\n")
    print(clicks.ROBUST_HEADER)
    only = set(args.only.split(",")) if args.only else None
    wanted = args.configs.split(",") if args.configs else None
    for label, start, start_method, method in clicks.ROBUST_CONFIGS:
        if only is not None and start_method not in only:
            continue
        if wanted is not None and not any(w in f"{label} ({start})" for w in wanted):
            continue
        params = None
        if start_method == "slicewise" and (args.start or args.params):
            params = {**({"start": args.start} if args.start else {}),
                      **json.loads(args.params or "{}")}
        traces = [clicks.run_robust(obj, start, start_method, method, args.refinements, k,
                                    params) for k, obj in enumerate(objects)]
        if params:
            label = f"{label} ({', '.join(f'{k}={v}' for k, v in params.items())})"
        print(clicks.robust_row(label, start, traces, args.refinements), flush=True)


if __name__ == "__main__":
    main()
