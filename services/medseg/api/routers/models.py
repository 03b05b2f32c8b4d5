"""/v1/models: the trained models this server can run."""

from __future__ import annotations

from fastapi import APIRouter

from medseg.api.deps import TenantDep
from medseg.api.schemas import ModelInfo, ModelList
from medseg.models.registry import LoadedModel, default_registry

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=ModelList,
            summary="Models with their version, input size, validation metrics and provider")
def list_models(tenant: TenantDep) -> ModelList:
    registry = default_registry()
    return ModelList(models=[ModelInfo(
        name=c.name, version=c.version, task=c.task, dims=c.dims, encoding=c.encoding,
        input_size=list(c.input_size), metrics=c.metrics, provider=LoadedModel(c).provider)
        for c in registry.cards], problems=registry.problems)
