"""Worker settings from the environment (the same variables as the API's, see docs/api.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

QUEUE_NAME = "medseg"


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDSEG_", extra="ignore")

    redis_url: str = Field("redis://127.0.0.1:6379/0",
                           validation_alias=AliasChoices("MEDSEG_REDIS_URL", "REDIS_URL"))
    session_ttl_s: int = 2 * 3600
    cache_mb: int = 512
    job_heartbeat_s: float = 10.0  # a running job not heard from for this long is failed
    # comma-separated modules whose register(plugins) adds methods, predictors or job kinds
    # (the API reads the same variable, so both processes serve the same set)
    plugins: str = ""
    # the archive sweeper (store/archive.py): sessions expiring within archive_lead_s are
    # archived into archive_dir (unset: no sweeper), a pass every archive_sweep_s
    archive_dir: Path | None = None
    archive_lead_s: float = Field(900.0, gt=0)
    archive_sweep_s: float = Field(60.0, gt=0)
    archive_retention_days: float = Field(30.0, gt=0)
