"""BIFSeg image-specific fine-tuning as a job (kind "finetune"), and submitting one.

The segment must have a BIFSeg result: a `box` interaction with method `bifseg` (or an earlier
fine-tuning) on the line of history that ends at its head. The job re-runs the network on that
box's crop (2D on its plane, or 3D), adapts block 6 to the image (engine/finetune.py: label
update by graph cut with the scribbles as hard constraints, SGD on the weighted loss of eq. 13),
reports every iteration as progress (step k of n, with the loss) and commits ONE revision: the
refined mask inside the crop, the adapted network's probability, and the adapted block-6
weights, all in the MULTI that marks the job succeeded. The weights are an artifact of that
revision named `bifseg.block6.<dims>d` (engine/bifseg_method.py: this job writes it, the
method reads it; the store keeps it as an opaque blob): later `bifseg` interactions and
fine-tunings on the segment start from the newest adapted weights on the head's line of
history (undo a fine-tuning and its adaptation is no longer used); they are deleted with the
segment or the session. Conflict policy: as every job, fail, never rebase.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from medseg.engine import bifseg_method
from medseg.engine.bifseg import BoxCrop
from medseg.engine.finetune import RANGES
from medseg.engine.prompts import (
    AXES,
    MAX_PATH_POINTS,
    MAX_SCRIBBLE_POINTS,
    MAX_SCRIBBLES,
    Box,
    Marks,
    Plane,
    check_inside,
    check_polyline_budget,
    merge_marks,
    rasterize_polyline,
    raw_path_points,
)
from medseg.engine.volume import MAX_INDEX
from medseg.errors import EmptyResult, InvalidPrompt, plain
from medseg.jobs import queue
from medseg.jobs.context import CommitPlan, JobContext
from medseg.jobs.kinds import JobKind
from medseg.plugins import Plugins
from medseg.store import Store
from medseg.store.records import JobRecord, RevisionRecord, SessionMeta
from medseg.usecases.interactions import check_base_revision

KIND = "finetune"
# a result keeping fewer than this fraction of the voxels the segment had inside the box's
# crop "loses essentially all" of it: not applied (fraction of the head's voxels, unitless)
MIN_KEPT_FRACTION = 0.05
Zyx = Annotated[list[Annotated[int, Field(ge=0, le=MAX_INDEX)]],
                Field(min_length=3, max_length=3)]


class ScribbleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: list[Zyx] = Field(min_length=1, max_length=MAX_PATH_POINTS,
                            description="polyline of [z, y, x] voxels, joined without gaps")
    foreground: bool = True


def _override(name: str, description: str, alias: str | None = None) -> Any:
    """An optional override bounded as the engine bounds it (engine.finetune.RANGES), so the
    contract shows the ranges and the engine check can never disagree with it."""
    allowed = RANGES[name]
    return Field(None, alias=alias, description=description, le=allowed.hi,
                 gt=allowed.lo if allowed.lo_open else None,
                 ge=None if allowed.lo_open else allowed.lo)


class FinetuneOverrides(BaseModel):
    """Overrides of the paper's defaults (engine.finetune.PARAMS_2D / PARAMS_3D): finite and
    within the engine's ranges (`Infinity` / `NaN` are refused, as every number)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)
    alternations: int | None = _override("alternations", "label + network updates (4)")
    iterations: int | None = _override("iterations", "SGD steps per network update (20)")
    lr: float | None = _override("lr", "learning rate (1e-2)")
    lamb: float | None = _override("lamb", "pairwise weight of the graph cut (3 in 2D, 10 in "
                                   "3D)", alias="lambda")
    sigma: float | None = _override("sigma", "intensity scale of eq. 2 (0.1)")
    t0: float | None = _override("t0", "uncertain band lower bound (0.2)")
    t1: float | None = _override("t1", "uncertain band upper bound (0.7 / 0.6)")
    epsilon: float | None = _override("epsilon", "geodesic distance threshold (0.2)")
    omega: float | None = _override("omega", "weight of scribble voxels (5)")
    weighted: bool | None = Field(None, description="false: BIFSeg(-w), every weight 1")

    @model_validator(mode="after")
    def _band(self):
        if self.t0 is not None and self.t1 is not None and self.t0 > self.t1:
            raise ValueError("t0 must not exceed t1")
        return self

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)  # by field name: engine.finetune's names


class BoxSource(BaseModel):
    lo: Zyx
    hi: Zyx
    plane: dict[str, Any] | None = None  # {"axis", "index"} for 2D
    margin: int = bifseg_method.BifsegParams().margin
    revision: int  # the revision whose interaction drew (or last fine-tuned) the box


class FinetuneJobParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["unsupervised", "supervised"] = "unsupervised"
    scribbles: list[ScribbleSpec] = Field(default_factory=list, max_length=MAX_SCRIBBLES)
    params: FinetuneOverrides = Field(default_factory=FinetuneOverrides)
    source: BoxSource

    @model_validator(mode="before")
    @classmethod
    def _few_points(cls, data: Any) -> Any:
        if isinstance(data, dict) and raw_path_points(data.get("scribbles")) > MAX_SCRIBBLE_POINTS:
            raise ValueError(f"the scribbles hold more than {MAX_SCRIBBLE_POINTS} points together")
        return data


def find_box(store: Store, meta: SessionMeta, head: RevisionRecord) -> BoxSource:
    """The newest BIFSeg box on the line of history ending at `head`; InvalidPrompt if none."""
    for record in store.segments.lineage(meta, head):
        action = record.interaction.as_dict()
        if action.get("method") != bifseg_method.NAME:
            continue
        if action.get("type") == "box" and action.get("marks", {}).get("boxes"):
            lo, hi = action["marks"]["boxes"][-1]
            margin = action.get("params", {}).get("margin", bifseg_method.BifsegParams().margin)
            return BoxSource(lo=lo, hi=hi, plane=action.get("plane"), margin=margin,
                             revision=record.revision)
        if action.get("type") == KIND:
            return BoxSource(**{**action["box"], "revision": record.revision})
    raise InvalidPrompt(f"segment {head.segment} has no BIFSeg result to fine-tune: draw a box "
                        f"with method {bifseg_method.NAME!r} first (interactions endpoint)")


def _plane(source: BoxSource) -> Plane | None:
    if source.plane is None:
        return None
    return Plane(AXES[source.plane["axis"]], source.plane["index"])


def scribble_voxels(scribbles: list[ScribbleSpec], shape, plane: Plane | None,
                    max_marks: int | None = None):
    """(fg, bg) (N, 3) int voxels of the rasterised polylines; InvalidPrompt for a point
    outside the image or, for a 2D box, off its plane, or for polylines that trace more
    than `max_marks` voxels (None: not checked), all before rasterising."""
    parts: dict[bool, list[np.ndarray]] = {True: [], False: []}
    paths = [np.asarray(scribble.path, dtype=np.int64).reshape(-1, 3) for scribble in scribbles]
    for path in paths:
        check_inside(path, shape, "scribble")
        if plane is not None and (path[:, plane.axis] != plane.index).any():
            off = path[np.argmax(path[:, plane.axis] != plane.index)].tolist()
            raise InvalidPrompt(f"scribble point {off} (z, y, x) is not on the box's 2D plane "
                                f"{'zyx'[plane.axis]}={plane.index}")
    if max_marks is not None:
        check_polyline_budget(paths, max_marks)
    for scribble, path in zip(scribbles, paths):
        parts[scribble.foreground].append(rasterize_polyline(path))
    stack = lambda p: np.unique(np.concatenate(p), axis=0) if p else np.zeros((0, 3), np.int64)
    return stack(parts[True]), stack(parts[False])


def _crop_box(shape, spacing, source: BoxSource) -> Box:
    """The image region the network sees (box + margin), without running it."""
    plane = _plane(source)
    keep = [a for a in range(3) if plane is None or a != plane.axis]
    crop = BoxCrop.around([shape[a] for a in keep], [source.lo[a] for a in keep],
                          [source.hi[a] for a in keep], [spacing[a] for a in keep], source.margin)
    lo, hi = list(crop.lo), list(crop.hi)
    if plane is not None:
        lo.insert(plane.axis, plane.index)
        hi.insert(plane.axis, plane.index)
    return Box(tuple(lo), tuple(hi))


def submit(store: Store, plugins: Plugins, meta: SessionMeta, tenant: str, segment_id: int,
           mode: str, scribbles: list[dict[str, Any]], params: dict[str, Any],
           base_revision: int | None, max_marks: int) -> JobRecord:
    """Check the request now (404/409/422 instead of a failed job), then queue the job."""
    kind = plugins.job_kinds.get(KIND)
    segment, head = store.segments.head(meta, segment_id)
    check_base_revision(segment, base_revision)
    source = find_box(store, meta, head)
    job_params = kind.parse_params(
        {"mode": mode, "scribbles": scribbles, "params": params, "source": source.model_dump()})
    assert isinstance(job_params, FinetuneJobParams)  # the kind's own params type
    if mode == "supervised" and not job_params.scribbles:
        raise InvalidPrompt("supervised fine-tuning needs at least one scribble")
    if mode == "unsupervised" and job_params.scribbles:
        raise InvalidPrompt("unsupervised fine-tuning takes no scribbles: use mode 'supervised'")
    fg, bg = scribble_voxels(job_params.scribbles, meta.shape, _plane(source), max_marks)
    if len(fg) + len(bg):
        crop = _crop_box(meta.shape, meta.spacing, source)
        points = np.concatenate([fg, bg])
        inside = ((points >= crop.lo) & (points <= crop.hi)).all(axis=1)
        if not inside.any():
            raise InvalidPrompt(f"no scribble voxel lies inside the box's crop {list(crop.lo)}.."
                                f"{list(crop.hi)} (z, y, x): fine-tuning works inside it")
    return queue.submit(store, kind, tenant, meta.id, segment_id,
                        job_params.model_dump(by_alias=True), head.revision)


def check_not_emptied(network_voxels: int, result_voxels: int, head_voxels: int, roi: Box,
                      segment_id: int, revision: int) -> None:
    """EmptyResult when the fine-tuned network segments nothing inside the box's crop (what
    the result then holds is at most the scribbled voxels), or when the result keeps fewer than
    MIN_KEPT_FRACTION of the voxels the segment has there: applying it would throw the user's
    mask away (seen: a 3D box on a soft-tissue sarcoma, whose fine-tuning ended empty)."""
    crop = f"the box's crop {list(roi.lo)}..{list(roi.hi)} (z, y, x)"
    unchanged = (f"nothing was applied: segment {segment_id} stays at revision {revision}. "
                 "Try supervised fine-tuning with foreground scribbles on the object, fewer "
                 "iterations, or a new box")
    if network_voxels == 0:
        raise EmptyResult(f"fine-tuning ended with an empty mask in {crop}; {unchanged}")
    if head_voxels and result_voxels < MIN_KEPT_FRACTION * head_voxels:
        raise EmptyResult(
            f"fine-tuning kept {plain(result_voxels)} of the {plain(head_voxels)} voxels the "
            f"segment has in {crop} (under {plain(100 * MIN_KEPT_FRACTION)} %); {unchanged}")


def run(ctx: JobContext, p: FinetuneJobParams) -> dict[str, Any]:
    """The job: network on the box, fine-tune block 6 with progress, commit one revision."""
    from medseg.engine.finetune import finetune, params_for
    from medseg.models.block6 import weights_to_bytes

    t0 = time.perf_counter()
    store, meta, job = ctx.store, ctx.meta, ctx.record
    base = store.segments.revision(meta, ctx.segment_id, ctx.base_revision)
    plane = _plane(p.source)
    box = Box(tuple(p.source.lo), tuple(p.source.hi))
    boxed = bifseg_method.run_box(lambda b: store.sessions.read_image(meta, b), meta.shape,
                                  meta.spacing, box, plane, p.source.margin)
    dims = boxed.dims
    adapted_name = bifseg_method.adapted_block6_name(dims)
    adapted = bifseg_method.weights_from_bytes(store.segments.artifact(meta, base, adapted_name))
    weights = adapted if adapted is not None else boxed.network.block6
    fg_vox, bg_vox = scribble_voxels(p.scribbles, meta.shape, plane)  # submit checked them
    try:
        settings = params_for(dims, **p.params.given())
    except ValueError as exc:
        raise InvalidPrompt(f"invalid fine-tuning parameters: {exc}") from None
    total = settings.total_iterations
    ctx.progress(0, total, f"network on the box ({boxed.network.name})")
    t1 = time.perf_counter()
    out = finetune(boxed.state.features, boxed.state.image_norm, weights,
                   boxed.marks_to_grid(fg_vox) if len(fg_vox) else None,
                   boxed.marks_to_grid(bg_vox) if len(bg_vox) else None,
                   boxed.state.crop.grid_spacing, settings,
                   progress=lambda k, n, loss: ctx.progress(k, n, f"iteration {k} of {n}", loss))
    t2 = time.perf_counter()
    mask = boxed.to_roi(out.mask.astype(np.float32)) > 0.5
    network_voxels = int(mask.sum())
    for voxels, value in ((bg_vox, False), (fg_vox, True)):  # scribbles keep their labels
        local = voxels - np.asarray(boxed.roi.lo)
        local = local[((local >= 0) & (local < np.asarray(mask.shape))).all(axis=1)]
        mask[tuple(local.T)] = value
    probability = np.clip(boxed.to_roi(out.probability), 0.0, 1.0)
    before = store.segments.read_mask(meta, base, boxed.roi)
    check_not_emptied(network_voxels, int(mask.sum()), int(before.sum()), boxed.roi,
                      ctx.segment_id, base.revision)
    blob = weights_to_bytes(out.weights)
    summary = {
        "mode": p.mode, "dims": dims, "box_revision": p.source.revision,
        "started_from": "adapted" if adapted is not None else "trained",
        "iterations": len(out.losses),
        "loss_first": round(out.losses[0], 6) if out.losses else None,
        "loss_last": round(out.losses[-1], 6) if out.losses else None,
        "scribble_voxels": {"fg": len(fg_vox), "bg": len(bg_vox)},
        "changed_voxels": int((mask ^ before).sum()),
        "timings_ms": {k: round(1000 * v, 1) for k, v in out.timings.items()},
    }

    def plan(current) -> CommitPlan:
        return CommitPlan(
            current, boxed.roi, mask,
            {"type": KIND, "method": bifseg_method.NAME, "job": job.id, "mode": p.mode,
             "params": p.params.model_dump(by_alias=True, exclude_none=True),
             "box": p.source.model_dump(exclude={"revision"}),
             "scribbles": [s.model_dump() for s in p.scribbles],
             "roi": [list(boxed.roi.lo), list(boxed.roi.hi)], "result": summary},
            {"load": t1 - t0, "compute": t2 - t1, "finetune": out.timings.get("total", 0.0)},
            merge_marks(base.marks.to_marks(), Marks(fg_vox, bg_vox, [])), summary,
            probability=probability,
            also=lambda pipe, revision: store.segments.write_artifact(
                pipe, meta, revision.revision, adapted_name, blob))

    ctx.commit(ctx.segment_id, base, plan)
    return summary


def _warm() -> None:
    """Workers import the fine-tuning code once, before forking job processes. It is NumPy
    (no torch); BLAS threads are left to NumPy's default (measured on this loaded 2-core
    machine: 2D fine-tuning 0.19 s with two OpenBLAS threads, 0.24 s with one)."""
    import medseg.engine.finetune
    import medseg.models.block6  # noqa: F401


JOB_KIND = JobKind(
    name=KIND,
    description="BIFSeg image-specific fine-tuning of a segment's box result: unsupervised or "
                "with scribbles; progress is step k of n with the loss; commits one revision "
                "and stores the adapted block-6 weights with it.",
    params_type=FinetuneJobParams, run=run, warm=_warm)
