"""/v1/sessions/{id}/slices: raw image planes for viewers."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Response

from medseg.api.deps import SessionDep, StoreDep
from medseg.api.presenters import array_response
from medseg.api.schemas import error_responses
from medseg.engine.prompts import AXES
from medseg.engine.volume import MAX_INDEX
from medseg.usecases import sessions

router = APIRouter(prefix="/v1/sessions/{session_id}/slices", tags=["sessions"])

_ERRORS = error_responses(401, 404, 422)


@router.get(
    "/{axis}/{index}", response_class=Response,
    responses={**_ERRORS, 200: {
        "content": {"application/octet-stream": {}},
        "description": "The plane's voxels, C order, little-endian. Headers: `X-Shape` "
                       "(`rows,cols`: `Y,X` for axis z, `Z,X` for y, `Z,Y` for x), `X-Dtype` "
                       "(`int16`, `uint8`, `float32`, ...). Compressed with gzip or zstd when the "
                       "client's Accept-Encoding allows."}},
    summary="One image plane as raw little-endian voxels (for viewers)")
def get_slice(store: StoreDep, meta: SessionDep,
              axis: Annotated[Literal["z", "y", "x"], Path(description="axis held fixed")],
              index: Annotated[int, Path(ge=0, le=MAX_INDEX)],
              accept_encoding: Annotated[str | None, Header()] = None) -> Response:
    plane = sessions.read_slice(store, meta, AXES[axis], index)
    return array_response(plane, accept_encoding or "")
