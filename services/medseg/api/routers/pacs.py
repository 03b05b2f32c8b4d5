"""PACS integration (docs/pacs.md): the tenant's archives, a session from DICOMweb, DICOM SEG
import, push-back as a job, the session's DICOM source and the SEG made from it. The DICOM
SEG export itself is a format of GET /v1/sessions/{id}/export."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Query, UploadFile, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from medseg.api.deps import PluginsDep, SessionDep, SettingsDep, StoreDep, TenantDep
from medseg.api.limits import image_limits
from medseg.api.presenters import job_public, segment_public, session_public
from medseg.api.schemas import JobPublic, SegmentPublic, SessionPublic, error_responses
from medseg.errors import ImageTooLarge
from medseg.pacs.config import NAME_PATTERN
from medseg.store.dicom_source import DicomSourceStore
from medseg.usecases import pacs as usecase

router = APIRouter(tags=["pacs"])

_ERRORS = error_responses(400, 401, 404, 413, 415, 422, 502)
_WRITE_ERRORS = error_responses(400, 401, 404, 413, 415, 422, 502, 507)  # 507: Redis full
_JOB_ERRORS = error_responses(400, 401, 404, 413, 415, 422, 429, 502, 507)  # 429: job quota
UID = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9]+(\.[0-9]+)*$",
                           description="a DICOM UID (digits and dots, at most 64 characters)")]


class PacsInfo(BaseModel):
    name: str
    max_instances: int = Field(description="a larger series is refused before it is pulled")


class FromPacs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pacs: str = Field(pattern=NAME_PATTERN, description="a configured archive (GET /v1/pacs)")
    study_uid: UID
    series_uid: UID
    name: str | None = Field(None, max_length=200)
    reuse: bool = Field(True, description="copy the image of a live session of the same "
                        "series (same archive and instances) instead of pulling it again")


class PushRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    form: Literal["binary", "labelmap"] = Field("binary", description=(
        "binary SEG (one bit plane per segment) or label-map SEG (Supplement 243)"))
    pacs: str | None = Field(None, pattern=NAME_PATTERN,
                             description="archive to store into (default: the image's own)")
    attempts: int = Field(4, ge=1, le=10, description="tries while the archive is unavailable")
    backoff_s: float = Field(1.0, ge=0, le=60,
                             description="wait before the second try; doubles after each")


class DicomInfo(BaseModel):
    source: dict[str, Any] = Field(description="archive, study / series / frame-of-reference "
                                   "UIDs, and the instances' SOP instance UIDs in slice order")
    exports: list[dict[str, Any]] = Field(description=(
        "each DICOM SEG made from the session: its UIDs, form, the segment revisions it "
        "holds, when, and the archive it was pushed to (if any)"))


@router.get("/v1/pacs", response_model=list[PacsInfo], responses=error_responses(401),
            summary="The PACS archives configured for the caller's tenant (names only)")
def list_pacs(settings: SettingsDep, tenant: TenantDep) -> list[PacsInfo]:
    return [PacsInfo(name=e.name, max_instances=e.max_instances)
            for e in settings.pacs_config.for_tenant(tenant)]


@router.post("/v1/sessions/from-pacs", status_code=status.HTTP_201_CREATED,
             response_model=SessionPublic, responses=error_responses(
                 401, 404, 413, 415, 422, 429, 502, 507),
             summary="Open a session on a series of a configured PACS (QIDO-RS + WADO-RS)")
async def session_from_pacs(store: StoreDep, settings: SettingsDep, tenant: TenantDep,
                            body: FromPacs) -> SessionPublic:
    limits = image_limits(settings)
    pulled = await run_in_threadpool(
        usecase.create_session_from_pacs, store, settings.pacs_config, tenant, body.pacs,
        body.study_uid, body.series_uid, limits, body.name, body.reuse)
    return session_public(store, pulled.meta)


@router.post("/v1/sessions/{session_id}/import", status_code=status.HTTP_201_CREATED,
             response_model=list[SegmentPublic], responses=_WRITE_ERRORS,
             summary="Import a DICOM SEG (binary or label map) of the session's series: each "
                     "of its segments becomes a segment")
async def import_segments(store: StoreDep, settings: SettingsDep, meta: SessionDep,
                          file: Annotated[UploadFile, File(description="one DICOM SEG file")],
                          format: Annotated[Literal["dicom-seg"], Query()] = "dicom-seg",
                          ) -> list[SegmentPublic]:
    content = await file.read(settings.max_upload_bytes + 1)
    if len(content) > settings.max_upload_bytes:
        raise ImageTooLarge(f"upload exceeds the limit of {settings.max_upload_bytes} bytes")
    created = await run_in_threadpool(usecase.import_seg, store, meta, content,
                                      settings.max_uncompressed_bytes)
    return [segment_public(store, meta, s) for s in created]


@router.post("/v1/sessions/{session_id}/push", status_code=status.HTTP_202_ACCEPTED,
             response_model=JobPublic, responses=_JOB_ERRORS,
             summary="Store the segments' current revisions as one DICOM SEG in a PACS "
                     "(STOW-RS, a job; idempotent)")
def push(store: StoreDep, settings: SettingsDep, plugins: PluginsDep, tenant: TenantDep,
         meta: SessionDep, body: PushRequest) -> JobPublic:
    kind = plugins.job_kinds.get(usecase.PUSH_KIND)
    record = usecase.submit_push(store, kind, settings.pacs_config, meta, tenant, body.form,
                                 body.pacs, body.attempts, body.backoff_s)
    return job_public(record)


@router.get("/v1/sessions/{session_id}/dicom", response_model=DicomInfo, responses=_ERRORS,
            summary="The session's DICOM source and every DICOM SEG made from it")
def dicom_info(store: StoreDep, meta: SessionDep) -> DicomInfo:
    dicom = DicomSourceStore(store.sessions)
    return DicomInfo(source=dicom.source(meta).model_dump(exclude={"digest"}),
                     exports=dicom.exports(meta))
