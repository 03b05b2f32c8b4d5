"""/v1/sessions/{id}/segments: segments, interactions, undo/redo, history, mask, delta."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Body, Path, Query, Response, status

from medseg.api.deps import (
    ComputeDep,
    IfMatchDep,
    PluginsDep,
    SessionDep,
    SettingsDep,
    StoreDep,
    TenantDep,
)
from medseg.api.presenters import (
    change_result,
    file_response,
    job_public,
    revision_public,
    segment_public,
)
from medseg.api.schemas import (
    MAX_REVISION,
    BoxSpec,
    ChangeResult,
    Delta,
    ErrorBody,
    HintPublic,
    History,
    Interaction,
    MaskRle,
    SegmentCreate,
    SegmentHints,
    SegmentPublic,
    SegmentUpdate,
    error_responses,
)
from medseg.api.translate import to_prompt
from medseg.engine.hints import MAX_HINTS
from medseg.store.chunks import full_box
from medseg.usecases import hints as hints_usecase
from medseg.usecases import history as history_usecase
from medseg.usecases import interactions, propagation, sessions
from medseg.usecases.metrics import observe_stages
from medseg_protocol import codec

router = APIRouter(prefix="/v1/sessions/{session_id}/segments", tags=["segments"])

_ERRORS = error_responses(401, 404, 409, 422, 423)
_CHANGE_ERRORS = error_responses(401, 404, 409, 422, 423, 507)  # 507: Redis full, nothing applied
_COMPUTE_ERRORS = error_responses(401, 404, 409, 422, 423, 504, 507)
_HINT_ERRORS = error_responses(401, 404, 422, 504)


def _etag(response: Response, revision: int) -> None:
    response.headers["ETag"] = f'"{revision}"'


def _change_answer(result: ChangeResult, revision: int) -> Response:
    """`result` as the JSON body, serialized once by pydantic, with its ETag. Returned as a
    ChangeResult, FastAPI would dump it, validate the dump against `response_model` again,
    serialize that and json.dumps it: ~0.4 ms of a 2D click (issue 13 item 3). The routes'
    `response_model` still documents the body."""
    response = Response(result.model_dump_json(), media_type="application/json")
    _etag(response, revision)
    return response


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SegmentPublic,
             responses=_CHANGE_ERRORS,
             summary="Add a named segment (empty mask, revision 1 of its own)")
def create_segment(store: StoreDep, meta: SessionDep, response: Response,
                   body: Annotated[SegmentCreate | None, Body()] = None) -> SegmentPublic:
    body = body or SegmentCreate()
    with store.sessions.locked(meta.id):  # label values stay unique under concurrent creates
        segment = store.segments.create(meta, body.name, body.label, body.color)
    _etag(response, segment.head)
    return segment_public(store, meta, segment)


@router.get("", response_model=list[SegmentPublic], responses=_ERRORS)
def list_segments(store: StoreDep, meta: SessionDep) -> list[SegmentPublic]:
    return [segment_public(store, meta, s) for s in store.segments.list(meta)]


@router.get("/{segment_id}", response_model=SegmentPublic, responses=_ERRORS)
def get_segment(store: StoreDep, meta: SessionDep, segment_id: int,
                response: Response) -> SegmentPublic:
    segment, head = store.segments.head(meta, segment_id)
    _etag(response, segment.head)
    return segment_public(store, meta, segment, head)


@router.patch("/{segment_id}", response_model=SegmentPublic, responses=_CHANGE_ERRORS,
              summary="Rename, recolour, relabel or mark reviewed (does not change the mask)")
def update_segment(store: StoreDep, meta: SessionDep, segment_id: int,
                   body: SegmentUpdate) -> SegmentPublic:
    with store.sessions.locked(meta.id):
        segment = store.segments.update(meta, segment_id, **body.model_dump())
    return segment_public(store, meta, segment)


@router.delete("/{segment_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_ERRORS)
def delete_segment(store: StoreDep, meta: SessionDep, segment_id: int) -> Response:
    with store.sessions.locked(meta.id):
        store.segments.delete(meta, segment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{segment_id}/interactions", response_model=ChangeResult,
             responses=_COMPUTE_ERRORS,
             summary="Click, scribble, box or interior margin points: answers the new "
                     "revision and the mask delta")
def interact(compute: ComputeDep, plugins: PluginsDep, settings: SettingsDep, tenant: TenantDep,
             meta: SessionDep, segment_id: int, interaction: Interaction, if_match: IfMatchDep,
             ) -> Response:
    base = interaction.base_revision if interaction.base_revision is not None else if_match
    prompt = to_prompt(interaction, meta.shape, settings.max_marks)
    after = None if interaction.propagate is None else propagation.PropagateAfter(
        interaction.propagate.method, interaction.propagate.params)
    propagation.check_interaction(plugins, meta, prompt, interaction.method, interaction.params,
                                  after)  # a bad request is refused here, before any compute
    # computed in a child process under the session lock, within the request deadline
    outcome = compute.run(meta, segment_id, propagation.interact_then_propagate, meta, tenant,
                          segment_id, prompt, interaction.method, interaction.params, base,
                          settings.max_marks, after)
    observe_stages("interaction", outcome.change.timings)
    result = change_result(outcome.change)
    if outcome.job is not None:
        result.job = job_public(outcome.job)
    if outcome.job_error is not None:
        error = outcome.job_error
        result.job_error = ErrorBody(error=error.code, message=error.message)
    return _change_answer(result, outcome.change.current.revision)


@router.delete("/{segment_id}/interactions/{revision}", response_model=ChangeResult,
               responses=_COMPUTE_ERRORS,
               summary="Remove one interaction from the history: a new head revision whose "
                       "mask is the history replayed without it (one undo brings it back)")
def remove_interaction(compute: ComputeDep, meta: SessionDep, segment_id: int,
                       revision: Annotated[int, Path(ge=1, le=MAX_REVISION, description=(
                           "the revision the interaction made (GET .../history)"))],
                       if_match: IfMatchDep) -> Response:
    change = compute.run(meta, segment_id, history_usecase.remove_interaction, meta,
                         segment_id, revision, if_match)
    observe_stages("remove", change.timings)
    return _change_answer(change_result(change), change.current.revision)


@router.post("/{segment_id}/undo", response_model=ChangeResult, responses=_CHANGE_ERRORS)
def undo(store: StoreDep, meta: SessionDep, segment_id: int, if_match: IfMatchDep,
         ) -> Response:
    change = interactions.undo(store, meta, segment_id, if_match)
    return _change_answer(change_result(change), change.current.revision)


@router.post("/{segment_id}/redo", response_model=ChangeResult, responses=_CHANGE_ERRORS)
def redo(store: StoreDep, meta: SessionDep, segment_id: int, if_match: IfMatchDep,
         ) -> Response:
    change = interactions.redo(store, meta, segment_id, if_match)
    return _change_answer(change_result(change), change.current.revision)


@router.get("/{segment_id}/history", response_model=History, responses=_ERRORS,
            summary="Every revision with the interaction that made it (an audit trail)")
def history(store: StoreDep, meta: SessionDep, segment_id: int) -> History:
    segment = store.segments.get(meta, segment_id)
    records = store.segments.history(meta, segment_id)
    return History(segment_id=segment_id, head=segment.head,
                   revisions=[revision_public(r, segment) for r in records])


@router.get("/{segment_id}/mask", responses={**_ERRORS, 200: {"content": {
    "application/json": {"schema": MaskRle.model_json_schema()}, "application/gzip": {},
    "application/octet-stream": {}, "image/png": {}}}}, response_model=None,
    summary="Full mask of a revision (head by default): rle/1 JSON or a file")
def get_mask(store: StoreDep, meta: SessionDep, segment_id: int,
             revision: Annotated[int | None, Query(ge=0, le=MAX_REVISION, description=(
                 "revision to read (default: the head); one the segment never had -> 404"))
             ] = None,
             format: Annotated[Literal["rle", "nifti", "nrrd", "png"], Query()] = "rle"):
    segment = store.segments.get(meta, segment_id)
    record = store.segments.revision(meta, segment_id,
                                    segment.head if revision is None else revision)
    if format != "rle":
        return file_response(sessions.export_mask(store, meta, record, format,
                                                  f"segment-{segment_id}-rev{record.revision}"))
    mask = store.segments.read_mask(meta, record, full_box(meta.shape))
    return MaskRle(**codec.encode_mask(np.asarray(mask)), revision=record.revision)


@router.get("/{segment_id}/delta", response_model=Delta, responses=_ERRORS,
            summary="Change between two revisions of the segment (to defaults to head)")
def get_delta(store: StoreDep, meta: SessionDep, segment_id: int,
              from_revision: Annotated[int, Query(alias="from", ge=0, le=MAX_REVISION)],
              to_revision: Annotated[int | None, Query(alias="to", ge=0, le=MAX_REVISION)] = None,
              ) -> Delta:
    segment = store.segments.get(meta, segment_id)
    old = store.segments.revision(meta, segment_id, from_revision)
    new = store.segments.revision(meta, segment_id,
                                 segment.head if to_revision is None else to_revision)
    return Delta(**store.segments.delta(meta, old, new))


@router.get("/{segment_id}/hints", response_model=SegmentHints, responses=_HINT_ERRORS,
            summary="The regions of the head revision most likely wrong, ranked (centre, box, "
                    "estimated error size): where a reader should look first")
def get_hints(compute: ComputeDep, meta: SessionDep, segment_id: int,
              k: Annotated[int, Query(ge=1, le=MAX_HINTS, description=(
                  "at most this many hints (fewer when the mask looks consistent)"))] = 3,
              ) -> SegmentHints:
    # computed in a compute child like an interaction (a 3D graph cut must not hold the API
    # process), within the request deadline; it reads the head and writes nothing
    found = compute.run(meta, segment_id, hints_usecase.segment_hints, meta, segment_id, k)
    observe_stages("hints", {"total": found.seconds})
    return SegmentHints(
        segment_id=found.segment_id, revision=found.revision, sources=found.sources,
        ms=round(found.seconds * 1000.0, 2),
        hints=[HintPublic(rank=h.rank, kind=h.kind, centre=list(h.centre),
                          box=BoxSpec(lo=list(h.lo), hi=list(h.hi)), voxels=h.voxels,
                          volume_ml=h.ml, likelihood=h.likelihood, score=h.score,
                          sources=h.sources) for h in found.hints])
