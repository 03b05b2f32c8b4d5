"""A test job kind (loaded by test workers through MEDSEG_JOB_PLUGINS): `paint` fills one
z-slice of the segment per step, sleeping between steps, then commits ONE revision."""

from __future__ import annotations

import time

import numpy as np
from medseg.engine.prompts import Box
from medseg.jobs.context import CommitPlan
from medseg.jobs.registry import JobKind, register
from pydantic import BaseModel


class PaintParams(BaseModel):
    steps: int = 3
    step_s: float = 0.05
    fail: bool = False


def paint(ctx, params: PaintParams) -> dict:
    meta = ctx.meta
    segment, head = ctx.store.segments.head(meta, ctx.record.segment)
    z = min(params.steps, meta.shape[0])
    box = Box((0, 0, 0), (z - 1, meta.shape[1] - 1, meta.shape[2] - 1))
    mask = np.zeros((z, *meta.shape[1:]), dtype=bool)
    for step in range(z):
        time.sleep(params.step_s)
        mask[step, :4, :4] = True
        ctx.progress(step + 1, z, f"slice {step}", loss=1.0 / (step + 1))
        ctx.emit("slice", {"index": step})
    if params.fail:
        raise ValueError("asked to fail")
    ctx.commit(segment.id, head, lambda seg: CommitPlan(
        seg, box, mask, {"type": "paint"}, {}, head.marks.to_marks(), {"slices": z}))
    return {"slices": z}


register(JobKind(name="paint", description="test kind", params_type=PaintParams, run=paint))
