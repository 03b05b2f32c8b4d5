"""`make serve-replicas` / `python -m medseg.replicas`: N API processes and M job workers on one
Redis, behind nginx on loopback (round robin). What a cluster does, on one machine.

Every API process is its own replica (`MEDSEG_REPLICA=api-<i>`, answered in the
`X-Medseg-Replica` header), one uvicorn worker each, no job worker beside it
(`MEDSEG_RUN_WORKER=0`): the M job workers run on their own. nginx runs from a configuration
written into a private temporary folder (never the system service), on a free loopback port
unless one is given.

Retries (`proxy_next_upstream`): nginx passes a request to the next replica when the one it
chose refuses the connection, resets it or answers 502/503 before anything was sent back; for
POST and PATCH only when the request never reached the replica (nginx's default,
`non_idempotent` is not set). A click, an undo or a job submission that a replica received
and then died on is answered 502 and is never replayed by the balancer: it may have been
committed. The client decides: a change sent with `If-Match` can be sent again safely (it lands
once; a 409 says the first one landed). See docs/deployment.md#replicas-behind-a-load-balancer.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from medseg.store.embedded import EmbeddedRedis, die_with_parent, free_port

NGINX = "nginx"
START_TIMEOUT_S = 90.0  # a cold API start imports numpy, scipy, onnxruntime


def find_nginx() -> str:
    found = shutil.which(NGINX) or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None)
    if found is None:
        raise RuntimeError("nginx not found: apt-get install nginx (the Debian package)")
    return found


TEMP_DIRS = ("body", "proxy", "fastcgi", "uwsgi", "scgi")


def nginx_config(listen_port: int, upstream_ports: list[int], workdir: Path,
                 extra_upstreams: list[str] | None = None, max_body_mb: int = 1024,
                 user: str | None = None) -> str:
    """An nginx configuration, all of its state under `workdir`: round robin over the
    upstreams, HTTP/1.1 keep-alive to them, no buffering (server-sent events stream through),
    and retries to the next replica only where replaying cannot change anything twice."""
    servers = "\n".join(
        [f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in upstream_ports]
        + [f"    server {u} max_fails=1 fail_timeout=5s;" for u in extra_upstreams or []])
    w = workdir
    return f"""# written by medseg.replicas: a private nginx on loopback, not the system service
{f"user {user};" if user else ""}
worker_processes 1;
daemon off;
pid {w}/nginx.pid;
error_log {w}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  log_format replica '$request_method $request_uri $status upstream=$upstream_addr '
                     'replica=$upstream_http_x_medseg_replica';
  access_log {w}/access.log replica;
  client_body_temp_path {w}/body;
  proxy_temp_path {w}/proxy;
  fastcgi_temp_path {w}/fastcgi;
  uwsgi_temp_path {w}/uwsgi;
  scgi_temp_path {w}/scgi;
  client_max_body_size {max_body_mb}m;
  upstream medseg {{
{servers}
    keepalive 32;
  }}
  server {{
    listen 127.0.0.1:{listen_port};
    location / {{
      proxy_pass http://medseg;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      # the next replica for a refused/reset connection or a 502/503 with nothing sent yet;
      # POST/PATCH only if the request never reached the replica (no `non_idempotent`)
      proxy_next_upstream error timeout http_502 http_503;
      proxy_next_upstream_tries 3;
      proxy_connect_timeout 2s;
      proxy_read_timeout 300s;
      proxy_buffering off;
      proxy_request_buffering on;
    }}
  }}
}}
"""


class Nginx:
    """A private nginx process (`with Nginx(ports) as url:`); its files in a temporary folder."""

    def __init__(self, upstream_ports: list[int], port: int | None = None,
                 extra_upstreams: list[str] | None = None):
        self.upstream_ports, self.port = upstream_ports, port or free_port()
        self.extra_upstreams = extra_upstreams or []
        self.workdir = Path(tempfile.mkdtemp(prefix="medseg-nginx-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"

    def _worker_user(self) -> str | None:
        """Started as root, nginx's workers run as an unprivileged user: nobody, owning the
        temporary folders it buffers bodies in (each 0700), the work folder only traversable."""
        if os.geteuid() != 0:
            return None
        nobody = pwd.getpwnam("nobody")
        for name in TEMP_DIRS:
            folder = self.workdir / name
            folder.mkdir(mode=0o700, exist_ok=True)
            os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        self.workdir.chmod(0o711)
        return f"nobody {grp.getgrgid(nobody.pw_gid).gr_name}"

    def start(self, timeout_s: float = 30.0) -> str:
        conf = self.workdir / "nginx.conf"
        conf.write_text(nginx_config(self.port, self.upstream_ports, self.workdir,
                                     self.extra_upstreams, user=self._worker_user()))
        self.process = subprocess.Popen(
            [find_nginx(), "-p", str(self.workdir), "-c", str(conf), "-e",
             str(self.workdir / "error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent)  # noqa: PLW1509 - one prctl call
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"{self.url}/healthz", timeout=1)
                return self.url  # nginx answers (whatever the replicas say)
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.workdir / "error.log")
                raise RuntimeError("nginx did not start: "
                                   + (log.read_text()[-2000:] if log.exists() else "no log"))
            time.sleep(0.05)  # polling a port that is not open yet: no event to wait on

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish requests in flight
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class Replica:
    name: str
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    """What `Cluster.run(...)` started: the balancer's URL, the replicas, the job workers."""

    url: str
    redis_url: str
    replicas: list[Replica]
    workers: list[subprocess.Popen]
    nginx: Nginx
    logs: Path
    _closers: list = field(default_factory=list)

    def kill(self, replica: Replica) -> None:
        """SIGKILL one API replica (and its compute children, in its process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(replica.process.pid, signal.SIGKILL)
        replica.process.wait(timeout=10)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _stop(process: subprocess.Popen, group: bool = True) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextlib.contextmanager
def run(api: int = 3, workers: int = 2, port: int | None = None, redis_url: str | None = None,
        env: Mapping[str, str] | None = None,
        start_timeout_s: float = START_TIMEOUT_S) -> Iterator[Cluster]:
    """Start Redis (unless `redis_url`), `api` API replicas, `workers` job workers and nginx in
    front; yield the cluster once every replica answers /readyz; stop everything after."""
    base_env = {**os.environ, **(env or {})}
    logs = Path(tempfile.mkdtemp(prefix="medseg-replicas-"))
    embedded = None
    replicas: list[Replica] = []
    job_workers: list[subprocess.Popen] = []
    nginx: Nginx | None = None
    try:
        if redis_url is None:
            embedded = EmbeddedRedis()
            redis_url = embedded.start()
        common = {**base_env, "MEDSEG_REDIS_URL": redis_url, "MEDSEG_RUN_WORKER": "0",
                  "MEDSEG_WORKERS": "1", "MEDSEG_HOST": "127.0.0.1"}
        for i in range(1, api + 1):
            replica_port = free_port()
            log = logs / f"api-{i}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "medseg.main"], stdout=out, stderr=subprocess.STDOUT,
                    env={**common, "MEDSEG_PORT": str(replica_port), "MEDSEG_REPLICA": f"api-{i}"},
                    # its own group: kill() takes its children too; it dies with this process
                    start_new_session=True, preexec_fn=die_with_parent)  # noqa: PLW1509
            replicas.append(Replica(f"api-{i}", replica_port, process, log))
        for i in range(1, workers + 1):
            with (logs / f"worker-{i}.log").open("wb") as out:
                job_workers.append(subprocess.Popen(
                    [sys.executable, "-m", "medseg.worker", "--name", f"medseg.worker-{i}"],
                    stdout=out, stderr=subprocess.STDOUT, env=common, start_new_session=True,
                    preexec_fn=die_with_parent))  # noqa: PLW1509 - one prctl call
        deadline = time.monotonic() + start_timeout_s
        for replica in replicas:
            while not _ready(replica.url):
                if replica.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"replica {replica.name} did not start:\n"
                                       + replica.log.read_text(errors="replace")[-3000:])
                time.sleep(0.1)  # polling a starting process's port: no event to wait on
        nginx = Nginx([r.port for r in replicas], port)
        url = nginx.start()
        yield Cluster(url, redis_url, replicas, job_workers, nginx, logs)
    finally:
        if nginx is not None:
            nginx.stop()
        for replica in replicas:
            _stop(replica.process)
        for worker in job_workers:
            _stop(worker)
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(logs, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m medseg.replicas", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", type=int, default=3, help="API replicas (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="job workers (default 2)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")),
                        help="nginx's loopback port (default $PORT or 8080)")
    args = parser.parse_args(argv)
    redis_url = os.environ.get("MEDSEG_REDIS_URL") or os.environ.get("REDIS_URL")
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # sigwait takes them, not Python
    with run(args.api, args.workers, args.port, redis_url) as cluster:
        names = ", ".join(f"{r.name} :{r.port}" for r in cluster.replicas)
        print(f"medseg: {len(cluster.replicas)} API replicas ({names}) and "
              f"{len(cluster.workers)} job workers behind nginx at {cluster.url} "
              f"(logs in {cluster.logs}); Ctrl-C stops them", flush=True)
        signal.sigwait(stop_signals)


if __name__ == "__main__":
    main()
