"""/v1/models: the trained models this server can run."""

from __future__ import annotations

from fastapi import APIRouter

from medseg.api.deps import PluginsDep, TenantDep
from medseg.api.schemas import ModelInfo, ModelList, error_responses

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=ModelList, responses=error_responses(401),
            summary="Models with their version, input size, validation metrics and provider")
def list_models(plugins: PluginsDep, tenant: TenantDep) -> ModelList:
    loader = plugins.models
    return ModelList(models=[ModelInfo(
        name=c.name, version=c.version, task=c.task, dims=c.dims, encoding=c.encoding,
        input_size=list(c.input_size), metrics=c.metrics, provider=loader.provider(c),
        organs=list(c.organs))
        for c in loader.cards], problems=loader.problems)
