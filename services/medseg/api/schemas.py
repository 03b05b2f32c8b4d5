"""Request and response bodies of the /v1 API. Voxel coordinates are [z, y, x] integers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medseg.builtin import DEFAULT_EDITING_METHOD, DEFAULT_METHOD, DEFAULT_PREDICTOR
from medseg.engine.prompts import (
    MAX_CLICKS,
    MAX_PATH_POINTS,
    MAX_POINTS,
    MAX_SCRIBBLE_POINTS,
    MAX_SCRIBBLES,
    raw_path_points,
)
from medseg.engine.volume import MAX_INDEX

# Every number a request carries is bounded here, so the contract shows it and nothing
# unbounded reaches NumPy (an index beyond int64 raised deep inside it). Voxel indices: an
# image has at most MAX_INDEX + 1 voxels along an axis (the upload refuses longer ones).
Index = Annotated[int, Field(ge=0, le=MAX_INDEX)]
Zyx = Annotated[list[Index], Field(min_length=3, max_length=3,
                                   description="voxel index [z, y, x]")]
# Revisions count up from 1 per session; 2**53 - 1 is the largest integer a JavaScript client
# holds exactly. 0 is allowed (and names no revision: 404 / 409, never "the head").
MAX_REVISION = 2**53 - 1
Revision = Annotated[int, Field(ge=0, le=MAX_REVISION)]
HEX_COLOR_PATTERN = r"^#[0-9a-fA-F]{6}$"
HexColor = Annotated[str, Field(pattern=HEX_COLOR_PATTERN, examples=["#e6194b"])]
# the ids the service hands out (uuid4().hex for sessions, 24 hex digits for jobs)
SESSION_ID_PATTERN = r"^[0-9a-f]{32}$"
JOB_ID_PATTERN = r"^[0-9a-f]{24}$"


class Strict(BaseModel):
    # no NaN / Infinity in any float field (free-form `params` are checked by the engine)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# -- sessions ------------------------------------------------------------------------------
class SessionExpiry(BaseModel):
    """A session's idle expiry, as a keep-alive leaves it."""

    id: str
    expires_in_s: int
    expires_at: str
    archived: bool = Field(description="an archive is configured: an expiring session is archived "
                           "first and can be restored (POST /v1/sessions/restore)")


class ArchivedSessionPublic(BaseModel):
    """An expired session kept in the archive (no name: archives hold no file names)."""

    session_id: str
    archived_at: str
    expired_at: str = Field(description="when it was due to expire as it was archived")
    shape: list[int]
    modality: str
    created_at: str
    segments: int


class RestoreRequest(Strict):
    session_id: str = Field(pattern=SESSION_ID_PATTERN, description="the archived session's id")


class SessionPublic(BaseModel):
    id: str
    name: str | None
    shape: list[int] = Field(description="[Z, Y, X] voxels")
    spacing: list[float] = Field(description="[sz, sy, sx] mm")
    affine: list[list[float]] = Field(description="4x4 voxel (x, y, z) -> RAS mm, as in NIfTI")
    modality: str
    dtype: str
    source_format: str
    created_at: str
    expires_in_s: int = Field(description="seconds until the session expires if left idle")
    expires_at: str | None = Field(None, description="when it expires if left idle (ISO 8601, "
                                   "UTC); every request on it, or a keep-alive, extends it")
    segments: list[SegmentPublic] = []
    warnings: list[str] = Field(default_factory=list, description=(
        "what loading the image changed, in words: e.g. NaN or infinite voxels (often "
        "outside the field of view) replaced by the lowest / highest finite value"))
    source: dict[str, Any] | None = Field(None, description=(
        "where the image came from when it was opened from a PACS (kind \"pacs\": archive "
        "name, study, series and frame-of-reference UIDs, instance count, reused (copied from "
        "an earlier pull of the same series), study / series description and date where the "
        "instances have them (no patient identifiers), timings_ms) or uploaded as a DICOM "
        "series with its UIDs (kind \"upload\": the same UIDs, count and descriptions); "
        "null otherwise (docs/pacs.md)"))


# -- segments ------------------------------------------------------------------------------
class SegmentCreate(Strict):
    name: str | None = Field(None, max_length=200)
    label: int | None = Field(None, ge=1, le=65535, description="value in the label-map export")
    color: HexColor | None = Field(None, description=(
        "default: a palette of 14 for segments 1-14, then generated colours (golden-angle "
        "hues) that never repeat an earlier segment's"))


class SegmentUpdate(Strict):
    name: str | None = Field(None, max_length=200)
    label: int | None = Field(None, ge=1, le=65535)
    color: HexColor | None = None
    reviewed: bool | None = Field(None, description="mark the segment reviewed / accepted")


class SegmentPublic(BaseModel):
    id: int
    name: str
    label: int
    color: str
    revision: int = Field(description="current (head) revision; send it back as If-Match")
    can_undo: bool
    can_redo: bool
    voxels: int
    locked_slices: dict[str, list[int]] = Field(
        default_factory=dict, description="locked slice indices per axis (z, y, x)")
    reviewed: bool = Field(False, description=(
        "an annotator marked it reviewed / accepted (PATCH; editing the mask leaves it as is)"))


# -- interactions --------------------------------------------------------------------------
class PlaneSpec(Strict):
    axis: Literal["z", "y", "x"] = Field(
        description="axis held fixed: z axial, y coronal, x sagittal (voxel axes)")
    index: Index


class Click(Strict):
    zyx: Zyx
    foreground: bool = True


class Scribble(Strict):
    path: list[Zyx] = Field(min_length=1, max_length=MAX_PATH_POINTS,
                            description="polyline, joined without gaps")
    foreground: bool = True


def _few_scribble_points(data: Any) -> Any:
    """Refuses too many scribble points in all before validating each (cheap first)."""
    if isinstance(data, dict) and raw_path_points(data.get("scribbles")) > MAX_SCRIBBLE_POINTS:
        raise ValueError(f"the scribbles hold more than {MAX_SCRIBBLE_POINTS} points together")
    return data


SCRIBBLES_LIMITS = (f"at most {MAX_SCRIBBLES} scribbles of at most {MAX_PATH_POINTS} points, "
                    f"{MAX_SCRIBBLE_POINTS} points together, tracing at most `max_marks` voxels "
                    "(/v1/capabilities limits)")


class BoxSpec(Strict):
    lo: Zyx = Field(description="inclusive corner [z, y, x]")
    hi: Zyx = Field(description="inclusive corner [z, y, x]")


class PropagateRequest(Strict):
    axis: Literal["z", "y", "x"] = Field("z", description="propagate across slices of this axis")
    start_index: int | None = Field(None, ge=0, le=MAX_INDEX, description="default: the slice "
                                    "with the largest mask area on that axis")
    method: str = Field(DEFAULT_PREDICTOR, description="see /v1/capabilities propagation_methods "
                                                      "(the default is listed first)")
    params: dict[str, Any] = Field(default_factory=dict, description="parameter overrides")
    base_revision: Revision | None = Field(None, description="revision the client saw (or "
                                           "If-Match)")


class FinetuneRequest(Strict):
    """BIFSeg image-specific fine-tuning of the segment's box result (a job)."""

    mode: Literal["unsupervised", "supervised"] = Field(
        "unsupervised", description="supervised: guided by `scribbles` (hard constraints, "
                                    "weight omega); unsupervised: none")
    scribbles: list[Scribble] = Field(default_factory=list, max_length=MAX_SCRIBBLES,
                                      description="fg/bg polylines [z, y, x]; on the box's "
                                                  "plane for a 2D box; " + SCRIBBLES_LIMITS)
    params: dict[str, Any] = Field(default_factory=dict, description=(
        "overrides of the paper's defaults: alternations (4), iterations (20), lr (1e-2), "
        "lambda (3 in 2D, 10 in 3D), sigma (0.1), t0 (0.2), t1 (0.7 in 2D, 0.6 in 3D), "
        "epsilon (0.2), omega (5), weighted (true; false = BIFSeg(-w)); finite, within the "
        "ranges of the `finetune` job kind's parameters (/v1/capabilities)"))
    base_revision: Revision | None = Field(None, description="revision the client saw (or "
                                           "If-Match)")

    _few_points = model_validator(mode="before")(_few_scribble_points)


class PropagateAfter(Strict):
    """Re-propagate from the corrected slice (2D only) once the correction is applied."""

    method: str = DEFAULT_PREDICTOR
    params: dict[str, Any] = Field(default_factory=dict)


class LocksPublic(BaseModel):
    segment_id: int
    locked_slices: dict[str, list[int]] = Field(description="locked slice indices per axis")


class InteractionBase(Strict):
    method: str = Field(DEFAULT_METHOD, description="see /v1/capabilities")
    dim: Literal["2d", "3d"] = Field("3d", description="2d works on `plane` only")
    plane: PlaneSpec | None = Field(None, description="required for dim=2d on a volume")
    params: dict[str, Any] = Field(default_factory=dict, description="method parameter overrides")
    base_revision: Revision | None = Field(
        None, description="revision the client saw (or If-Match); stale -> 409")
    propagate: PropagateAfter | None = Field(
        None, description="2D only: after this correction (which locks its slice), re-propagate "
                          "from it in both directions up to the next locked slices (a job)")


class ClickInteraction(InteractionBase):
    type: Literal["click"]
    clicks: list[Click] = Field(min_length=1, max_length=MAX_CLICKS)


class ScribbleInteraction(InteractionBase):
    type: Literal["scribble"]
    scribbles: list[Scribble] = Field(min_length=1, max_length=MAX_SCRIBBLES,
                                      description=SCRIBBLES_LIMITS)

    _few_points = model_validator(mode="before")(_few_scribble_points)


class BoxInteraction(InteractionBase):
    type: Literal["box"]
    box: BoxSpec


class PointsInteraction(InteractionBase):
    """Interior margin points (MIDeepSeg): clicks inside the object, close to its boundary,
    around all of it (near its extreme points); at least 3. Starts the segment afresh (on the
    plane in 2D); refine the result with `click` interactions of the same method."""

    type: Literal["points"]
    method: str = Field("mideepseg",
                        description="a method that takes `points` (see /v1/capabilities)")
    points: list[Zyx] = Field(min_length=1, max_length=MAX_POINTS)


# -- direct edits of the mask (issue 14, docs/methods.md#editing-an-existing-mask) ----------
class _StrokeEdit(InteractionBase):
    method: str = Field("manual", description="a method that takes this type (/v1/capabilities)")
    dim: Literal["2d", "3d"] = Field("2d", description="2d: a disc on `plane`; 3d: a ball")
    path: list[Zyx] = Field(min_length=1, max_length=MAX_PATH_POINTS,
                            description="the stroke's centre line, a polyline joined without "
                                        "gaps (on `plane` for 2d)")
    radius_mm: float = Field(2.0, ge=0, le=200, description="every voxel whose centre lies "
                             "within this many mm of the centre line changes")


class PaintInteraction(_StrokeEdit):
    """Paint: add every voxel within `radius_mm` of the stroke (no network)."""

    type: Literal["paint"]


class EraseInteraction(_StrokeEdit):
    """Erase: clear every voxel within `radius_mm` of the stroke (no network)."""

    type: Literal["erase"]


class ThresholdInteraction(_StrokeEdit):
    """Threshold paint: add every voxel within `radius_mm` of the stroke whose intensity lies
    within [low, high] (HU for CT, the image's own values otherwise; no network)."""

    type: Literal["threshold"]
    low: float = Field(ge=-1e6, le=1e6, description="lowest intensity painted (HU for CT)")
    high: float = Field(ge=-1e6, le=1e6, description="highest intensity painted (HU for CT)")


class FillInteraction(InteractionBase):
    """Fill (2D): each click floods the closed region of background it lands in (a click in
    background that reaches the slice's edge, or on the mask, is refused: 422)."""

    type: Literal["fill"]
    method: str = Field("manual", description="a method that takes `fill` (/v1/capabilities)")
    dim: Literal["2d", "3d"] = Field("2d", description="fill works on a 2D `plane` only")
    clicks: list[Zyx] = Field(min_length=1, max_length=MAX_CLICKS)


class SelectInteraction(InteractionBase):
    """Selection tool: a click on a mis-segmented region fills it (foreground) or erases it
    (foreground false); only the region the click lands in changes."""

    type: Literal["select"]
    method: str = Field(DEFAULT_EDITING_METHOD,
                        description="a method that takes `select` (/v1/capabilities)")
    dim: Literal["2d", "3d"] = Field("2d", description="2d works on `plane` only")
    clicks: list[Click] = Field(min_length=1, max_length=MAX_CLICKS)


class BrushInteraction(InteractionBase):
    """Brush tool: strokes over a boundary error, adding (foreground) or removing; only the
    error regions the strokes touch change."""

    type: Literal["brush"]
    method: str = Field(DEFAULT_EDITING_METHOD,
                        description="a method that takes `brush` (/v1/capabilities)")
    dim: Literal["2d", "3d"] = Field("2d", description="2d works on `plane` only")
    scribbles: list[Scribble] = Field(min_length=1, max_length=MAX_SCRIBBLES,
                                      description=SCRIBBLES_LIMITS)

    _few_points = model_validator(mode="before")(_few_scribble_points)


class AdjustInteraction(InteractionBase):
    """Adjustment tool: grow (amount > 0) or shrink (amount < 0) the whole boundary smoothly to
    about (1 + amount) x the mask's voxels (on `plane` in 2d, the volume in 3d); monotone: a
    larger amount never gives a smaller mask."""

    type: Literal["adjust"]
    method: str = Field(DEFAULT_EDITING_METHOD,
                        description="a method that takes `adjust` (/v1/capabilities)")
    dim: Literal["2d", "3d"] = Field("2d", description="2d works on `plane` only")
    amount: float = Field(ge=-1, le=10, description="relative change of the mask's voxel "
                          "count: -0.1 shrinks by about 10 %, 0.2 grows by about 20 %; -1 "
                          "empties it")


# the organs RefineNet's organ network segments (medseg.models.refinenet_io.ORGANS; a test
# keeps the two equal), listed in the contract so clients see them
Organ = Literal["liver", "spleen", "kidney_left", "kidney_right", "aorta", "stomach"]


class OrganInteraction(InteractionBase):
    """Automatic start (RefineNet, issue 14): the organ network segments the named organ in
    the whole volume, no clicks needed; the result replaces the segment's mask and marks.
    Correct it with 2D `click` interactions of method `refinenet` (or any other method)."""

    type: Literal["organ"]
    method: str = Field("refinenet", description="a method that takes `organ` "
                                                 "(/v1/capabilities)")
    dim: Literal["2d", "3d"] = Field("3d", description="3d: the whole volume")
    organ: Organ = Field(description="the organ's name (the organ network's channels); an "
                                     "unknown name is refused (422) naming the known ones")


Interaction = Annotated[ClickInteraction | ScribbleInteraction | BoxInteraction | PointsInteraction
                        | PaintInteraction | EraseInteraction | ThresholdInteraction
                        | FillInteraction | SelectInteraction | BrushInteraction
                        | AdjustInteraction | OrganInteraction,
                        Field(discriminator="type")]


class Delta(BaseModel):
    encoding: Literal["rle-xor/1"]
    shape: list[int]
    bbox: list[int] | None = Field(
        description="half-open [z0, y0, x0, z1, y1, x1] of changed voxels")
    data: str = Field(description="base64 of LEB128 run lengths, see docs/mask-delta-format.md")
    from_revision: int | None
    to_revision: int | None
    changed_voxels: int


class MaskRle(BaseModel):
    encoding: Literal["rle/1"]
    shape: list[int]
    bbox: list[int] | None
    data: str
    revision: int


class ChangeResult(BaseModel):
    """Answer to every change of a segment (interaction, undo, redo)."""

    segment_id: int
    revision: int
    previous_revision: int
    delta: Delta
    roi: BoxSpec | None = Field(None, description="region the method recomputed")
    timings_ms: dict[str, float] = {}
    can_undo: bool
    can_redo: bool
    job: JobPublic | None = Field(None, description="the re-propagation job, when asked for")
    job_error: ErrorBody | None = Field(None, description="why the asked-for re-propagation "
                                        "was not started (the change itself was applied)")


class RevisionPublic(BaseModel):
    revision: int
    parent: int | None
    created_at: str
    interaction: dict[str, Any]
    timings_ms: dict[str, float]
    voxels: int
    is_head: bool
    undone: bool


class History(BaseModel):
    segment_id: int
    head: int
    revisions: list[RevisionPublic]


class HintPublic(BaseModel):
    rank: int = Field(description="1 = most likely wrong")
    kind: Literal["missing", "extra"] = Field(
        description="missing: the mask should probably cover this region (add / select with "
                    "a left click); extra: it should probably not (remove)")
    centre: list[int] = Field(description="[z, y, x] voxel inside the region, the one farthest "
                                          "from its edge (where to click)")
    box: BoxSpec = Field(description="the region's bounding box (inclusive corners)")
    voxels: int = Field(description="estimated error size: the region's voxels")
    volume_ml: float = Field(description="the same in mL (voxels x voxel volume)")
    likelihood: float = Field(description="mean error likelihood over the region, 0..1")
    score: float = Field(description="ranking key: voxels x likelihood")
    sources: dict[str, float] = Field(
        description="share of the region each source flags (graphcut: model-free "
                    "re-segmentation; shape: concavity/protrusion the image confirms)")


class SegmentHints(BaseModel):
    segment_id: int
    revision: int = Field(description="the revision examined (the head)")
    hints: list[HintPublic] = Field(description="at most k, most likely wrong first; few or "
                                                "none when the mask looks consistent")
    sources: list[str]
    ms: float = Field(description="server time of the analysis")


# -- jobs --------------------------------------------------------------------------------
class JobProgressPublic(BaseModel):
    step: int
    total: int | None = Field(description="estimated number of steps (may change as it runs)")
    message: str
    loss: float | None = None


class JobErrorPublic(BaseModel):
    code: str = Field(
        description="revision_conflict, worker_lost, invalid_prompt, internal_error, ...; on a "
        "cancelled job: superseded (a newer job of the same kind on the segment replaced it)")
    message: str


class JobQueuePublic(BaseModel):
    """Where a queued or running job stands (estimates from recent runs of each kind)."""

    position: int | None = Field(description="1 = the next job a worker takes; null once running")
    jobs_ahead: int = Field(description="queued jobs that start before it (higher priorities "
                            "first)")
    running: int = Field(description="jobs running now")
    workers: int = Field(description="live job workers")
    starts_in_s: float | None = Field(description="seconds until a worker is expected to take it "
                                      "(0 once running); null when unknown")
    eta_s: float | None = Field(description="seconds until it is expected to finish; null when "
                                "no recent run of a kind involved is known, or no worker lives")
    basis: str = Field(description="what the estimate rests on, in words")


class JobPublic(BaseModel):
    """An asynchronous job. Follow it with GET (polling) or GET .../events (server-sent events)."""

    id: str
    kind: str
    session_id: str
    segment_id: int | None
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: JobProgressPublic
    created_at: str
    started_at: str | None
    finished_at: str | None
    timings_ms: dict[str, float] = Field(description="queue (wait for a worker), run, total, ...")
    base_revision: int | None = Field(description="revision the job works from")
    result_revision: int | None = Field(description="the one revision the job made, once succeeded")
    result: dict[str, Any] = Field(description="kind-specific summary")
    error: JobErrorPublic | None
    cancel_requested: bool
    priority: Literal["interactive", "normal", "batch"] = Field(
        "normal", description="the queue it waits in; workers take interactive jobs (e.g. a "
        "propagation) first, then normal (fine-tuning), then batch (a PACS push)")
    queue: JobQueuePublic | None = Field(
        None, description="position and ETA while queued or running (GET /v1/jobs/{id} and the "
        "answer to a submission); null once it has ended")


class JobKindInfo(BaseModel):
    name: str
    description: str
    params: dict[str, Any] = Field(description="JSON schema of the job's parameters")


# -- service -------------------------------------------------------------------------------
class MethodInfo(BaseModel):
    name: str
    description: str
    interaction_types: list[str]
    dims: list[str]
    params: dict[str, Any] = Field(description="parameter defaults, overridable per request")


class Capabilities(BaseModel):
    api_version: str
    interaction_types: list[str]
    methods: list[MethodInfo]
    default_method: str
    delta_encodings: list[str]
    mask_encodings: list[str]
    input_formats: list[str]
    export_formats: list[str]
    limits: dict[str, int]
    job_kinds: list[JobKindInfo] = []
    propagation_methods: list[MethodInfo] = []
    auth: Literal["api-key", "none (dev mode)"]


class ModelInfo(BaseModel):
    name: str
    version: str
    task: str = Field(description="what the model does, e.g. mideepseg")
    dims: int = Field(description="2 or 3")
    encoding: str = Field(description="cue encoding of the clicks it was trained with")
    input_size: list[int] = Field(description="network input, spatial voxels ([Y, X] or [Z, Y, X])")
    metrics: dict[str, Any] = Field(description="validation scores from the model card")
    provider: str = Field(description="onnxruntime execution provider it runs (or will run) on")
    organs: list[str] = Field(default_factory=list, description="an organ model (task organ): "
                              "the organs it segments, the names an `organ` start takes")


class ModelList(BaseModel):
    models: list[ModelInfo]
    problems: dict[str, str] = Field(default_factory=dict,
                                     description="model cards that could not be read, and why")


class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable code")
    message: str
    request_id: str | None = None


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` of a route: each of these statuses answers an ErrorBody."""
    return {code: {"model": ErrorBody} for code in codes}


SessionPublic.model_rebuild()
ChangeResult.model_rebuild()
