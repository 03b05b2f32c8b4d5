"""`medseg-worker` / `python -m medseg.worker`: run jobs from the Redis queue.

An RQ `Worker` forks one process per job (a crash or a leak stays in that process). On start
it fails the jobs that a dead worker left "running"; when a job process dies under it (killed,
out of memory) it fails that job at once with the signal as the reason. `--no-fork` runs jobs
in the worker process itself (RQ's SimpleWorker): less overhead per job, no isolation; a job
whose worker dies is then failed when its heartbeat runs out.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys

from rq import SimpleWorker, Worker

from medseg import builtin
from medseg.jobs import queue, runner, schedule
from medseg.jobs.settings import WorkerSettings
from medseg.store import Store, archive


def _horse_killed(job, retpid, ret_val, rusage) -> None:
    """RQ calls this in the worker when the job process ended without finishing the job."""
    killed = bool(ret_val) and os.WIFSIGNALED(ret_val)
    signal_text = f" by signal {os.WTERMSIG(ret_val)}" if killed else ""
    session_id, job_id = job.args[0], job.args[1]
    runner.worker_process().store.jobs.fail_if_running(
        session_id, job_id, "worker_lost",
        f"the job process (pid {retpid}) was killed{signal_text} before it finished; "
        "nothing was applied")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="medseg-worker", description=__doc__)
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    parser.add_argument("--name", default=None, help="worker name (default host.pid)")
    parser.add_argument("--no-fork", action="store_true",
                        help="run jobs in this process (lower overhead, no per-job isolation)")
    parser.add_argument("--queues", nargs="+", choices=schedule.PRIORITIES,
                        default=list(schedule.PRIORITIES),
                        help="the priority queues it takes from, in this order (default: "
                             "interactive normal batch), e.g. --queues interactive for a worker "
                             "kept for what users wait for")
    args = parser.parse_args(argv)
    settings = WorkerSettings()
    kinds = builtin.build(settings.plugins).job_kinds
    store = Store.connect(settings.redis_url, settings.session_ttl_s, settings.cache_mb << 20,
                          job_heartbeat_s=settings.job_heartbeat_s)
    runner.configure(runner.WorkerProcess(store, kinds, forked=not args.no_fork))
    for kind in kinds:  # e.g. import heavy modules once here, not in every forked job process
        if kind.warm is not None:
            kind.warm()
    reaped = store.jobs.reap()
    connection = store.jobs.redis
    name = args.name or f"medseg.{socket.gethostname()}.{os.getpid()}"
    worker_class = SimpleWorker if args.no_fork else Worker
    # interactive first: RQ takes from the first non-empty queue of the list (jobs/schedule.py)
    worker = worker_class([schedule.queue_for(p, connection) for p in args.queues],
                          connection=connection,
                          name=name, work_horse_killed_handler=_horse_killed,
                          job_monitoring_interval=5)
    print(f"medseg-worker {name}: kinds {kinds.names()}; failed {len(reaped)} orphaned job(s)",
          file=sys.stderr, flush=True)
    logging.getLogger("rq.worker").setLevel(logging.WARNING)
    # /readyz counts this worker while its presence beats (it drops out within the heartbeat
    # window once the process is gone, however it ended)
    with contextlib.ExitStack() as running:
        running.enter_context(queue.WorkerPresence(store, name, settings.job_heartbeat_s))
        if settings.archive_dir is not None:  # archive sessions before they expire
            running.enter_context(archive.ArchiveSweeper(
                connection, settings.archive_dir.expanduser().resolve(), settings.archive_lead_s,
                settings.archive_retention_days * 86400, settings.archive_sweep_s))
        worker.work(burst=args.burst, logging_level="WARNING", with_scheduler=False)


if __name__ == "__main__":
    main()
