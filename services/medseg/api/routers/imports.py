"""Importing an existing mask into segments (issue 14): a mask file (NIfTI / NRRD / PNG on the
session's grid; a label map becomes several segments) or a copy of another segment. DICOM SEG
import is POST /v1/sessions/{id}/import (routers/pacs.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, File, Query, Response, UploadFile, status
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from medseg.api.deps import SessionDep, SettingsDep, StoreDep
from medseg.api.limits import image_limits
from medseg.api.presenters import segment_public
from medseg.api.schemas import MAX_REVISION, SegmentPublic, Strict, error_responses
from medseg.errors import ImageTooLarge
from medseg.usecases import import_mask

router = APIRouter(prefix="/v1/sessions/{session_id}/segments", tags=["segments"])

_ERRORS = error_responses(401, 404, 413, 415, 422, 423, 507)


class SegmentCopy(Strict):
    revision: int | None = Field(None, ge=0, le=MAX_REVISION,
                                 description="the source's revision to copy (default: its head)")
    name: str | None = Field(None, max_length=200)


@router.post("/import", status_code=status.HTTP_201_CREATED, response_model=list[SegmentPublic],
             responses=_ERRORS,
             summary="Import a mask file (NIfTI, NRRD or PNG on the image's grid) as new "
                     "segments: one for a binary mask, one per label value for a label map")
async def import_segments(
        store: StoreDep, settings: SettingsDep, meta: SessionDep,
        file: Annotated[UploadFile, File(description="one mask file on the session image's "
                                                     "voxel grid")],
        name: Annotated[str | None, Query(max_length=200, description=(
            "the segment's name (a label map's segments: '<name> <value>')"))] = None,
        labels: Annotated[list[Annotated[int, Field(ge=1, le=2**31 - 1)]] | None, Query(
            max_length=import_mask.MAX_IMPORTED_SEGMENTS, description=(
                "import only these label values (default: every non-zero value)"))] = None,
        binary: Annotated[bool, Query(description=(
            "every voxel > 0 is foreground, one segment (e.g. a 0/255 PNG or a float "
            "mask)"))] = False) -> list[SegmentPublic]:
    content = await file.read(settings.max_upload_bytes + 1)
    if len(content) > settings.max_upload_bytes:
        raise ImageTooLarge(f"upload exceeds the limit of {settings.max_upload_bytes} bytes")
    created = await run_in_threadpool(import_mask.import_mask, store, meta, content,
                                      image_limits(settings),
                                      name, labels, binary)
    return [segment_public(store, meta, s) for s in created]


@router.post("/{segment_id}/copy", status_code=status.HTTP_201_CREATED,
             response_model=SegmentPublic, responses=_ERRORS,
             summary="A new segment whose first revision is a copy of this segment's mask")
def copy_segment(store: StoreDep, meta: SessionDep, segment_id: int, response: Response,
                 body: Annotated[SegmentCopy | None, Body()] = None) -> SegmentPublic:
    body = body or SegmentCopy()
    segment = import_mask.copy_segment(store, meta, segment_id, body.revision, body.name)
    response.headers["ETag"] = f'"{segment.head}"'
    return segment_public(store, meta, segment)
