"""Click-accuracy benchmark: `python -m medseg_bench.clicks [--quick]`. Prints markdown tables.

A robot user segments the organs of ../shared/data/totalseg on the engine alone (no HTTP, no
Redis; `EngineSegment` drives a method the way usecases/interactions.py does):
- 2D: the largest axial slice of each organ (its largest connected component); 3D: the organ's
  largest component, in its bounding box grown by CROP_MARGIN voxels.
- seen organs: the organs of the ct_dicom volume that training uses (that volume itself is never
  trained on); held-out organs (medseg_train.data.HELD_OUT_ORGANS): every volume.
- mideepseg: starts from simulated interior margin points (the training simulation,
  `interior_margin_points(mask, rng, extra=(0, 0))`, one fixed seed per object: 3-4 points in
  2D, 5-6 in 3D), then refinement clicks; each click goes to the centre of the largest error
  region (`robot_click`). IF-GC runs the robot; plain GC replays IF-GC's clicks (then goes on
  with its own robot clicks if it needs more for NoC).
- geodesic-graphcut (model-free): the robot's clicks from the first one (the organ's centre);
  its "initial" column is the Dice after that first click.
NoC@85 / NoC@90: clicks until Dice >= 0.85 / 0.90, counting the interior margin points as clicks;
an object that never gets there within `--cap` clicks in all counts as the cap.

`--robustness` (issue 13) runs instead every method x start (click, box, points) in 2D and 3D on
held-out organs and structures of ../shared/data/totalseg (small ones too: adrenal glands,
pancreas, aorta, kidneys, vertebrae) and on lesions (mirp_sts, mirp_nsclc, BraTS), grouped by
what the evaluated models' cards say they were trained on (`object_group`), and adds the
collapse rate (share of clicks after which Dice falls by more than 0.05) and the worst single
drop; see `run_robustness`. `--quick` there: 2 objects per group, 3 refinement clicks.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medseg import builtin
from medseg.algorithms.metrics import dice
from medseg.engine.method import SegmentContext
from medseg.engine.mideepseg_method import load_model
from medseg.engine.prompts import Box, Marks, Plane, Prompt, plane_record
from medseg.errors import InvalidPrompt
from medseg.models.loader import default_loader
from medseg_bench.robot import robot_click
from medseg_train.data import data_root, evaluation_organs, load_case, load_nifti
from medseg_train.objects import MIN_AREA_2D, MIN_VOXELS_3D, largest_component
from medseg_train.simulate import interior_margin_points

CROP_MARGIN = 24  # voxels around a 3D organ's bounding box (the robot works in that crop)
REPORT_AFTER = (1, 3, 5, 10)  # refinement clicks after which Dice is reported
DEFAULT_3D_PER_GROUP = 8  # largest organs per group in 3D unless --per-group says otherwise


@dataclass
class BenchObject:
    group: str  # "seen" | "held-out"
    case: str
    organ: str
    image: np.ndarray  # float32 (Z, Y, X); a 2D object is one slice (1, Y, X)
    mask: np.ndarray  # bool, same shape
    spacing: tuple[float, float, float]
    plane: Plane | None  # Plane(0, 0) for 2D


def _crop(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + margin + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def bench_objects(dims: int, per_group: int | None = None) -> list[BenchObject]:
    """Seen organs of the validation volume and held-out organs of every volume; with
    `per_group`, only that many per group, the largest first."""
    items: list[tuple[int, BenchObject]] = []
    for held_group, case, organ in evaluation_organs():
        group = held_group.replace("_", "-")  # the tables say "held-out"
        mask = largest_component(case.mask(organ))
        if dims == 2:
            z = int(np.argmax(mask.sum(axis=(1, 2))))
            mask2 = largest_component(mask[z])
            if mask2.sum() < MIN_AREA_2D:
                continue
            obj = BenchObject(group, case.name, organ, case.image[z][None], mask2[None],
                              case.spacing, Plane(0, 0))
        else:
            if mask.sum() < MIN_VOXELS_3D:
                continue
            box = _crop(mask, CROP_MARGIN)
            obj = BenchObject(group, case.name, organ, np.ascontiguousarray(case.image[box]),
                              mask[box], case.spacing, None)
        items.append((int(obj.mask.sum()), obj))
    out = []
    for group in ("seen", "held-out"):
        ranked = sorted((it for it in items if it[1].group == group), key=lambda it: -it[0])
        out += [obj for _, obj in ranked[:per_group]]
    return out


@dataclass
class EngineSegment:
    """One segment on the engine alone: marks accumulate as in usecases/interactions.py, the
    head revision's interaction and stored probability are kept, the mask is updated in the ROI."""

    image: np.ndarray
    spacing: tuple[float, float, float]
    plane: Plane | None
    mask: np.ndarray = field(init=False)  # the head mask, all False at first
    marks: Marks = field(default_factory=Marks)
    head: dict = field(default_factory=dict)
    stored: tuple[Box, np.ndarray] | None = None
    seconds: list[float] = field(default_factory=list)
    last_info: dict = field(default_factory=dict)  # the last result's info (diagnostics)

    def __post_init__(self) -> None:
        self.mask = np.zeros(self.image.shape, dtype=bool)

    def _read(self, box: Box) -> np.ndarray:
        return self.image[tuple(slice(lo, hi + 1) for lo, hi in zip(box.lo, box.hi))]

    def _read_mask(self, box: Box) -> np.ndarray:
        return self.mask[tuple(slice(lo, hi + 1) for lo, hi in zip(box.lo, box.hi))]

    def _bbox(self) -> Box | None:
        idx = np.argwhere(self.mask)
        return None if len(idx) == 0 else Box(tuple(idx.min(axis=0)), tuple(idx.max(axis=0)))

    def interact(self, kind: str, method: str, marks: Marks, params: dict | None = None) -> None:
        chosen = METHODS.get(method)
        prompt = Prompt(kind, marks, self.plane)
        prompt.check(self.image.shape)
        cumulative = prompt.apply_to(self.marks)
        stored = self.stored
        context = SegmentContext(kind, dict(self.head), lambda: stored)
        start = time.perf_counter()
        result = chosen.run(read_image=self._read, read_mask=self._read_mask,
                            shape=self.image.shape,
                            spacing=self.spacing, marks=cumulative.on_plane(self.plane),
                            plane=self.plane, params=chosen.parse_params(params or {}),
                            current_mask_bbox=self._bbox(), context=context)
        self.seconds.append(time.perf_counter() - start)
        roi = tuple(slice(lo, hi + 1) for lo, hi in zip(result.roi.lo, result.roi.hi))
        self.mask[roi] = result.mask
        self.marks, self.stored = cumulative, (result.roi, result.probability)
        self.head = {"method": method, "plane": plane_record(self.plane)}
        self.last_info = dict(result.info)


@dataclass
class Trace:
    dices: list[float]  # after each interaction: [initial, after click 1, 2, ...]
    initial_clicks: int  # clicks counted by the first interaction
    seconds: list[float]  # engine seconds per interaction
    clicks: list[tuple[tuple[int, int, int], bool]] = field(default_factory=list)


def _click_marks(zyx, foreground: bool) -> Marks:
    point = np.asarray([zyx], dtype=np.int64)
    empty = np.zeros((0, 3), dtype=np.int64)
    return Marks(fg=point if foreground else empty, bg=empty if foreground else point)


def _next_click(segment: EngineSegment, reference: np.ndarray, replay: list, k: int):
    """The k-th replayed click while there are any, then the robot's; None when perfect."""
    if k < len(replay):
        return replay[k]
    if np.array_equal(segment.mask, reference):
        return None
    return robot_click(segment.mask, reference)


def _keep_clicking(trace: Trace, made: int, refinements: int, cap: int) -> bool:
    """At least `refinements` clicks (for the Dice columns), then on until Dice 0.90 or `cap`
    clicks in all (for NoC)."""
    if made < refinements:
        return True
    return max(trace.dices) < 0.90 and trace.initial_clicks + made < cap


def _session(segment: EngineSegment, reference, method: str, params: dict, trace: Trace,
             refinements: int, cap: int, replay: list) -> Trace:
    while _keep_clicking(trace, len(trace.clicks), refinements, cap):
        click = _next_click(segment, reference, replay, len(trace.clicks))
        if click is None:
            break
        segment.interact("click", method, _click_marks(*click), params)
        trace.clicks.append(click)
        trace.dices.append(dice(segment.mask, reference))
    trace.seconds = segment.seconds
    return trace


def run_mideepseg(obj: BenchObject, encoding: str, refinement: str, refinements: int, cap: int,
                  seed: int, replay: list | None = None) -> Trace:
    squeezed = obj.mask[0] if obj.plane is not None else obj.mask
    points = interior_margin_points(squeezed, np.random.default_rng(seed), extra=(0, 0))
    if obj.plane is not None:
        points = np.concatenate([np.zeros((len(points), 1), int), points], axis=1)
    segment = EngineSegment(obj.image, obj.spacing, obj.plane)
    params = {"encoding": encoding, "refinement": refinement}
    segment.interact("points", "mideepseg", Marks(points=points), params)
    trace = Trace([dice(segment.mask, obj.mask)], len(points), [])
    return _session(segment, obj.mask, "mideepseg", params, trace, refinements, cap, replay or [])


def run_graphcut(obj: BenchObject, refinements: int, cap: int) -> Trace:
    segment = EngineSegment(obj.image, obj.spacing, obj.plane)
    zyx, fg = robot_click(segment.mask, obj.mask)
    segment.interact("click", "geodesic-graphcut", _click_marks(zyx, fg))
    trace = Trace([dice(segment.mask, obj.mask)], 1, [], [])
    return _session(segment, obj.mask, "geodesic-graphcut", {}, trace, refinements, cap, [])


def noc(trace: Trace, target: float, cap: int) -> int:
    for k, d in enumerate(trace.dices):
        if d >= target:
            return min(trace.initial_clicks + k, cap)
    return cap


def dice_after(trace: Trace, refinements: int) -> float:
    """Dice after `refinements` further clicks; a robot that stopped (perfect mask) keeps it."""
    return trace.dices[min(refinements, len(trace.dices) - 1)]


def summarise(label: str, traces: list[Trace], cap: int, refinements: int) -> str:
    cells = [label, str(len(traces)), f"{np.mean([t.initial_clicks for t in traces]):.1f}"]
    cells.append(f"{np.mean([t.dices[0] for t in traces]):.3f}")
    for n in REPORT_AFTER:
        cells.append(f"{np.mean([dice_after(t, n) for t in traces]):.3f}"
                     if n <= refinements else "–")
    cells += [f"{np.mean([noc(t, 0.85, cap) for t in traces]):.1f}",
              f"{np.mean([noc(t, 0.90, cap) for t in traces]):.1f}"]
    first = [t.seconds[0] for t in traces]
    later = [s for t in traces for s in t.seconds[1:]]
    cells += [f"{1000 * np.median(first):.0f}", f"{1000 * np.median(later):.0f}" if later else "–"]
    return "| " + " | ".join(cells) + " |"


METHODS = builtin.build().methods
HEADER = ("| method | objects | initial clicks | Dice initial | "
          + " | ".join(f"+{n}" for n in REPORT_AFTER)
          + " | NoC@85 | NoC@90 | first ms (median) | refine ms (median) |\n|"
          + "---|" * (10 + len(REPORT_AFTER) - 2))


def available_encodings(dims: int) -> list[str]:
    cards = default_loader().available("mideepseg")
    return sorted({c.encoding for c in cards if c.dims == dims})


def run(dims_list: list[int], per_group: int | None, refinements: int, cap: int,
        encodings: list[str] | None) -> None:
    for dims in dims_list:
        # a 3D robot session on a whole-organ region takes ~1 s per click here: 8 per group
        objects = bench_objects(dims, per_group or (DEFAULT_3D_PER_GROUP if dims == 3 else None))
        found = available_encodings(dims)
        chosen = [e for e in (encodings or found) if e in found]
        for encoding in chosen:  # load each model before timing anything
            model = load_model(dims, encoding)
            model.predict(np.zeros((1, model.card.in_channels, *model.card.input_size), np.float32))
        print(f"\n### {dims}D ({', '.join(chosen) or 'no'} MIDeepSeg models; "
              f"{refinements} refinement clicks; NoC capped at {cap} clicks)")
        for group in ("seen", "held-out"):
            group_objects = [o for o in objects if o.group == group]
            rows = []
            for encoding in chosen:
                ifgc, gc = [], []
                for k, obj in enumerate(group_objects):
                    ifgc.append(run_mideepseg(obj, encoding, "if-gc", refinements, cap, k))
                    gc.append(run_mideepseg(obj, encoding, "gc", refinements, cap, k,
                                            ifgc[-1].clicks))
                rows.append(summarise(f"mideepseg {encoding}, IF-GC", ifgc, cap, refinements))
                rows.append(summarise(f"mideepseg {encoding}, plain GC (IF-GC's clicks)", gc, cap,
                                      refinements))
            model_free = [run_graphcut(obj, refinements, cap) for obj in group_objects]
            rows.append(summarise("geodesic-graphcut (model-free; initial = 1st click)",
                                  model_free, cap, refinements))
            names = sorted({f"{o.case}/{o.organ}" for o in group_objects})
            print(f"\n{group} organs ({len(group_objects)}): {', '.join(names)}\n")
            print(HEADER)
            print("\n".join(rows))


# --- Robustness: does a click ever throw work away? (issue 13) ---------------------------------
# Held-out objects from the evaluation-only sets of ../shared/data (README: never trained on),
# each the largest component of one structure, block-downsampled to ~2-3 mm voxels and cut to
# its bounding box + LESION_CROP voxels, so a 3D session stays short on a 2-core CPU.
LESION_SETS = (  # (folder, image file stem, mask file stem, labels taken as the object, name)
    *(("deepmedic_brats2013", f"brats_2013_pat000{k}_1_flair", f"brats_2013_pat000{k}_1",
        (1, 2, 3, 4), f"brats13-{k} tumour") for k in range(1, 7)),
    ("sammed3d_brats2021", "BraTS2021_01646_flair", "BraTS2021_01646_flair", (1,),
     "brats21 oedema"),
    ("mirp_nsclc", "LUNG1-001_ct", "LUNG1-001_ct", (4,), "nsclc GTV"),
    *(("mirp_sts", f"STS_00{k}_{m}", f"STS_00{k}_{m}", (1,), f"sts-{k} {m} sarcoma")
      for k in (1, 2, 3) for m in ("ct", "t1")),
)
# small and held-out structures of the totalseg volumes (issue 13 item 4): the robot's 3D set
ORGAN_STRUCTURES = ("adrenal_gland_left", "adrenal_gland_right", "pancreas", "aorta",
                    "kidney_left", "kidney_right", "vertebrae", "vertebrae_L1", "vertebrae_T12")
ORGAN_CASES = ("ct_3mm", "mr_3mm", "ct_dicom")
# the groups of the robustness tables, in print order (`object_group` says which is which)
GROUPS = ("held-out organs", "held-out volumes", "trained-on organs and volumes")
ROBUST_PER_GROUP = {2: 16, 3: 10}  # objects per group (round robin over sources)
LESION_MM = 2.5  # target voxel size: the block factor per axis is round(LESION_MM / spacing)
LESION_CROP = 10  # voxels around the object's bounding box (after downsampling)
BOX_PAD = 3  # the robot's box: the reference bounding box + this many voxels per side
COLLAPSE_DROP = 0.05  # a click "collapses" the mask when Dice falls by more than this
# (label, start interaction, start method, refinement method)
ROBUST_CONFIGS = (
    ("geodesic-graphcut", "click", "geodesic-graphcut", "geodesic-graphcut"),
    ("geodesic-graphcut", "box", "geodesic-graphcut", "geodesic-graphcut"),
    ("bifseg box + geodesic-graphcut clicks", "box", "bifseg", "geodesic-graphcut"),
    ("mideepseg (points + IF-GC clicks)", "points", "mideepseg", "mideepseg"),
    ("bifseg box + mideepseg clicks", "box", "bifseg", "mideepseg"),
    ("slicewise box + geodesic-graphcut clicks", "box", "slicewise", "geodesic-graphcut"),
    ("slicewise points + mideepseg clicks", "points", "slicewise", "mideepseg"),
    # issue 13 item 2: the slice-by-slice click start, and clicks that correct their slice
    ("slicewise click + geodesic-graphcut clicks", "click", "slicewise", "geodesic-graphcut"),
    ("slicewise click + slicewise clicks", "click", "slicewise", "slicewise"),
    ("slicewise box + slicewise clicks", "box", "slicewise", "slicewise"),
)


# parameters of a refinement method's clicks in the robot sessions: `slicewise` clicks are
# forced to correct their slice (its default, `start: auto`, refines with geodesic-graphcut's
# 3D click, which would repeat that row)
REFINE_PARAMS = {"slicewise": {"start": "slicewise"}}


def _block_down(a: np.ndarray, factors: tuple[int, ...], mode: str) -> np.ndarray:
    cut = tuple(slice(0, (n // f) * f) for n, f in zip(a.shape, factors))
    a = a[cut]
    shape = [v for n, f in zip(a.shape, factors) for v in (n // f, f)]
    blocks = a.reshape(shape).astype(np.float32).mean(axis=(1, 3, 5))
    return blocks > 0.5 if mode == "mask" else blocks.astype(np.float32)


def model_cards(methods=("bifseg", "mideepseg"), folder: Path | None = None) -> list[dict]:
    """The cards (services/medseg/models/weights/*.json, or those in `folder`) of the networks
    the robustness configs evaluate (BIFSeg's P-Net/PC-Net, MIDeepSeg's models)."""
    if folder is not None:
        cards = [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))]
        return [{"name": c["name"], "training": c.get("training", {})}
                for c in cards if c.get("task") in methods]
    return [{"name": c.name, "training": c.training}
            for task in methods for c in default_loader().available(task)]


def object_group(volume: str, organ: str | None, cards: list[dict]) -> str:
    """'held-out organs': a totalseg organ that every evaluated card lists as held out;
    'held-out volumes': a volume (totalseg case, lesion set, or one scan of a set as
    "<folder>/<stem>") that no card's training record names (its validation case, ct_dicom,
    is never trained on; cards list the scans of a partly trained set by that name);
    otherwise 'trained-on organs and volumes' (the networks saw this structure in this
    volume: only the model-free rows are unseen there)."""
    # what a card says was trained on, less its validation case and held-out organ list
    trainings = [json.dumps({k: v for k, v in c.get("training", {}).items()
                             if "validation" not in k and "held_out" not in k}) for c in cards]
    if organ is not None and cards and all(
            organ in c.get("training", {}).get("held_out_organs", []) for c in cards):
        return GROUPS[0]
    if not any(volume in t for t in trainings):
        return GROUPS[1]
    return GROUPS[2]


def _downsampled(image: np.ndarray, mask: np.ndarray, zooms, dims: int, group: str, case: str,
                 name: str) -> BenchObject | None:
    """Block-downsample to ~LESION_MM, the largest component, its box + LESION_CROP; 2D: the
    largest axial slice. None when too small to be an object."""
    factors = tuple(max(1, round(LESION_MM / s)) for s in zooms)
    mask = _block_down(mask, factors, "mask")
    if not mask.any():
        return None
    mask = largest_component(mask)
    image = _block_down(image, factors, "image")
    spacing = (zooms[0] * factors[0], zooms[1] * factors[1], zooms[2] * factors[2])
    box = _crop(mask, LESION_CROP)
    image, mask = np.ascontiguousarray(image[box]), np.ascontiguousarray(mask[box])
    if dims == 2:
        z = int(np.argmax(mask.sum(axis=(1, 2))))
        mask2 = largest_component(mask[z])
        if mask2.sum() < MIN_AREA_2D:
            return None
        return BenchObject(group, case, name, image[z][None], mask2[None], spacing, Plane(0, 0))
    if mask.sum() < MIN_VOXELS_3D:
        return None
    return BenchObject(group, case, name, image, mask, spacing, None)


def organ_objects(dims: int, cards: list[dict]) -> list[BenchObject]:
    """ORGAN_STRUCTURES of the ORGAN_CASES, grouped by `object_group`."""
    out = []
    for case_name in ORGAN_CASES:
        case = load_case(case_name)
        for organ in case.present():
            if organ not in ORGAN_STRUCTURES:
                continue
            obj = _downsampled(case.image, case.mask(organ), case.spacing, dims,
                               object_group(case_name, organ, cards), case_name, organ)
            if obj is not None:
                out.append(obj)
    return out


def robust_objects(dims: int, per_group: int | None, cards: list[dict]) -> list[BenchObject]:
    """Organ and lesion objects, at most `per_group` per group: taken round robin over their
    sources (volume or lesion set), smallest first, so each source is in the sample."""
    objects = organ_objects(dims, cards) + lesion_objects(dims, cards)
    out = []
    for group in GROUPS:
        members = [o for o in objects if o.group == group]
        by_source: dict[str, list[BenchObject]] = {}
        for o in sorted(members, key=lambda o: int(o.mask.sum())):  # smallest first
            by_source.setdefault(o.case, []).append(o)
        order = [o for k in range(len(members)) for lst in by_source.values()
                 if k < len(lst) for o in lst[k:k + 1]]
        out += order[:per_group] if per_group else order
    return out


def lesion_objects(dims: int, cards: list[dict] | None = None) -> list[BenchObject]:
    """The lesion objects (LESION_SETS), 3D crops or their largest axial slice, grouped by
    `object_group` (the evaluation-only sets are never trained on: held-out volumes)."""
    root = data_root().parent
    cards = model_cards() if cards is None else cards
    out = []
    for folder, image_stem, mask_stem, labels, name in LESION_SETS:
        image_nii = load_nifti(root / folder / f"{image_stem}_image.nii.gz")
        labels_nii = load_nifti(root / folder / f"{mask_stem}_mask.nii.gz")
        zooms = [float(s) for s in image_nii.header.get_zooms()[:3][::-1]]
        image = np.asarray(image_nii.dataobj, dtype=np.float32).transpose(2, 1, 0)
        mask = np.isin(np.asarray(labels_nii.dataobj).transpose(2, 1, 0), labels)
        group = object_group(f"{folder}/{image_stem}", None, cards)
        obj = _downsampled(image, mask, zooms, dims, group, folder, name)
        if obj is not None:
            out.append(obj)
    return out


def _robot_box(obj: BenchObject) -> Box:
    idx = np.argwhere(obj.mask)
    lo = np.maximum(idx.min(axis=0) - BOX_PAD, 0)
    hi = np.minimum(idx.max(axis=0) + BOX_PAD, np.asarray(obj.mask.shape) - 1)
    if obj.plane is not None:
        lo[0] = hi[0] = 0
    return Box(tuple(int(v) for v in lo), tuple(int(v) for v in hi))


@dataclass
class RobustTrace:
    dices: list[float]  # [after the start, after refinement click 1, 2, ...]
    start_clicks: int  # clicks the start counts as (box: 1, points: their number)
    seconds: list[float]  # engine seconds per refinement click
    refused: str | None = None  # the refinement method's error, when it refused the segment


def run_robust(obj: BenchObject, start: str, start_method: str, method: str,
               refinements: int, seed: int, start_params: dict | None = None) -> RobustTrace:
    """One robot session: the start (with `start_params`), then `refinements` corrective
    clicks with `method`."""
    segment = EngineSegment(obj.image, obj.spacing, obj.plane)
    if start == "click":
        zyx, fg = robot_click(segment.mask, obj.mask)
        segment.interact("click", start_method, _click_marks(zyx, fg), start_params)
        count = 1
    elif start == "box":
        segment.interact("box", start_method, Marks(boxes=[_robot_box(obj)]), start_params)
        count = 1
    else:
        squeezed = obj.mask[0] if obj.plane is not None else obj.mask
        points = interior_margin_points(squeezed, np.random.default_rng(seed), extra=(0, 0))
        if obj.plane is not None:
            points = np.concatenate([np.zeros((len(points), 1), int), points], axis=1)
        segment.interact("points", start_method, Marks(points=points), start_params)
        count = len(points)
    trace = RobustTrace([dice(segment.mask, obj.mask)], count, [])
    first = len(segment.seconds)
    for _ in range(refinements):
        if np.array_equal(segment.mask, obj.mask):
            break
        zyx, fg = robot_click(segment.mask, obj.mask)
        try:
            segment.interact("click", method, _click_marks(zyx, fg), REFINE_PARAMS.get(method))
        except InvalidPrompt as exc:
            trace.refused = str(exc)
            break
        trace.dices.append(dice(segment.mask, obj.mask))
    trace.seconds = segment.seconds[first:]
    return trace


def robust_row(label: str, start: str, traces: list[RobustTrace], refinements: int) -> str:
    cells = [label, start, str(len(traces))]
    if any(t.refused for t in traces):
        refused = next(t.refused for t in traces if t.refused)
        return "| " + " | ".join(cells + [f"refused: {refused[:60]}"] + [""] * 9) + " |"
    cap = refinements + max(t.start_clicks for t in traces)
    cells.append(f"{np.mean([t.dices[0] for t in traces]):.3f}")
    cells += [f"{np.mean([t.dices[min(n, len(t.dices) - 1)] for t in traces]):.3f}"
              for n in REPORT_AFTER]
    nocs = [[next((t.start_clicks + k for k, d in enumerate(t.dices) if d >= target), cap)
             for t in traces] for target in (0.85, 0.90)]
    cells += [f"{np.mean(n):.1f}" for n in nocs]
    drops = [a - b for t in traces for a, b in zip(t.dices, t.dices[1:])]
    collapsed = sum(d > COLLAPSE_DROP for d in drops)
    cells += [f"{100 * collapsed / max(len(drops), 1):.1f} % ({collapsed}/{len(drops)})",
              f"{max(drops, default=0.0):.3f}"]
    seconds = [s for t in traces for s in t.seconds]
    cells.append(f"{1000 * np.median(seconds):.0f}" if seconds else "–")
    return "| " + " | ".join(cells) + " |"


ROBUST_HEADER = ("| method | start | objects | Dice start | "
                 + " | ".join(f"@{n}" for n in REPORT_AFTER)
                 + " | NoC@85 | NoC@90 | collapse rate | worst drop | ms/click (median) |\n|"
                 + "---|" * (9 + len(REPORT_AFTER)))


def run_robustness(dims_list: list[int], refinements: int, details: Path | None,
                   per_group: int | None = None, groups_from: Path | None = None,
                   configs: list[str] | None = None) -> None:
    """Per group (held-out organs, held-out volumes, trained-on) x method x start x 2D/3D:
    Dice@1/3/5/10 (refinement clicks after the start), NoC@85/90 (start clicks counted;
    capped at start + refinements), collapse rate (share of refinement clicks after which Dice
    fell by > COLLAPSE_DROP), the worst single drop and the median engine ms per refinement
    click. `per_group`: objects per group (default ROBUST_PER_GROUP). `groups_from`: group by
    the cards of that folder instead of the evaluated ones' (old and new weights compared on
    the same objects). `configs`: only the ROBUST_CONFIGS rows with these labels."""
    dump: dict = {}
    cards = model_cards(folder=groups_from)
    print("models evaluated: " + ", ".join(c["name"] for c in model_cards())
          + (f"; groups from the cards in {groups_from}" if groups_from else ""))
    for dims in dims_list:
        objects = robust_objects(dims, per_group or ROBUST_PER_GROUP[dims], cards)
        for group in GROUPS:
            members = [o for o in objects if o.group == group]
            if not members:
                continue
            print(f"\n### {dims}D {group} ({len(members)}: "
                  f"{', '.join(f'{o.case}/{o.organ}' for o in members)}); "
                  f"{refinements} refinement clicks\n")
            print(ROBUST_HEADER)
            for label, start, start_method, method in ROBUST_CONFIGS:
                if f"{dims}d" not in METHODS.get(start_method).dims:  # slicewise is 3D only
                    continue
                if configs and label not in configs:
                    continue
                traces = [run_robust(obj, start, start_method, method, refinements, k)
                          for k, obj in enumerate(members)]
                print(robust_row(label, start, traces, refinements), flush=True)
                dump[f"{dims}d {group} {label} ({start})"] = {
                    f"{o.case}/{o.organ}": [round(d, 4) for d in t.dices]
                    for o, t in zip(members, traces)}
    if details is not None:
        details.write_text(json.dumps(dump, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="3 objects per group, 5 refinement clicks, NoC cap 10")
    parser.add_argument("--dims", default="2,3", help="comma-separated: 2, 3 or 2,3")
    parser.add_argument("--per-group", type=int, default=None,
                        help=f"largest N objects per group (default: all in 2D, "
                             f"{DEFAULT_3D_PER_GROUP} in 3D)")
    parser.add_argument("--refinements", type=int, default=10)
    parser.add_argument("--cap", type=int, default=20, help="NoC cap (total clicks)")
    parser.add_argument("--encodings", default=None, help="comma-separated (default: all models)")
    parser.add_argument("--robustness", action="store_true",
                        help="held-out lesions, every method x start: collapse rate, worst drop")
    parser.add_argument("--details", type=Path, default=None,
                        help="with --robustness: write every session's Dice trace (JSON) here")
    parser.add_argument("--groups-from", type=Path, default=None,
                        help="with --robustness: group objects by the model cards in this "
                             "folder (compare two sets of weights on the same objects)")
    parser.add_argument("--configs", default=None,
                        help="with --robustness: comma-separated row labels to run (default all)")
    args = parser.parse_args()
    if args.robustness:
        if args.quick:
            args.per_group, args.refinements = args.per_group or 2, 3
        run_robustness([int(d) for d in args.dims.split(",")], args.refinements, args.details,
                       args.per_group, args.groups_from,
                       args.configs.split(",") if args.configs else None)
        return
    if args.quick:
        args.per_group, args.refinements, args.cap = args.per_group or 3, 5, 10
    refinements = max(args.refinements, 1)
    encodings = args.encodings.split(",") if args.encodings else None
    run([int(d) for d in args.dims.split(",")], args.per_group, refinements, args.cap, encodings)


if __name__ == "__main__":
    main()
