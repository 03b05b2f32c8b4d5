"""Real API server processes for tests that go over HTTP (SDK, CLI, two-process tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager

import httpx

from medseg.api.auth import hash_key
from medseg.store.embedded import free_port
from tests.conftest import KEYS, ROOT

# every worker a test starts knows the test job kinds and beats fast (lost jobs show in ~1 s)
WORKER_ENV = {"MEDSEG_PLUGINS": "tests.jobs.demo_kinds", "MEDSEG_JOB_HEARTBEAT_S": "1.0",
              "PYTHONPATH": str(ROOT)}


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
        **env_overrides,
    }
    process = subprocess.Popen([sys.executable, "-m", "medseg.main"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                raise RuntimeError(f"API server did not start:\n{output}")
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def job_worker(redis_url: str, **env_overrides: str):
    """A real `python -m medseg.worker` process (its own process group); yields it."""
    env = {**os.environ, "MEDSEG_REDIS_URL": redis_url, **WORKER_ENV, **env_overrides}
    process = subprocess.Popen([sys.executable, "-m", "medseg.worker"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        line = process.stdout.readline().decode(errors="replace")
        if "medseg-worker" not in line or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start: {line}")
        time.sleep(0.3)  # from the banner to RQ's blocking pop
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
