"""Real API server and job worker processes for tests that go over HTTP or through the queue
(SDK, CLI, two-process tests, jobs)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from contextlib import contextmanager

import httpx
import redis
from rq import Worker

from medseg.api.auth import hash_key
from medseg.store.embedded import free_port, terminate
from tests.conftest import KEYS, ROOT
from tests.polling import poll

# The processes a test starts import this checkout's sources, as the test process does: an
# editable install of another checkout (or none at all) must not decide which code they run.
SOURCES = [ROOT / "services", ROOT / "clients" / "python", ROOT / "protocol",
           ROOT / "benchmarks", ROOT]
PYTHONPATH = os.pathsep.join([*map(str, SOURCES), *filter(None, [os.environ.get("PYTHONPATH")])])

# Every worker a test starts knows the test job kinds. Its heartbeat is the production default:
# the heartbeat thread of a job process needs the GIL, which numpy, the graph cut or a model
# load can hold for long stretches; with a 1 s heartbeat (beats every 0.25 s) gaps of 0.76 s
# between beats were measured in a 3D fine-tuning job on this loaded 2-core machine, and a gap
# over 1 s fails a healthy job as worker_lost. A test about heartbeats sets a short one for
# its own worker, whose job leaves the GIL free (tests/jobs/test_worker_killed.py).
WORKER_ENV = {"MEDSEG_PLUGINS": "tests.jobs.demo_kinds", "MEDSEG_JOB_HEARTBEAT_S": "10.0",
              "PYTHONPATH": PYTHONPATH}
# A test server is one API process with one compute process (a test that needs more says so):
# each process imports numpy, scipy and onnxruntime, slow to start on a loaded machine.
SERVER_ENV = {"MEDSEG_WORKERS": "1", "MEDSEG_COMPUTE_PROCESSES": "1",
              # see conftest.SHARED_REDIS_QUOTAS
              "MEDSEG_TENANT_MAX_SESSIONS": "0", "MEDSEG_TENANT_MAX_MB": "0"}

START_TIMEOUT_S = 60  # a cold start imports numpy, scipy, onnxruntime: slow on a loaded machine


def _ready(base_url: str) -> int | str:
    try:
        return httpx.get(f"{base_url}/readyz", timeout=1).status_code
    except httpx.TransportError as exc:
        return type(exc).__name__


def _output(log) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")


@contextmanager
def api_server(redis_url: str, **env_overrides: str):
    """Start `python -m medseg.main` on a free port against `redis_url`; yield its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "MEDSEG_REDIS_URL": redis_url,
        "MEDSEG_PORT": str(port),
        "MEDSEG_HOST": "127.0.0.1",
        "MEDSEG_API_KEYS": ",".join(f"{t}:sha256:{hash_key(k)}" for t, k in KEYS.items()),
        "MEDSEG_LOG_LEVEL": "WARNING",
        **WORKER_ENV,
        **SERVER_ENV,
        **env_overrides,
    }
    # output to a file, not a pipe: a pipe nobody reads fills up and blocks the server (and the
    # job worker it starts, which inherits it) in the middle of a test session
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([sys.executable, "-m", "medseg.main"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        base_url = f"http://127.0.0.1:{port}"
        try:
            try:
                poll(lambda: _ready(base_url), lambda status: status == 200, START_TIMEOUT_S,
                     "ready API server", hopeless=lambda _: process.poll() is not None,
                     interval_s=0.1)
            except AssertionError as exc:
                raise RuntimeError(f"API server did not start: {exc}\n{_output(log)}") from None
            yield base_url
        finally:
            terminate(process, timeout_s=10)


def worker_name(process: subprocess.Popen) -> str:
    return f"medseg.{socket.gethostname()}.{process.pid}"  # medseg.worker's default name


@contextmanager
def job_worker(redis_url: str, *args: str, **env_overrides: str):
    """A real `python -m medseg.worker` process (its own process group; `args` are its command
    line options); yields it once RQ has registered it, i.e. once it serves the queue (a job
    queued earlier waits there for it)."""
    env = {**os.environ, "MEDSEG_REDIS_URL": redis_url, **WORKER_ENV, **env_overrides}
    with tempfile.TemporaryFile() as log, redis.Redis.from_url(redis_url) as connection:
        process = subprocess.Popen([sys.executable, "-m", "medseg.worker", *args], env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            key = f"{Worker.redis_worker_namespace_prefix}{worker_name(process)}"
            try:
                poll(lambda: connection.exists(key), bool, START_TIMEOUT_S,
                     f"registration of worker pid {process.pid}",
                     hopeless=lambda _: process.poll() is not None, interval_s=0.05)
            except AssertionError as exc:
                raise RuntimeError(f"worker did not start: {exc}\n{_output(log)}") from None
            yield process
        finally:
            if process.poll() is None:
                process.terminate()  # RQ's warm shutdown: the running job first
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
