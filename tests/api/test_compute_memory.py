"""A compute child keeps the memory one call frees for the next: a 2D click's arrays came
back as fresh pages on every click (~1,400 page faults, ~1.5 ms of a ~12 ms click) while
glibc's thresholds returned them to the system (api/compute.keep_freed_memory)."""

from __future__ import annotations

import platform
import resource

import numpy as np
import pytest

from medseg.api.compute import ChildConfig, ComputePool, keep_freed_memory
from medseg.engine.volume import Volume

ROUNDS = 4
ARRAYS, VALUES = 40, 50_000  # 40 live arrays of 400 KB (16 MB), as a click's ROI arrays


def page_faults_per_round(store, plugins, fence=None) -> list[int]:
    """In the child: the page faults of this thread while it fills ARRAYS arrays at once and
    frees them, per round."""
    faults = []
    for _ in range(ROUNDS):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        arrays = [np.ones(VALUES) for _ in range(ARRAYS)]
        del arrays
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
    return faults


@pytest.fixture
def pool(settings, store, plugins):
    config = ChildConfig(settings.redis_url, settings.session_ttl_s, settings.cache_mb << 20,
                         settings.job_heartbeat_s, settings.plugins, settings.log_level,
                         settings.log_json)
    pool = ComputePool(store, plugins, config, processes=1, deadline_s=120)
    pool.start()
    yield pool
    pool.stop()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_a_compute_child_reuses_the_memory_a_call_freed(store, pool):
    meta = store.sessions.create(Volume(np.zeros((1, 8, 8), np.int16), (1.0, 1.0, 1.0),
                                       np.eye(4)), "alice")
    segment = store.segments.create(meta, None, None, None)
    faults = pool.run(meta, segment.id, page_faults_per_round)
    filled = ARRAYS * VALUES * 8 // 4096  # pages the first round touches
    assert faults[0] >= filled // 2  # the first round does fault its pages in
    # later rounds reuse them (glibc's own thresholds: ~all of them faulted in again)
    assert max(faults[1:]) < filled // 20, faults


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_glibc_takes_the_thresholds():
    assert keep_freed_memory()
