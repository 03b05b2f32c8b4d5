"""Job queue overhead: `python -m medseg_bench.jobs [--n 50]`. Prints a markdown table.

Starts its own Redis and one `medseg-worker` process, then submits `noop` jobs one at a time
(the worker idle, as a user's job usually finds it), with RQ's forking worker and with
`--no-fork` and reads each record: queue = created ->
started (the record's timestamps: enqueue, RQ's pop, the fork of the job process, our start
transaction), run = started -> finished, and end to end as the submitting client sees it
(submit -> the record says succeeded, polled every 2 ms).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

from medseg.jobs import queue
from medseg.jobs.noop import NOOP
from medseg.store import Store
from medseg.store.embedded import EmbeddedRedis


def measure(url: str, n: int) -> dict[str, list[float]]:
    store = Store.connect(url, 3600)
    kind = NOOP
    rows: dict[str, list[float]] = {"queue": [], "run": [], "end to end": []}
    for _ in range(n):
        t0 = time.perf_counter()
        record = queue.submit(store, kind, "bench", "b" * 32, None, {}, None)
        while not (record := store.jobs.get(record.id)).done:
            time.sleep(0.002)
        rows["end to end"].append(time.perf_counter() - t0)
        rows["queue"].append(record.timings["queue"])
        rows["run"].append(record.timings["run"])
    return rows


def run_worker(n: int, extra: list[str]) -> dict[str, list[float]]:
    with EmbeddedRedis() as url:
        env = {**os.environ, "MEDSEG_REDIS_URL": url}
        worker = subprocess.Popen([sys.executable, "-m", "medseg.worker", *extra], env=env,
                                  stderr=subprocess.PIPE)
        assert worker.stderr is not None  # stderr=PIPE
        try:
            worker.stderr.readline()  # the banner: kinds loaded, about to pop
            time.sleep(0.5)
            measure(url, 3)  # warm-up
            return measure(url, n)
        finally:
            worker.terminate()
            worker.wait(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="medseg_bench.jobs", description=__doc__)
    parser.add_argument("--n", type=int, default=50)
    args = parser.parse_args(argv)
    print("| job overhead (noop job, idle worker) | n | p50 ms | p95 ms |")
    print("|---|---|---|---|")
    for label, extra in (("fork per job (default)", []), ("--no-fork", ["--no-fork"])):
        for name, values in run_worker(args.n, extra).items():
            ms = 1000 * np.asarray(values)
            print(f"| {name}, {label} | {len(ms)} | {np.percentile(ms, 50):.1f} | "
                  f"{np.percentile(ms, 95):.1f} |", flush=True)


if __name__ == "__main__":
    main()
