"""`medseg-server` / `python -m medseg.main`: serve the API (starting an embedded Redis when no
REDIS_URL is configured), or `hash-key TENANT` to mint an API key and its config entry."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import uvicorn
from pydantic import ValidationError

from medseg.api.auth import new_key_entry
from medseg.api.settings import Settings
from medseg.store.embedded import EmbeddedRedis, die_with_parent


def serve(workers: int) -> None:
    try:
        settings = Settings()
    except (ValidationError, ValueError) as exc:
        sys.exit(f"medseg: configuration error: {exc}")
    redis_server = None
    if not settings.redis_url:
        redis_server = EmbeddedRedis(data_dir=settings.data_dir / "redis")
        # worker processes read their settings from the environment
        os.environ["MEDSEG_REDIS_URL"] = redis_server.start()
        print(f"medseg: started embedded Redis at {redis_server.url} "
              f"(data in {settings.data_dir / 'redis'})", flush=True)
    worker = start_worker() if settings.run_worker else None
    print(f"medseg: serving on http://{settings.host}:{settings.port} "
          f"({'dev mode, no API keys' if not settings.key_hashes else 'API keys required'})",
          flush=True)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    print(f"medseg: open the viewer at http://{host}:{settings.port}/ui/", flush=True)
    try:
        uvicorn.run("medseg.api.app:create_app", factory=True, host=settings.host,
                    port=settings.port, workers=workers, log_level="warning")
    finally:
        if worker and worker.poll() is None:
            worker.terminate()
            worker.wait(timeout=10)
        if redis_server:
            redis_server.stop()


def start_worker() -> subprocess.Popen:
    """One `medseg-worker` process beside the API (it reads MEDSEG_REDIS_URL from the
    environment set above). It dies with this process (PR_SET_PDEATHSIG), however that dies;
    run more with `medseg-worker` or set MEDSEG_RUN_WORKER=0 to run them elsewhere."""
    process = subprocess.Popen([sys.executable, "-m", "medseg.jobs.worker"],
                               preexec_fn=die_with_parent)  # noqa: PLW1509 - one prctl call, before any thread
    print(f"medseg: started job worker (pid {process.pid})", flush=True)
    return process


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="medseg-server", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    serve_cmd = sub.add_parser("serve", help="serve the API (default)")
    serve_cmd.add_argument("--workers", type=int, default=int(os.environ.get("MEDSEG_WORKERS", "1")))
    key_cmd = sub.add_parser("hash-key", help="mint an API key for a tenant")
    key_cmd.add_argument("tenant")
    args = parser.parse_args(argv)
    if args.command == "hash-key":
        key, entry = new_key_entry(args.tenant)
        print(f"give the client this key:  {key}\nadd this to MEDSEG_API_KEYS: {entry}")
        return
    serve(getattr(args, "workers", int(os.environ.get("MEDSEG_WORKERS", "1"))))


if __name__ == "__main__":
    run()
