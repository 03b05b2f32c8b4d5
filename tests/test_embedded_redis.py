"""The embedded Redis of a real `medseg-server` (no REDIS_URL): supervised (kill -9 it and the
session created before is served again; the dead process is reaped), private (a generated
password that is never printed nor on a command line; files 0600 in a folder 0700, in the
instance's own data folder), and a deleted session leaves its append-only file promptly."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import nibabel as nib
import numpy as np
import pytest
import redis

from medseg.api.auth import hash_key
from medseg.store.embedded import free_port, terminate
from tests.conftest import KEYS
from tests.live import PYTHONPATH, START_TIMEOUT_S, _ready
from tests.polling import poll

RECOVERY_S = 60.0  # supervisor polls every 0.5 s; a cold redis-server start takes well under 1 s
REWRITE_S = 60.0  # the rewrite is asked 0.5 s after a delete and takes milliseconds here
MARKER = "PHI-MARKER-Doe-Jane-19700101"


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen
    data_dir: Path
    log: io.BufferedRandom

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"X-API-Key": KEYS["alice"]},
                            timeout=30)


@contextmanager
def embedded_server(data_dir: Path, **env_overrides: str) -> Iterator[Server]:
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if key not in ("MEDSEG_REDIS_URL", "REDIS_URL")}  # no Redis given: it starts its own
    env.update({
        "MEDSEG_PORT": str(port), "MEDSEG_HOST": "127.0.0.1", "MEDSEG_DATA_DIR": str(data_dir),
        "MEDSEG_API_KEYS": ",".join(f"{t}:sha256:{hash_key(k)}" for t, k in KEYS.items()),
        "MEDSEG_LOG_LEVEL": "WARNING", "PYTHONPATH": PYTHONPATH,
        "MEDSEG_AOF_REWRITE_DELAY_S": "0.5", **env_overrides,
    })
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([sys.executable, "-m", "medseg.main"], env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        server = Server(f"http://127.0.0.1:{port}", process, data_dir, log)
        try:
            try:
                poll(lambda: _ready(server.base_url), lambda status: status == 200,
                     START_TIMEOUT_S, "ready API server",
                     hopeless=lambda _: process.poll() is not None, interval_s=0.1)
            except AssertionError as exc:
                raise RuntimeError(f"server did not start: {exc}\n{server.output()}") from None
            yield server
        finally:
            terminate(process, timeout_s=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    with embedded_server(tmp_path_factory.mktemp("instance")) as running:
        yield running


def children(pid: int, word: str) -> list[int]:
    """Children of `pid` whose command line holds `word` (zombies included: still children)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if word in _proc(int(child), "cmdline") + _proc(int(child), "comm"):
                found.append(int(child))
    return found


def redis_children(pid: int) -> list[int]:
    return children(pid, "redis-server")


def _proc(pid: int, name: str) -> str:
    try:
        return Path(f"/proc/{pid}/{name}").read_text(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def state(pid: int) -> str:
    """The process state letter ("Z": zombie), or "" once the pid is gone (reaped)."""
    stat = _proc(pid, "stat")
    return stat.rsplit(")", 1)[1].split()[0] if stat else ""


def nifti(marker_value: int = 0) -> bytes:
    data = np.zeros((16, 16, 8), np.int16)
    data[4:12, 4:12, 2:6] = 100 + marker_value
    image = nib.Nifti1Image(data, np.eye(4))
    image.header["descrip"] = MARKER.encode()
    return image.to_bytes()


def create(client: httpx.Client, name: str = "scan") -> dict:
    response = client.post("/v1/sessions", files=[("files", ("scan.nii", nifti()))],
                           data={"name": name})
    assert response.status_code == 201, response.text
    return response.json()


def files_in(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_data_is_private_to_the_instance_and_the_password_never_shows(server):
    with server.client() as client:
        create(client)
    redis_dir = server.data_dir / "redis"
    assert files_in(redis_dir), "no append-only file was written"
    for path in [redis_dir, *redis_dir.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        assert mode & 0o077 == 0, f"{path.name} is mode {oct(mode)}"
    # the job worker gets the URL, password included, through its environment
    (worker,) = poll(lambda: children(server.process.pid, "medseg.worker"), bool, 30, "worker")
    url = next(line.split("=", 1)[1] for line in _proc(worker, "environ").split("\0")
               if line.startswith("MEDSEG_REDIS_URL="))
    parsed = redis.connection.parse_url(url)
    password, port = parsed["password"], parsed["port"]
    assert len(password) >= 32
    (pid,) = redis_children(server.process.pid)
    assert password not in _proc(pid, "cmdline")  # every local user can read a command line
    assert password not in server.output()
    with pytest.raises(redis.AuthenticationError):  # no password: no access
        redis.Redis(port=port).ping()
    assert redis.Redis.from_url(url).ping()


def test_a_deleted_session_leaves_the_append_only_file_promptly(server):
    redis_dir = server.data_dir / "redis"

    def marked() -> list[str]:
        return [p.name for p in files_in(redis_dir) if MARKER.encode() in p.read_bytes()]

    with server.client() as client:
        session = create(client, name=MARKER)
        # Redis appends to the file after it answered (appendfsync everysec)
        poll(marked, bool, REWRITE_S, "the marker in the append-only file (else: proves nothing)")
        assert client.delete(f"/v1/sessions/{session['id']}").status_code == 204
    poll(marked, lambda found: not found, REWRITE_S, "append-only file without the marker")
    assert MARKER not in server.output()  # nor in the server's logs


def test_a_killed_redis_is_restarted_with_its_sessions_and_reaped(server):
    with server.client() as client:
        session = create(client)
        (old,) = redis_children(server.process.pid)
        os.kill(old, signal.SIGKILL)
        poll(lambda: client.get(f"/v1/sessions/{session['id']}").status_code,
             lambda status: status == 200, RECOVERY_S, "session served again after kill -9",
             hopeless=lambda _: server.process.poll() is not None)
        assert client.get("/readyz").status_code == 200
    poll(lambda: state(old), lambda letter: letter == "", RECOVERY_S,
         f"reaping of the killed redis-server (pid {old})")
    (new,) = redis_children(server.process.pid)
    assert new != old
    assert "embedded Redis (pid" in server.output() and "exited" in server.output()


def test_a_second_server_on_the_same_data_folder_is_refused(server):
    with pytest.raises(RuntimeError, match="in use by another medseg server"), \
            embedded_server(server.data_dir):
        pass
