"""Jobs on a segment (propagation, BIFSeg fine-tuning) and its locked slices."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, status

from medseg.api.deps import (
    IfMatchDep,
    PluginsDep,
    SessionDep,
    SettingsDep,
    StoreDep,
    TenantDep,
)
from medseg.api.presenters import job_with_queue
from medseg.api.schemas import (
    FinetuneRequest,
    JobPublic,
    LocksPublic,
    PropagateRequest,
    error_responses,
)
from medseg.engine.volume import MAX_INDEX
from medseg.usecases import finetune, propagation

router = APIRouter(prefix="/v1/sessions/{session_id}/segments/{segment_id}",
                   tags=["propagation"])

_ERRORS = error_responses(401, 404, 409, 422, 423)
_JOB_ERRORS = {**_ERRORS, **error_responses(429, 507)}  # a tenant's job quota; a full store
AxisPath = Annotated[Literal["z", "y", "x"], Path(description="axis whose slice is addressed")]
SliceIndex = Annotated[int, Path(ge=0, le=MAX_INDEX)]


@router.post("/propagate", status_code=status.HTTP_202_ACCEPTED, response_model=JobPublic,
             responses=_JOB_ERRORS, summary="Propagate one slice's mask along an axis (a job)")
def propagate(store: StoreDep, plugins: PluginsDep, tenant: TenantDep, meta: SessionDep,
              segment_id: int, body: PropagateRequest, if_match: IfMatchDep) -> JobPublic:
    base = body.base_revision if body.base_revision is not None else if_match
    record = propagation.submit(store, plugins, meta, tenant, segment_id, body.axis,
                                body.start_index, body.method, body.params, base)
    return job_with_queue(store, record)


@router.post("/finetune", status_code=status.HTTP_202_ACCEPTED, response_model=JobPublic,
             tags=["bifseg"],
             responses=_JOB_ERRORS,
             summary="Fine-tune BIFSeg to this image, unsupervised or with scribbles (a job)")
def finetune_segment(store: StoreDep, plugins: PluginsDep, settings: SettingsDep,
                     tenant: TenantDep, meta: SessionDep, segment_id: int,
                     body: FinetuneRequest, if_match: IfMatchDep) -> JobPublic:
    base = body.base_revision if body.base_revision is not None else if_match
    record = finetune.submit(store, plugins, meta, tenant, segment_id, body.mode,
                             [s.model_dump() for s in body.scribbles], body.params, base,
                             settings.max_marks)
    return job_with_queue(store, record)


@router.get("/locks", response_model=LocksPublic, responses=_ERRORS,
            summary="Locked slices (propagation never overwrites them)")
def get_locks(store: StoreDep, meta: SessionDep, segment_id: int) -> LocksPublic:
    segment = store.segments.get(meta, segment_id)
    return LocksPublic(segment_id=segment_id, locked_slices=segment.locks)


@router.put("/locks/{axis}/{index}", response_model=LocksPublic, responses=_ERRORS,
            summary="Lock one slice")
def lock(store: StoreDep, meta: SessionDep, segment_id: int, axis: AxisPath,
         index: SliceIndex) -> LocksPublic:
    segment = propagation.set_lock(store, meta, segment_id, axis, index, True)
    return LocksPublic(segment_id=segment_id, locked_slices=segment.locks)


@router.delete("/locks/{axis}/{index}", response_model=LocksPublic, responses=_ERRORS,
               summary="Unlock one slice")
def unlock(store: StoreDep, meta: SessionDep, segment_id: int, axis: AxisPath,
           index: SliceIndex) -> LocksPublic:
    segment = propagation.set_lock(store, meta, segment_id, axis, index, False)
    return LocksPublic(segment_id=segment_id, locked_slices=segment.locks)
