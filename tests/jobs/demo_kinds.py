"""A test plug-in (loaded by the test API and workers through MEDSEG_PLUGINS): the job kind
`paint` fills one z-slice of the segment per step, sleeping between steps, then commits ONE
revision; the propagation method `slow-test` is graphcut-seeds with a 0.2 s pause per slice;
the interactive method `slow-click` marks the clicked voxel after holding the GIL
for `gil_s` seconds (as a graph cut in C does) and/or after being held (`hold_name`).

Both can be HELD at a chosen step: the job then blocks (in Redis, BLPOP) until the test
releases it (`release`), so a test sees it `running` at exactly that step, however loaded
the machine is, and can act on it (cancel, change the segment, kill the worker) there."""

from __future__ import annotations

import ctypes
import os
import time
from dataclasses import dataclass

import numpy as np
import redis
from pydantic import BaseModel, Field

from medseg.engine.method import Method, MethodResult
from medseg.engine.prompts import Box
from medseg.engine.propagation import PredictorSpec
from medseg.engine.slice_predictors import SeedGraphCut, SeedGraphCutParams
from medseg.jobs.context import CommitPlan
from medseg.jobs.kinds import JobKind

HOLD_S = 120  # a held job nobody releases fails after this long (a broken test, not a hang)


def _release_key(name: str) -> str:
    return f"medseg:test:release:{name}"


def hold(client: redis.Redis, name: str) -> None:
    """Block until `release(client, name)` (one release per hold)."""
    deadline = time.monotonic() + HOLD_S
    while client.blpop([_release_key(name)], timeout=5) is None:  # < the client's socket timeout
        if time.monotonic() > deadline:
            raise TimeoutError(f"held at {name!r} for {HOLD_S} s and never released")


def release(client: redis.Redis, name: str) -> None:
    """Let a job held at `name` go on."""
    client.rpush(_release_key(name), "go")
    client.expire(_release_key(name), HOLD_S)


class PaintParams(BaseModel):
    steps: int = 3
    step_s: float = 0.05
    fail: bool = False
    # after reporting this step, wait for release(..., f"paint:{job id}") (0: never)
    hold_at: int = Field(0, ge=0)


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
        if step + 1 == params.hold_at:
            hold(ctx.store.jobs.redis, f"paint:{ctx.record.id}")
    if params.fail:
        raise ValueError("asked to fail")
    ctx.commit(segment.id, head, lambda seg: CommitPlan(
        seg, box, mask, {"type": "paint"}, {}, head.marks.to_marks(), {"slices": z}))
    return {"slices": z}


PAINT = JobKind(name="paint", description="test kind", params_type=PaintParams, run=paint)


@dataclass(frozen=True)
class SlowParams:
    # once this many slices are predicted, wait for release(..., f"slow-test:{hold_name}")
    hold_after: int = 0  # 0: never
    hold_name: str = ""


class _Slow:
    """Wraps a predictor and sleeps before each slice, so a test can cancel mid-way."""

    def __init__(self, inner, delay_s: float, params: SlowParams):
        self.inner, self.delay_s, self.params, self.predicted = inner, delay_s, params, 0

    def predict(self, image, prior, spacing):
        if self.params.hold_after and self.predicted == self.params.hold_after:
            # the worker's Redis (the predictor has no job context)
            with redis.Redis.from_url(os.environ["MEDSEG_REDIS_URL"], socket_timeout=30) as client:
                hold(client, f"slow-test:{self.params.hold_name}")
        time.sleep(self.delay_s)
        self.predicted += 1
        return self.inner.predict(image, prior, spacing)


def _build_slow(params: SlowParams, start_image, start_mask, spacing):
    return _Slow(SeedGraphCut(SeedGraphCutParams(), start_image, start_mask, spacing), 0.2,
                 params)


SLOW = PredictorSpec("slow-test", "test: graphcut-seeds, 0.2 s per slice", SlowParams,
                     _build_slow)


def started_key(name: str) -> str:
    """Set (to the computing process's pid) once `slow-click` with this `hold_name` started."""
    return f"medseg:test:started:{name}"


@dataclass(frozen=True)
class SlowClickParams:
    # when set: mark started (`started_key`), then hold the GIL for `gil_s` seconds, or without
    # `gil_s` wait for release(..., f"click:{hold_name}")
    hold_name: str = ""
    gil_s: int = 0  # whole seconds in one C call that keeps the GIL


def _slow_click(read_image, read_mask, shape, spacing, marks, plane, params, current_mask_bbox,
                context) -> MethodResult:
    if params.hold_name:
        with redis.Redis.from_url(os.environ["MEDSEG_REDIS_URL"], socket_timeout=30) as client:
            client.set(started_key(params.hold_name), os.getpid(), ex=HOLD_S)
            if not params.gil_s:
                hold(client, f"click:{params.hold_name}")
    if params.gil_s:
        # libc sleep through PyDLL: the GIL stays held for the whole call, as in PyMaxflow
        ctypes.PyDLL(None).sleep(params.gil_s)
    voxel = tuple(int(v) for v in marks.fg[-1])
    roi = Box(voxel, voxel)
    mask = np.ones(roi.shape, dtype=bool)
    return MethodResult(roi=roi, mask=mask, probability=mask.astype(np.float32))


SLOW_CLICK = Method(name="slow-click", description="test: the clicked voxel, slowly",
                    interaction_types=("click",), dims=("2d", "3d"),
                    params_type=SlowClickParams, run=_slow_click)


def register(plugins) -> None:
    plugins.job_kinds.register(PAINT)
    plugins.predictors.register(SLOW)
    plugins.methods.register(SLOW_CLICK)
