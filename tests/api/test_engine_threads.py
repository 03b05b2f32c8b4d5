"""`MEDSEG_ENGINE_THREADS` reaches the compute children: a busy server turns the slicewise
first click's worker threads off (0) because other requests already fill its cores."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.api.app import create_app
from medseg.api.compute import ChildConfig, ComputePool
from medseg.api.settings import Settings
from medseg.engine import slicewise_method
from medseg.engine.volume import Volume


def workers_in_child(store, plugins, fence=None) -> int:
    return slicewise_method.WORKERS


@pytest.mark.parametrize("threads", [0, 3])
def test_the_setting_sets_the_childs_engine_threads(settings, store, plugins, threads):
    config = ChildConfig(settings.redis_url, settings.session_ttl_s, settings.cache_mb << 20,
                         settings.job_heartbeat_s, settings.plugins, settings.log_level,
                         settings.log_json, engine_threads=threads)
    pool = ComputePool(store, plugins, config, processes=1, deadline_s=120)
    pool.start()
    try:
        meta = store.sessions.create(Volume(np.zeros((1, 8, 8), np.int16), (1.0, 1.0, 1.0),
                                           np.eye(4)), "alice")
        segment = store.segments.create(meta, None, None, None)
        assert pool.run(meta, segment.id, workers_in_child) == threads
    finally:
        pool.stop()


def test_the_setting_sets_the_api_process_engine_threads(settings, store, plugins,
                                                         monkeypatch):
    """Interactions computed in the API process itself (MEDSEG_COMPUTE_PROCESSES=0)."""
    monkeypatch.setattr(slicewise_method, "WORKERS", slicewise_method.WORKERS)  # restored
    create_app(settings.model_copy(update={"engine_threads": 0}), store=store, plugins=plugins)
    assert slicewise_method.WORKERS == 0
    with pytest.raises(ValueError, match=">= 0"):
        slicewise_method.set_workers(-1)


def test_the_environment_names_the_setting(monkeypatch):
    monkeypatch.setenv("MEDSEG_ENGINE_THREADS", "0")
    monkeypatch.setenv("MEDSEG_DEV_MODE", "1")
    assert Settings().engine_threads == 0
