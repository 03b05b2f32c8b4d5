"""`make serve`'s job worker is supervised: killed, it is started again."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time

from medseg.main import WorkerSupervisor


def _sleeper() -> subprocess.Popen:
    # a real process standing in for the worker: what is supervised is its life, not its work
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def _wait_for(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_killed_worker_is_started_again_and_stop_ends_it():
    supervisor = WorkerSupervisor(_sleeper, poll_s=0.05, backoff_s=0.1)
    try:
        first = supervisor.process
        first.send_signal(signal.SIGKILL)
        assert _wait_for(lambda: supervisor.process is not first)
        second = supervisor.process
        assert second.poll() is None and supervisor.restarts == 1
    finally:
        supervisor.stop()
    assert second.poll() is not None  # stop() ends the worker ...
    time.sleep(0.3)
    assert supervisor.process is second  # ... and nothing starts another


def test_a_worker_that_keeps_dying_waits_longer_each_time():
    starts: list[float] = []

    def dying() -> subprocess.Popen:
        starts.append(time.monotonic())
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])

    supervisor = WorkerSupervisor(dying, poll_s=0.02, backoff_s=0.2, stable_s=60)
    try:
        assert _wait_for(lambda: len(starts) >= 4, timeout_s=15)
    finally:
        supervisor.stop()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[2] >= 0.8  # 0.2 s, doubling
