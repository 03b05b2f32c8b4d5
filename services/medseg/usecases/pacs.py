"""PACS integration: open a session from a DICOMweb archive, export and import DICOM SEG,
push a SEG back (a job kind, "pacs-push").

Privacy: patient identifiers never leave the image's own records. Messages name an archive by
its configured name and an instance by its position; keys hold a digest, never a UID; job
parameters hold the archive's name, the form and revision numbers (the result lists the UIDs
it stored, as the issue asks).
"""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pydicom
from pydantic import BaseModel, ConfigDict, Field

from medseg.engine import imageio
from medseg.engine.imageio import check_geometry, finite_voxels
from medseg.engine.imageio._common import LPS_TO_RAS
from medseg.engine.imageio.dicom import is_image, load_dicom_series
from medseg.engine.imageio.dicom_seg import (
    Algorithm,
    SegForm,
    SegIdentity,
    SegmentInput,
    build_seg,
    derived_uid,
    read_seg,
)
from medseg.engine.prompts import EDIT_KINDS, Marks
from medseg.engine.volume import Volume
from medseg.errors import (
    CorruptImage,
    ImageTooLarge,
    InvalidPrompt,
    MedsegError,
    PacsError,
    PacsUnavailable,
    SessionNotFound,
)
from medseg.jobs import queue
from medseg.jobs.kinds import JobKind
from medseg.models.loader import ModelLoader
from medseg.pacs.client import PacsClient, qido_value
from medseg.pacs.config import PacsConfig, PacsSettings
from medseg.store import Store, quotas
from medseg.store.chunks import full_box
from medseg.store.dicom_source import DicomSource, DicomSourceStore
from medseg.store.records import JobRecord, RevisionRecord, SegmentRecord, SessionMeta, utcnow
from medseg.usecases.sessions import ExportFile
from medseg.usecases.uploaded_dicom import descriptions, header_bytes

SOFTWARE_VERSION = "0.1.0"  # the service's (api/app.py's FastAPI version)
SEG_FORMATS: dict[str, SegForm] = {"dicom-seg": "binary", "dicom-seg-labelmap": "labelmap"}
# interaction types a person makes (the direct edits of issue 14 too)
PERSON_MADE = {"click", "scribble", "box", "points", *EDIT_KINDS}


# -- session from a PACS ---------------------------------------------------------------------
@dataclass
class Pulled:
    meta: SessionMeta
    reused: bool
    timings: dict[str, float]  # seconds: search, retrieve, decode, store


def create_session_from_pacs(store: Store, config: PacsConfig, tenant: str, pacs: str,
                             study_uid: str, series_uid: str, limits: imageio.ImageLimits,
                             name: str | None = None, reuse: bool = True) -> Pulled:
    """Find the series' instances (QIDO-RS), retrieve them (WADO-RS), build the volume with the
    DICOM series reader and open a session that keeps the source UIDs and headers. A second
    call for the same series (same archive, same instances) by the same tenant copies the
    image of the session that pulled it, when that session is still alive. Nothing is
    written unless everything succeeded."""
    endpoint = config.get(pacs, tenant)
    # the tenant's quotas before any transfer (the pulled size is not known yet: count 0 bytes)
    quotas.check_new_session(store.sessions.redis, store.quotas, tenant, 0)
    client = PacsClient(endpoint)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    found = client.series_instances(study_uid, series_uid)
    timings["search"] = time.perf_counter() - start
    if len(found) > endpoint.max_instances:
        raise ImageTooLarge(f"the series has {len(found)} instances; PACS {pacs!r} allows at "
                            f"most {endpoint.max_instances} per session")
    rows, cols = (_int_or(qido_value(found[0], tag), 0) for tag in ("00280010", "00280011"))
    if rows and cols and len(found) * rows * cols > limits.max_voxels:
        raise ImageTooLarge(f"the series is {len(found)} x {rows} x {cols} voxels, over the "
                            f"limit of {limits.max_voxels}")
    uids = sorted(str(qido_value(r, "00080018") or "") for r in found)
    digest = hashlib.sha256("\0".join([pacs, study_uid, series_uid, *uids]).encode()).hexdigest()
    dicom = DicomSourceStore(store.sessions)
    if reuse:
        copied = _reuse(store, dicom, tenant, digest, name, timings)
        if copied is not None:
            return copied
    start = time.perf_counter()
    datasets = client.retrieve_series(study_uid, series_uid)
    timings["retrieve"] = time.perf_counter() - start
    start = time.perf_counter()
    volume, ordered = _volume(datasets, study_uid, series_uid, len(found), limits)
    timings["decode"] = time.perf_counter() - start
    first = ordered[0]
    source = DicomSource(
        pacs=pacs, study_instance_uid=study_uid, series_instance_uid=series_uid,
        frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "")) or None,
        sop_class_uid=str(first.get("SOPClassUID", "")) or None,
        sop_instance_uids=[str(ds.SOPInstanceUID) for ds in ordered], digest=digest)
    headers = [header_bytes(ds) for ds in ordered]
    meta = _create(store, dicom, volume, tenant, name, source, headers, False, timings)
    return Pulled(meta, False, timings)


def _int_or(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _reuse(store: Store, dicom: DicomSourceStore, tenant: str, digest: str, name: str | None,
           timings: dict[str, float]) -> Pulled | None:
    earlier_id = dicom.recall(tenant, digest)
    if earlier_id is None:
        return None
    start = time.perf_counter()
    try:
        earlier = store.sessions.get(earlier_id, tenant, touch=False)
        source = dicom.source(earlier)
        if source.digest != digest:
            return None
        headers = dicom.headers(earlier, len(source.sop_instance_uids))
        array = store.sessions.read_image(earlier, full_box(earlier.shape))
    except (SessionNotFound, MedsegError):
        return None  # expired or deleted meanwhile: pull again
    volume = Volume(array=array, spacing=earlier.spacing, affine=np.asarray(earlier.affine),
                    modality=earlier.modality, source_format="dicom",
                    warnings=list(earlier.warnings))
    timings["copy"] = time.perf_counter() - start
    meta = _create(store, dicom, volume, tenant, name, source, headers, True, timings)
    return Pulled(meta, True, timings)


def _create(store: Store, dicom: DicomSourceStore, volume: Volume, tenant: str,
            name: str | None, source: DicomSource, headers: list[bytes], reused: bool,
            timings: dict[str, float]) -> SessionMeta:
    summary = {"kind": "pacs", "pacs": source.pacs,
               "study_instance_uid": source.study_instance_uid,
               "series_instance_uid": source.series_instance_uid,
               "frame_of_reference_uid": source.frame_of_reference_uid,
               "instances": len(source.sop_instance_uids), "reused": reused,
               **descriptions(headers[0] if headers else b""),
               "timings_ms": {k: round(v * 1000, 1) for k, v in timings.items()}}
    start = time.perf_counter()
    meta = store.sessions.create(
        volume, tenant, name, source=summary,
        also=lambda pipe, keys: dicom.write(pipe, keys, source, headers))
    dicom.remember(tenant, source.digest, meta.id)
    timings["store"] = time.perf_counter() - start
    return meta


def _volume(datasets: list[pydicom.Dataset], study_uid: str, series_uid: str, expected: int,
            limits: imageio.ImageLimits) -> tuple[Volume, list[pydicom.Dataset]]:
    """The volume and the instances in its slice order. Every instance must be an image of
    the series asked for; the archive's answer must hold as many as its search listed."""
    count = len(datasets)
    labelled = []
    for index, ds in enumerate(datasets):
        label = f"instance {index + 1} of {count}"
        if str(ds.get("StudyInstanceUID", "")) != study_uid or \
                str(ds.get("SeriesInstanceUID", "")) != series_uid:
            raise CorruptImage(f"the archive answered with {label} from another study or series")
        if not is_image(ds):
            raise CorruptImage(f"{label} of the series is not an image (e.g. a SEG or a "
                               "report stored in the same series); open an image series")
        labelled.append((label, ds))
    if count != expected:
        raise CorruptImage(f"the archive listed {expected} instances but returned {count}; "
                           "the series changed meanwhile, retry")
    try:
        volume = finite_voxels(check_geometry(load_dicom_series(labelled, limits)))
    except MedsegError:
        raise
    except Exception as exc:  # noqa: BLE001 - no raw library errors
        raise CorruptImage(f"the series could not be read as an image "
                           f"({type(exc).__name__})") from None
    return volume, _slice_order(volume, datasets)


def _slice_order(volume: Volume, datasets: list[pydicom.Dataset]) -> list[pydicom.Dataset]:
    """The instances by the volume's slice index, from each one's position and the affine."""
    to_index = np.linalg.inv(np.linalg.inv(LPS_TO_RAS) @ np.asarray(volume.affine))
    ordered: list[pydicom.Dataset | None] = [None] * volume.shape[0]
    for ds in datasets:
        position = [float(v) for v in ds.get("ImagePositionPatient", [0, 0, 0])]
        k = int(round(float((to_index @ np.asarray([*position, 1.0]))[2])))
        if not 0 <= k < len(ordered) or ordered[k] is not None:
            raise CorruptImage("the series' slice positions do not map one to one onto the "
                               "volume's slices")
        ordered[k] = ds
    return [ds for ds in ordered if ds is not None]


# -- DICOM SEG export ------------------------------------------------------------------------
@dataclass
class BuiltSeg:
    content: bytes
    form: SegForm
    source: DicomSource
    identity: SegIdentity
    revisions: dict[int, int]  # segment id -> revision
    seconds: float


def algorithm_of(store: Store, meta: SessionMeta, head: RevisionRecord,
                 models: ModelLoader | None) -> Algorithm:
    """Provenance of a segment's revision: SEMIAUTOMATIC once a person has steered it (a
    click, scribble, box or points on its line of history, or more than one change), else
    AUTOMATIC (one automatic result, or an import as it was); the methods and models used."""
    lineage = [r for r in store.segments.lineage(meta, head) if r.interaction.type != "create"]
    person = len(lineage) > 1 or any(r.interaction.type in PERSON_MADE for r in lineage)
    imported = [r for r in lineage if r.interaction.type == "import"]
    kind: Literal["AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"] = \
        "SEMIAUTOMATIC" if person else "AUTOMATIC"
    if not person and imported:
        declared = (imported[0].interaction.result or {}).get("algorithm_type")
        if declared in ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"):
            kind = declared
    methods: list[str] = []
    model_names: list[str] = []
    for record in lineage:  # newest first
        method = record.interaction.method or record.interaction.type
        if method not in methods:
            methods.append(method)
        model = (record.interaction.result or {}).get("model")
        if isinstance(model, str) and model not in model_names:
            model_names.append(model)
    parameters: dict[str, str] = {}
    version = SOFTWARE_VERSION
    for index, model in enumerate(model_names[:3]):
        name, _, model_version = model.partition("@")
        suffix = "" if index == 0 else f"_{index + 1}"
        parameters[f"model{suffix}"] = model
        card = _card(models, name)
        if card is not None:
            parameters[f"model_sha256{suffix}"] = card.sha256
        if index == 0 and model_version:
            version = model_version
    name = "+".join(methods) if methods else "none"
    return Algorithm(type=kind, name=f"medseg {name}", version=version,
                     uses_model=bool(model_names), parameters=parameters)


def _card(models: ModelLoader | None, name: str):
    if models is None:
        return None
    try:
        return models.cards.get(name)
    except MedsegError:
        return None


def build_session_seg(store: Store, meta: SessionMeta, form: SegForm,
                      revisions: dict[int, int] | None = None,
                      models: ModelLoader | None = None) -> BuiltSeg:
    """The session's segments as one DICOM SEG: at the given revisions (segment id ->
    revision), or at their heads. Its UIDs derive from (session, form, revisions), so the
    same revisions always make the same object."""
    start = time.perf_counter()
    dicom = DicomSourceStore(store.sessions)
    source = dicom.source(meta)
    segments: list[tuple[SegmentRecord, RevisionRecord]] = []
    for segment in store.segments.list(meta):
        if revisions is not None and segment.id not in revisions:
            continue
        rev = segment.head if revisions is None else revisions[segment.id]
        segments.append((segment, store.segments.revision(meta, segment.id, rev)))
    if revisions is not None and len(segments) != len(revisions):
        missing = sorted(set(revisions) - {s.id for s, _ in segments})
        raise InvalidPrompt(f"segment(s) {missing} no longer exist in the session")
    if not segments:
        raise InvalidPrompt("the session has no segments to export as DICOM SEG")
    chosen = {s.id: r.revision for s, r in segments}
    tag = ",".join(f"{s}:{r}" for s, r in sorted(chosen.items()))
    inputs = []
    for number, (segment, record) in enumerate(segments, start=1):
        inputs.append(SegmentInput(
            number=number, label=segment.name, color=segment.color,
            mask=store.segments.read_mask(meta, record, full_box(meta.shape)),
            algorithm=algorithm_of(store, meta, record, models),
            tracking_id=f"segment {segment.id} revision {record.revision}",
            tracking_uid=derived_uid(meta.id, "segment", str(segment.id), str(record.revision))))
    latest = max(chosen.values())
    words = "label map" if form == "labelmap" else "binary"
    identity = SegIdentity(
        series_instance_uid=derived_uid(meta.id, "series", form),
        sop_instance_uid=derived_uid(meta.id, form, tag), instance_number=latest,
        series_number=901 if form == "labelmap" else 900, content_label=f"MEDSEG_R{latest}"[:16],
        content_description=f"medseg revisions {tag.replace(':', '@')}",
        series_description=f"medseg segmentation ({words})")
    headers = [pydicom.dcmread(io.BytesIO(h), force=True)
               for h in dicom.headers(meta, len(source.sop_instance_uids))]
    content = build_seg(headers, inputs, form, identity, SOFTWARE_VERSION)
    return BuiltSeg(content, form, source, identity, chosen, time.perf_counter() - start)


def export_entry(built: BuiltSeg, pushed_to: str | None = None) -> dict[str, Any]:
    """What the session's history keeps of a SEG made from it."""
    return {"sop_instance_uid": built.identity.sop_instance_uid,
            "series_instance_uid": built.identity.series_instance_uid, "form": built.form,
            "revisions": {str(k): v for k, v in built.revisions.items()}, "at": utcnow(),
            "pushed_to": pushed_to}


def export_seg(store: Store, meta: SessionMeta, fmt: str,
               models: ModelLoader | None = None) -> ExportFile:
    built = build_session_seg(store, meta, SEG_FORMATS[fmt], models=models)
    DicomSourceStore(store.sessions).add_export(meta, export_entry(built))
    suffix = "-labelmap" if built.form == "labelmap" else ""
    return ExportFile(built.content, "application/dicom", f"{meta.id}-seg{suffix}.dcm")


# -- DICOM SEG import ------------------------------------------------------------------------
def import_seg(store: Store, meta: SessionMeta, content: bytes,
               max_bytes: int | None = None) -> list[SegmentRecord]:
    """Each segment of a SEG (binary or label map) that references the session's series
    becomes a new segment (one revision of type "import"). SeriesMismatch (422) for a SEG of
    another series, ImageTooLarge (413) for one whose masks would take more than `max_bytes`;
    nothing is written unless the whole SEG could be read."""
    dicom = DicomSourceStore(store.sessions)
    source = dicom.source(meta)
    read = read_seg(content, source.series_instance_uid, source.sop_instance_uids, max_bytes)
    algorithm_types = _declared_algorithm_types(content)
    created = []
    with store.sessions.locked(meta.id):
        for segment in read.segments:
            if segment.mask.shape != tuple(meta.shape):
                raise CorruptImage("the DICOM SEG's frames do not match the session's grid")
        for segment in read.segments:
            record = store.segments.create(meta, segment.label[:200] or None, None, segment.color)
            first = store.segments.revision(meta, record.id, record.head)
            interaction = {"type": "import", "method": "dicom-seg",
                           "result": {"sop_instance_uid": read.sop_instance_uid,
                                      "form": read.form, "segment_number": segment.number,
                                      "algorithm_type": algorithm_types.get(segment.number)}}
            store.segments.commit(meta, record, first, full_box(meta.shape), segment.mask,
                                  interaction, {}, Marks())
            created.append(store.segments.get(meta, record.id))
    return created


def _declared_algorithm_types(content: bytes) -> dict[int, str]:
    ds = pydicom.dcmread(io.BytesIO(content), stop_before_pixels=True)
    return {int(item.SegmentNumber): str(item.get("SegmentAlgorithmType", ""))
            for item in ds.get("SegmentSequence", [])}


# -- push back (a job) -----------------------------------------------------------------------
PUSH_KIND = "pacs-push"


class PushParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    form: Literal["binary", "labelmap"] = "binary"
    pacs: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                      description="configured archive to store into")
    revisions: dict[str, int] = Field(min_length=1, description="segment id -> revision")
    attempts: int = Field(4, ge=1, le=10, description="tries when the archive is unavailable")
    backoff_s: float = Field(1.0, ge=0, le=60, description="wait before the 2nd try; doubles")


def submit_push(store: Store, kind: JobKind, config: PacsConfig, meta: SessionMeta,
                tenant: str, form: SegForm, pacs: str | None, attempts: int = 4,
                backoff_s: float = 1.0) -> JobRecord:
    """Queue a push of the segments' current heads as one SEG to `pacs` (default: the archive
    the image came from). The revisions are fixed now: a retry pushes the same object."""
    source = DicomSourceStore(store.sessions).source(meta)
    target = pacs or source.pacs
    if target is None:
        raise InvalidPrompt("the session's image did not come from a PACS: name one to push to")
    config.get(target, tenant)
    revisions = {str(s.id): s.head for s in store.segments.list(meta)}
    if not revisions:
        raise InvalidPrompt("the session has no segments to push")
    params = PushParams(form=form, pacs=target, revisions=revisions, attempts=attempts,
                        backoff_s=backoff_s)
    return queue.submit(store, kind, tenant, meta.id, None, params.model_dump(), None)


def push_job_kind(models: ModelLoader | None = None,
                  config: Any = None) -> JobKind:
    """The "pacs-push" kind. The worker reads the archives from its own environment
    (MEDSEG_PACS / MEDSEG_PACS_FILE, as the API): credentials never travel in a job."""

    def run(ctx, params: PushParams) -> dict[str, Any]:
        pacs_config: PacsConfig = config() if callable(config) else PacsSettings().config()
        endpoint = pacs_config.get(params.pacs, ctx.record.tenant)
        client = PacsClient(endpoint)
        meta = ctx.meta
        ctx.progress(0, 3, "building the DICOM SEG")
        built = build_session_seg(store=ctx.store, meta=meta, form=params.form,
                                  revisions={int(k): v for k, v in params.revisions.items()},
                                  models=models)
        study = built.source.study_instance_uid
        series = built.identity.series_instance_uid
        uid = built.identity.sop_instance_uid
        timings = {"build_s": round(built.seconds, 4)}
        ctx.progress(1, 3, "checking the archive")
        start = time.perf_counter()
        attempt = 0
        stored: list[str] = []
        already: list[str] = []
        while True:
            attempt += 1
            try:
                if client.instance_exists(study, series, uid):
                    already.append(uid)
                else:
                    ctx.progress(2, 3, f"storing (attempt {attempt} of {params.attempts})")
                    client.store(built.content, study)
                    if not client.instance_exists(study, series, uid):
                        raise PacsError(f"PACS {params.pacs!r} accepted the segmentation but "
                                        "does not list it")
                    stored.append(uid)
                break
            except PacsUnavailable as exc:
                if attempt >= params.attempts:
                    raise PacsUnavailable(f"{exc.message} (gave up after {attempt} "
                                          "attempts)") from None
                delay = params.backoff_s * 2 ** (attempt - 1)
                ctx.progress(1, 3, f"archive unavailable; retry {attempt + 1} of "
                                   f"{params.attempts} in {delay:g} s")
                _wait(ctx, delay)
        timings["push_s"] = round(time.perf_counter() - start, 4)
        DicomSourceStore(ctx.store.sessions).add_export(meta, export_entry(built, params.pacs))
        ctx.progress(3, 3, "stored" if stored else "already stored")
        return {"pacs": params.pacs, "form": params.form, "stored": stored,
                "already_stored": already, "sop_instance_uid": uid,
                "series_instance_uid": series, "study_instance_uid": study,
                "revisions": params.revisions, "attempts": attempt, "timings": timings,
                "bytes": len(built.content)}

    return JobKind(name=PUSH_KIND, description="Store the session's segments as one DICOM SEG "
                   "in a PACS (STOW-RS); idempotent, retried with back-off.",
                   params_type=PushParams, run=run, needs_segment=False, timeout_s=900,
                   priority="batch")  # nobody waits at a screen for it (jobs/schedule.py)


def _wait(ctx, seconds: float) -> None:
    """Back-off that still answers a cancel within a tenth of a second."""
    deadline = time.monotonic() + seconds
    while True:
        ctx.check_cancelled()
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.1))
