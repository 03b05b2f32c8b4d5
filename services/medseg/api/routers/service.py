"""Health, readiness, metrics and capabilities."""

from __future__ import annotations

import dataclasses

import redis
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from medseg.api.deps import PluginsDep, SettingsDep, StoreDep, TenantDep
from medseg.api.schemas import Capabilities, JobKindInfo, MethodInfo, error_responses
from medseg.engine.propagation import PropagationParams
from medseg.engine.volume import MAX_INDEX
from medseg.jobs import queue, schedule
from medseg.usecases.metrics import JOB_WORKERS, JOBS_QUEUED
from medseg.usecases.sessions import EXPORT_FORMATS
from medseg_protocol import API_VERSION, ENCODING_DELTA, ENCODING_MASK

router = APIRouter(tags=["service"])

INPUT_FORMATS = ["nifti", "nrrd", "dicom-series", "dicom-zip", "png", "jpeg"]


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: Redis is reachable (also counts live job workers)",
            responses={503: {"description": "Redis unreachable"}})
def readyz(store: StoreDep, response: Response) -> dict[str, str]:
    try:
        store.sessions.redis.ping()
    except redis.RedisError as exc:  # any failure to reach Redis means not ready
        response.status_code = 503
        return {"status": "unavailable", "redis": type(exc).__name__}
    return {"status": "ready", "redis": "ok", "job_workers": str(queue.worker_count(store))}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(store: StoreDep) -> Response:
    try:  # the queues as Redis has them now (what the worker autoscaler follows)
        for priority, depth in schedule.queue_depths(store.jobs.redis).items():
            JOBS_QUEUED.labels(priority=priority).set(depth)
        JOB_WORKERS.set(queue.worker_count(store))
    except redis.RedisError:
        pass  # the process's own metrics still answer; /readyz says Redis is away
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/capabilities", response_model=Capabilities, responses=error_responses(401),
            summary="What this server offers: interactions, methods, encodings, limits")
def capabilities(settings: SettingsDep, plugins: PluginsDep, tenant: TenantDep) -> Capabilities:
    methods = [MethodInfo(name=m.name, description=m.description,
                          interaction_types=list(m.interaction_types), dims=list(m.dims),
                          params=m.defaults()) for m in plugins.methods]
    return Capabilities(
        api_version=API_VERSION,
        interaction_types=sorted({t for m in methods for t in m.interaction_types}),
        methods=methods, default_method=plugins.methods.get().name,
        delta_encodings=[ENCODING_DELTA], mask_encodings=[ENCODING_MASK],
        input_formats=INPUT_FORMATS, export_formats=sorted(EXPORT_FORMATS),
        limits={"max_upload_bytes": settings.max_upload_bytes, "max_voxels": settings.max_voxels,
                "session_ttl_s": settings.session_ttl_s, "max_marks": settings.max_marks,
                "max_request_bytes": settings.max_request_bytes, "max_index": MAX_INDEX},
        propagation_methods=[MethodInfo(
            name=p.name, description=p.description, interaction_types=[], dims=["2d"],
            params={**dataclasses.asdict(PropagationParams()), **p.defaults()})
            for p in plugins.predictors],
        job_kinds=[JobKindInfo(name=k.name, description=k.description,
                               params=k.params_type.model_json_schema())
                   for k in plugins.job_kinds],
        auth="api-key" if settings.key_hashes else "none (dev mode)",
    )
