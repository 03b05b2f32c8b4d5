"""Built-in diagnostic job kind: `noop` does nothing and succeeds (measures queue overhead)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from medseg.jobs.kinds import JobKind


class NoopParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _noop(ctx, params: NoopParams) -> dict:
    ctx.progress(1, 1, "done")
    return {}


NOOP = JobKind(name="noop", description="Does nothing and succeeds: measures the queue.",
               params_type=NoopParams, run=_noop, needs_segment=False)
