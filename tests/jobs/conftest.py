"""Job tests run against their own Redis (one per module), so only the workers they start take
their jobs. A module has at most one worker: `worker` makes sure it runs, `no_worker` makes
sure none does (a job submitted then stays `queued` until the test starts one)."""

from __future__ import annotations

import subprocess
from contextlib import ExitStack

import pytest

from medseg.store.embedded import EmbeddedRedis
from tests.live import job_worker


class ModuleWorker:
    """The module's one job worker process, started and stopped on demand."""

    def __init__(self, redis_url: str):
        self.redis_url = redis_url
        self.process: subprocess.Popen | None = None
        self._stack = ExitStack()

    def start(self) -> subprocess.Popen:
        if self.process is None or self.process.poll() is not None:
            self.stop()
            self.process = self._stack.enter_context(job_worker(self.redis_url))
        return self.process

    def stop(self) -> None:
        """Stop the worker and wait until it has exited: from here on nothing takes a job."""
        self._stack.close()
        self.process = None


@pytest.fixture(scope="module")
def redis_url():
    with EmbeddedRedis() as url:
        yield url


@pytest.fixture(scope="module")
def workers(redis_url):
    module_worker = ModuleWorker(redis_url)
    yield module_worker
    module_worker.stop()


@pytest.fixture
def worker(workers) -> subprocess.Popen:
    return workers.start()


@pytest.fixture
def no_worker(workers) -> ModuleWorker:
    workers.stop()
    return workers
