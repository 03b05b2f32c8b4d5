"""`make serve`'s job worker is supervised: killed, it is started again, after a back-off that
doubles while it keeps dying. The supervisor's clock is a fake the test advances, so every wait
it asks for is seen and checked, and no test sleeps; the workers are real processes."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading

from medseg.main import ProcessSupervisor, WorkerSupervisor

STEP_TIMEOUT_S = 30.0  # far more than one supervisor step takes, even on a loaded machine


class StepClock:
    """A clock that stands still until the test lets the supervisor's current wait end.

    Each `wait` the supervisor asks for is handed to the test (`next_wait`), which ends it with
    `advance` (time moves by the wait, plus `extra`). `run_freely` hands waiting back to the
    real `Event.wait`, so `stop()` ends the supervisor as it does in production."""

    def __init__(self) -> None:
        self.now = 0.0
        self._asked: queue.Queue[float] = queue.Queue()
        self._turn = threading.Condition()
        self._grants: list[float] = []  # extra seconds of each granted wait, in order
        self._free = False
        self.stopped = False  # the supervisor saw `stop()` (a wait returned True)

    # -- the supervisor's side -----------------------------------------------------------------
    def monotonic(self) -> float:
        return self.now

    def wait(self, stopping: threading.Event, seconds: float) -> bool:
        granted = False
        with self._turn:
            if not self._free:
                self._asked.put(seconds)
                if not self._turn.wait_for(lambda: self._grants or self._free, STEP_TIMEOUT_S):
                    raise AssertionError(f"the test never ended the supervisor's {seconds} s wait")
                if self._grants:
                    self.now += seconds + self._grants.pop(0)
                    granted = True
        self.stopped = stopping.is_set() if granted else stopping.wait(seconds)
        return self.stopped

    # -- the test's side -----------------------------------------------------------------------
    def next_wait(self) -> float:
        """The length of the wait the supervisor asks for next (it blocks there)."""
        try:
            return self._asked.get(timeout=STEP_TIMEOUT_S)
        except queue.Empty:
            raise AssertionError(
                f"the supervisor asked for no wait in {STEP_TIMEOUT_S} s"
            ) from None

    def advance(self, extra: float = 0.0) -> None:
        """End the wait the supervisor is in: the clock moves by its length plus `extra`."""
        with self._turn:
            self._grants.append(extra)
            self._turn.notify_all()

    def run_freely(self) -> None:
        with self._turn:
            self._free = True
            self._turn.notify_all()


def _sleeper() -> subprocess.Popen:
    # a real process standing in for the worker: what is supervised is its life, not its work
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def _dead_worker() -> subprocess.Popen:
    # a real worker that has already exited (code 3) when the supervisor first looks at it
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait(timeout=STEP_TIMEOUT_S)
    return process


def _stop(supervisor: WorkerSupervisor, clock: StepClock) -> None:
    clock.run_freely()
    supervisor.stop()
    assert clock.stopped, "the supervisor did not see stop() within stop()'s timeout"


def test_a_killed_worker_is_started_again_and_stop_ends_it():
    clock = StepClock()
    starts: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        starts.append(_sleeper())
        return starts[-1]

    supervisor = WorkerSupervisor(start, poll_s=0.05, backoff_s=0.1, clock=clock)
    try:
        first = supervisor.process
        assert clock.next_wait() == 0.05  # it looks every poll_s
        clock.advance()
        assert clock.next_wait() == 0.05 and supervisor.process is first  # alive: left alone
        first.kill()
        first.wait(timeout=STEP_TIMEOUT_S)
        clock.advance()  # the next look finds it dead ...
        assert clock.next_wait() == 0.1  # ... and it waits backoff_s before starting another
        assert supervisor.process is first and supervisor.restarts == 0
        clock.advance()
        assert clock.next_wait() == 0.05  # polling the new worker
        second = supervisor.process
        assert second is not first and second.poll() is None and supervisor.restarts == 1
    finally:
        _stop(supervisor, clock)
    assert second.poll() is not None  # stop() ends the worker ...
    assert supervisor.process is second and starts == [first, second]  # ... and starts no other


def test_a_worker_that_keeps_dying_waits_twice_as_long_each_time_up_to_the_cap():
    clock = StepClock()
    supervisor = WorkerSupervisor(
        _dead_worker, poll_s=0.02, backoff_s=0.2, max_backoff_s=1.0, stable_s=60, clock=clock
    )
    waits = []
    try:
        for _ in range(12):
            waits.append(clock.next_wait())
            clock.advance()
        clock.next_wait()  # the 7th worker has started: restarts is final
    finally:
        _stop(supervisor, clock)
    # poll, back-off, poll, back-off, ...: 0.2 s doubling, capped at max_backoff_s
    assert waits == [0.02, 0.2, 0.02, 0.4, 0.02, 0.8, 0.02, 1.0, 0.02, 1.0, 0.02, 1.0]
    assert supervisor.restarts == 6


def test_a_worker_that_ran_longer_than_stable_s_restarts_after_the_first_backoff():
    clock = StepClock()
    supervisor = WorkerSupervisor(_dead_worker, poll_s=0.02, backoff_s=0.2, stable_s=5, clock=clock)
    waits = []
    try:
        for extra in (0, 0, 0, 0, 10.0, 0):  # the third worker "runs" 10 s before it is seen dead
            waits.append(clock.next_wait())
            clock.advance(extra)
    finally:
        _stop(supervisor, clock)
    assert waits == [0.02, 0.2, 0.02, 0.4, 0.02, 0.2]  # back to backoff_s, not 0.8


def test_a_start_that_fails_is_retried_after_a_growing_backoff():
    # the embedded Redis's start raises when redis-server does not come up (say its port is
    # taken for a moment): the supervisor must keep trying, not die with its thread
    clock = StepClock()
    attempts: list[str] = []

    def start() -> subprocess.Popen:
        attempts.append("start")
        if len(attempts) in (2, 3):
            raise RuntimeError("embedded redis-server did not start")
        return _dead_worker() if len(attempts) == 1 else _sleeper()

    supervisor = ProcessSupervisor(start, poll_s=0.02, backoff_s=0.2, stable_s=60, clock=clock,
                                   name="embedded Redis")
    waits = []
    try:
        for _ in range(5):
            waits.append(clock.next_wait())
            clock.advance()
        assert supervisor.process.poll() is None and supervisor.restarts == 1
    finally:
        _stop(supervisor, clock)
    # poll, back-off, failed start -> doubled, failed start -> doubled, then polling the new one
    assert waits == [0.02, 0.2, 0.4, 0.8, 0.02]
    assert len(attempts) == 4


def test_the_data_folder_is_absolute_and_per_instance(monkeypatch, tmp_path):
    from medseg.api.settings import Settings

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    first, second = (Settings(dev_mode=True, port=p).instance_dir for p in (8101, 8102))
    assert first == tmp_path / "medseg" / "8101" and second != first  # two servers, two AOFs
    relative = Settings(dev_mode=True, data_dir="var").instance_dir
    assert relative.is_absolute() and relative == tmp_path / "var"
