"""`medseg-server` / `python -m medseg.main`: serve the API (starting an embedded Redis when no
REDIS_URL is configured), or `hash-key TENANT` to mint an API key and its config entry."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis
import uvicorn
from pydantic import ValidationError

from medseg.api.auth import new_key_entry
from medseg.api.settings import Settings
from medseg.store.admin import eviction_warning
from medseg.store.embedded import EmbeddedRedis, die_with_parent


def serve(workers: int) -> None:
    try:
        settings = Settings()
    except (ValidationError, ValueError) as exc:
        sys.exit(f"medseg: configuration error: {exc}")
    redis_supervisor = None
    if not settings.redis_url:
        try:
            redis_supervisor = start_embedded_redis(settings)
        except (RuntimeError, OSError) as exc:  # no redis-server, a data folder in use or denied
            sys.exit(f"medseg: {exc}")
    else:
        warn_if_evicting(settings.redis_url)
    worker = ProcessSupervisor(start_worker) if settings.run_worker else None
    print(
        f"medseg: serving on http://{settings.host}:{settings.port} "
        f"({'dev mode, no API keys' if not settings.key_hashes else 'API keys required'})",
        flush=True,
    )
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    print(f"medseg: open the viewer at http://{host}:{settings.port}/ui/", flush=True)
    try:
        uvicorn.run(
            "medseg.api.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_level="warning",
        )
    finally:
        if worker:
            worker.stop()
        if redis_supervisor:
            redis_supervisor.stop()


def start_embedded_redis(settings: Settings) -> ProcessSupervisor:
    """Start the embedded Redis (its data in the instance's folder, `maxmemory` from the
    settings, a generated password) under a supervisor that restarts it, on the same port with
    the same append-only file, whenever it dies. The URL, password included, reaches the API
    processes and the job worker through the environment; only the address is printed."""
    data_dir = settings.instance_dir / "redis"
    server = EmbeddedRedis(data_dir=data_dir, maxmemory_bytes=settings.redis_maxmemory_mb << 20)
    supervisor = ProcessSupervisor(server.restart, poll_s=0.5, backoff_s=0.5, max_backoff_s=30.0,
                                   name="embedded Redis", stop_child=lambda _: server.stop())
    os.environ["MEDSEG_REDIS_URL"] = server.url
    print(
        f"medseg: started embedded Redis at {server.public_url} (pid {supervisor.process.pid}, "
        f"data in {data_dir}, maxmemory {settings.redis_maxmemory_mb} MB)",
        flush=True,
    )
    return supervisor


def warn_if_evicting(url: str) -> None:
    """Say so when the configured Redis may evict sessions when full (it is not ours to change)."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        warning = eviction_warning(client)
    except redis.ConnectionError:
        return  # not reachable yet: /readyz says so
    finally:
        client.close()
    if warning:
        print(f"medseg: WARNING: {warning}", flush=True)


def start_worker() -> subprocess.Popen:
    """One `medseg-worker` process beside the API (it reads MEDSEG_REDIS_URL from the
    environment set above). It dies with this process (PR_SET_PDEATHSIG), however that dies;
    run more with `medseg-worker` or set MEDSEG_RUN_WORKER=0 to run them elsewhere."""
    process = subprocess.Popen([sys.executable, "-m", "medseg.worker"], preexec_fn=die_with_parent)  # noqa: PLW1509 - one prctl call, before any thread
    print(f"medseg: started job worker (pid {process.pid})", flush=True)
    return process


class Clock(Protocol):
    """The time a `ProcessSupervisor` reads and waits on (tests pass one they advance by hand)."""

    def monotonic(self) -> float: ...

    def wait(self, stopping: threading.Event, seconds: float) -> bool:
        """Wait `seconds`, or less once `stopping` is set; True when it is set."""
        ...


class RealClock:
    """The wall clock: `time.monotonic` and `Event.wait`."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, stopping: threading.Event, seconds: float) -> bool:
        return stopping.wait(seconds)


REAL_CLOCK = RealClock()


class ProcessSupervisor:
    """Keeps one child process running beside the API: the job worker, the embedded Redis. A
    child that exits (killed by the OOM killer, crashed, `kill -9`) is reaped (no zombie stays)
    and started again. A child that keeps dying within `stable_s` of its start waits twice as
    long each time before the next start (from `backoff_s` up to `max_backoff_s`), so a broken
    install does not spin; a start that fails (raises) counts as such a death.

    The first start happens in the constructor and may raise (the server does not start)."""

    def __init__(
        self,
        start: Callable[[], subprocess.Popen],
        poll_s: float = 1.0,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        stable_s: float = 60.0,
        clock: Clock = REAL_CLOCK,
        name: str = "job worker",
        stop_child: Callable[[subprocess.Popen], None] | None = None,
    ):
        self._start, self.poll_s, self._clock, self.name = start, poll_s, clock, name
        self.backoff_s, self.max_backoff_s, self.stable_s = backoff_s, max_backoff_s, stable_s
        self._stop_child = stop_child
        self._stopping = threading.Event()
        self.process = start()
        self.started_at, self.restarts = self._clock.monotonic(), 0
        self._thread = threading.Thread(target=self._watch, name=f"{name}-supervisor".replace(
            " ", "-"), daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def _watch(self) -> None:
        wait = self.backoff_s
        while not self._clock.wait(self._stopping, self.poll_s):
            code = self.process.poll()  # also reaps a dead child
            if code is None:
                continue
            stable = self._clock.monotonic() - self.started_at > self.stable_s
            wait = self.backoff_s if stable else wait
            print(
                f"medseg: {self.name} (pid {self.process.pid}) exited with code {code}; "
                f"starting another in {wait:.0f} s",
                flush=True,
            )
            while True:
                if self._clock.wait(self._stopping, wait):
                    return
                try:
                    self.process = self._start()
                except Exception as exc:  # noqa: BLE001 - try again later, as after a death
                    wait = min(2 * wait, self.max_backoff_s)
                    print(f"medseg: {self.name} did not start ({exc}); trying again in "
                          f"{wait:.0f} s", flush=True)
                    continue
                break
            self.started_at = self._clock.monotonic()
            self.restarts += 1
            wait = min(2 * wait, self.max_backoff_s)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._thread.join(timeout)
        if self._stop_child is not None:
            self._stop_child(self.process)
        elif self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)


WorkerSupervisor = ProcessSupervisor  # the name it had when it supervised only the worker


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="medseg-server", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    serve_cmd = sub.add_parser("serve", help="serve the API (default)")
    serve_cmd.add_argument(
        "--workers", type=int, default=int(os.environ.get("MEDSEG_WORKERS", "2"))
    )
    key_cmd = sub.add_parser("hash-key", help="mint an API key for a tenant")
    key_cmd.add_argument("tenant")
    args = parser.parse_args(argv)
    if args.command == "hash-key":
        key, entry = new_key_entry(args.tenant)
        print(f"give the client this key:  {key}\nadd this to MEDSEG_API_KEYS: {entry}")
        return
    serve(getattr(args, "workers", int(os.environ.get("MEDSEG_WORKERS", "2"))))


if __name__ == "__main__":
    run()
