"""Job tests run against their own Redis, so only the workers they start take their jobs."""

from __future__ import annotations

import pytest

from medseg.store.embedded import EmbeddedRedis
from tests.live import job_worker


@pytest.fixture(scope="module")
def redis_url():
    with EmbeddedRedis() as url:
        yield url


@pytest.fixture(scope="module")
def worker(redis_url):
    with job_worker(redis_url) as process:
        yield process
