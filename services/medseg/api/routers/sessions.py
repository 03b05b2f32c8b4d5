"""/v1/sessions: upload an image, inspect, export, delete."""

from __future__ import annotations

from typing import Annotated, Literal

import structlog
from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from starlette.concurrency import run_in_threadpool

from medseg.api.deps import PluginsDep, SessionDep, SettingsDep, StoreDep, TenantDep
from medseg.api.limits import image_limits
from medseg.api.presenters import file_response, session_public
from medseg.api.schemas import SessionPublic, error_responses
from medseg.errors import ImageTooLarge, RevisionNotFound, SegmentNotFound, SessionNotFound
from medseg.store import archive
from medseg.usecases import pacs
from medseg.usecases import sessions as usecase

log = structlog.get_logger("medseg.api")

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])

_ERRORS = error_responses(400, 401, 404, 413, 415, 422)
# a tenant's session quota (429), its storage quota or a full store (507)
_CREATE_ERRORS = {**_ERRORS, **error_responses(429, 507)}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SessionPublic,
             responses=_CREATE_ERRORS, summary="Upload an image and open a session")
async def create_session(
    store: StoreDep, settings: SettingsDep, tenant: TenantDep,
    files: Annotated[list[UploadFile], File(
        description="one NIfTI/NRRD/PNG/JPEG file, one zip of a DICOM series, or the DICOM "
                    "files of one series")],
    name: Annotated[str | None, Form(max_length=200)] = None,
) -> SessionPublic:
    uploads, total = [], 0
    for upload in files:
        content = await upload.read()
        total += len(content)
        if total > settings.max_upload_bytes:
            raise ImageTooLarge(f"upload exceeds the limit of {settings.max_upload_bytes} bytes")
        uploads.append((upload.filename or "upload", content))
    meta = await run_in_threadpool(usecase.create_session, store, uploads, tenant,
                                   image_limits(settings), name)
    return session_public(store, meta)


@router.get("", response_model=list[SessionPublic], responses=error_responses(401),
            summary="The caller's live sessions")
def list_sessions(store: StoreDep, tenant: TenantDep) -> list[SessionPublic]:
    listed = []
    for meta in store.sessions.list(tenant):
        try:
            listed.append(session_public(store, meta))
        except (SessionNotFound, SegmentNotFound, RevisionNotFound) as err:
            # expired between the listing and its read, or a key Redis lost (eviction): one
            # such session must not hide the caller's others behind a 404
            log.warning("session_not_listed", session_id=meta.id, error=str(err))
    return listed


@router.get("/{session_id}", response_model=SessionPublic, responses=_ERRORS)
def get_session(store: StoreDep, meta: SessionDep) -> SessionPublic:
    return session_public(store, meta)


@router.delete("/{session_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_ERRORS,
               summary="Delete the session and every key it has in Redis")
def delete_session(store: StoreDep, settings: SettingsDep, meta: SessionDep) -> Response:
    store.sessions.delete(meta.id, meta.tenant)
    archive.forget(settings.archive_dir, meta.tenant, meta.id)  # deleted means gone
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{session_id}/export", responses={**_ERRORS, 200: {"content": {
    "application/gzip": {}, "application/octet-stream": {}, "image/png": {},
    "application/zip": {}, "application/dicom": {}}}},
    response_class=Response, summary="Label map of all segments (or per-segment masks, zipped; "
                                     "or a DICOM SEG of a session opened from a PACS or "
                                     "uploaded as a DICOM series)")
def export(store: StoreDep, plugins: PluginsDep, meta: SessionDep,
           format: Annotated[Literal["nifti", "nrrd", "png", "dicom-seg", "dicom-seg-labelmap"],
                             Query(description="dicom-seg: binary SEG, dicom-seg-labelmap: "
                                   "label-map SEG (docs/pacs.md)")] = "nifti",
           per_segment: Annotated[bool, Query(description="one binary mask per segment, "
                                              "overlaps kept, in a zip")] = False) -> Response:
    if format in pacs.SEG_FORMATS:  # every segment, overlaps kept in the binary form
        return file_response(pacs.export_seg(store, meta, format, plugins.models))
    if per_segment:
        return file_response(usecase.export_segment_masks(store, meta, format))
    return file_response(usecase.export_label_map(store, meta, format))
