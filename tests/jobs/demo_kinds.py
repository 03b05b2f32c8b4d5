"""A test plug-in (loaded by the test API and workers through MEDSEG_PLUGINS): the job kind
`paint` fills one z-slice of the segment per step, sleeping between steps, then commits ONE
revision; the propagation method `slow-test` is graphcut-seeds with a 0.2 s pause per slice."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel

from medseg.engine.prompts import Box
from medseg.engine.propagation import PredictorSpec
from medseg.engine.slice_predictors import SeedGraphCut, SeedGraphCutParams
from medseg.jobs.context import CommitPlan
from medseg.jobs.kinds import JobKind


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


PAINT = JobKind(name="paint", description="test kind", params_type=PaintParams, run=paint)


class _Slow:
    """Wraps a predictor and sleeps before each slice, so a test can cancel mid-way."""

    def __init__(self, inner, delay_s: float):
        self.inner, self.delay_s = inner, delay_s

    def predict(self, image, prior, spacing):
        time.sleep(self.delay_s)
        return self.inner.predict(image, prior, spacing)


def _build_slow(params, start_image, start_mask, spacing):
    return _Slow(SeedGraphCut(SeedGraphCutParams(), start_image, start_mask, spacing), 0.2)


@dataclass(frozen=True)
class _NoParams:
    pass


SLOW = PredictorSpec("slow-test", "test: graphcut-seeds, 0.2 s per slice", _NoParams, _build_slow)


def register(plugins) -> None:
    plugins.job_kinds.register(PAINT)
    plugins.predictors.register(SLOW)
