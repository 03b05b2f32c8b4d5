"""Load benchmark: `make bench-load` (or `python -m medseg_bench.load`). Prints a table.

For each number of API processes (`--processes`, uvicorn workers of `python -m medseg.main`
against a Redis of its own) and each number of concurrent clients (`--clients`), every client
uploads the shared CT series (totalseg/ct_dicom, 20 slices of 512 x 512: the create-session
row), adds a segment and then, for `--duration` seconds, clicks 2D geodesic-graphcut clicks on
the liver's slices (three foreground clicks inside the reference liver, then a background
click just outside it, on each slice), one request at a time, each client in its own session.
A new segment is started every few clicks (not timed), as a user moves on to the next
structure.

Columns: clicks/s = clicks answered 200 per second of the clicking phase, all clients
together; p50 / p95 = latency of those clicks as the client saw it; errors = the share of
clicks that got no 200 (any other status, or no answer); create-session p95 = the uploads,
all clients at once.

`--replicas 1 2 3` runs the same load through nginx in front of that many API replicas (one
uvicorn process each, `medseg.replicas`, one job worker) instead of one server with
`--processes`; `--job-clients K` adds K batch clients that keep submitting propagation jobs
(graphcut-seeds) on their own sessions meanwhile, and `--think S` makes each annotator pause S
seconds between clicks (a human pace). The replica table adds: held = whether the p95 stays
within twice the idle p95 (one client, no jobs, measured first on each replica count), jobs
done, and Redis memory per session (used_memory growth over the sessions the run opened).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nibabel as nib
import numpy as np
from scipy import ndimage

from medseg_bench.latency import pct, server

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("MEDSEG_SHARED_DATA", ROOT.parent / "shared" / "data"))
TOTALSEG = SHARED_DATA / "totalseg"

CLICKS_PER_SEGMENT = 8


def series() -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted((TOTALSEG / "ct_dicom").iterdir())]


def liver_clicks(count: int = 256, seed: int = 0) -> list[dict]:
    """2D click interactions on the slices of the series, four on each: three on foreground
    voxels of the reference liver, then one on a background voxel in a 10-voxel band around it
    (CLICKS_PER_SEGMENT is a multiple of four, so a segment's background click always follows
    its foreground clicks on that slice)."""
    labels = json.loads((TOTALSEG / "labels.json").read_text())["ct_dicom_seg.nii.gz"]
    liver_label = next(int(k) for k, v in labels.items() if v == "liver")
    seg = np.asanyarray(nib.Nifti1Image.from_filename(TOTALSEG / "ct_dicom_seg.nii.gz").dataobj)
    # the series' (z, y, x) grid is the NIfTI's with its rows the other way (see the README)
    liver = (seg.transpose(2, 1, 0) == liver_label)[:, ::-1, :]
    slices = [z for z in range(liver.shape[0]) if liver[z].sum() > 2000]
    rng = np.random.default_rng(seed)
    clicks = []
    for i in range(count):
        z = slices[(i // 4) % len(slices)]  # four clicks a slice, the background one last
        inside = ndimage.binary_erosion(liver[z], iterations=3)
        foreground = i % 4 != 3
        region = inside if foreground else (
            ndimage.binary_dilation(liver[z], iterations=10) & ~liver[z])
        ys, xs = np.nonzero(region)
        k = int(rng.integers(len(ys)))
        clicks.append({"type": "click", "dim": "2d", "method": "geodesic-graphcut",
                       "plane": {"axis": "z", "index": z},
                       "clicks": [{"zyx": [z, int(ys[k]), int(xs[k])],
                                   "foreground": foreground}]})
    return clicks


@dataclass
class Results:
    create_ms: list[float] = field(default_factory=list)
    click_ms: list[float] = field(default_factory=list)
    errors: int = 0
    problems: dict[str, int] = field(default_factory=dict)

    def failed(self, what: str) -> None:
        self.errors += 1
        self.problems[what] = self.problems.get(what, 0) + 1


async def client_run(base: str, index: int, files, clicks: list[dict], start: asyncio.Event,
                     stop_at: list[float], results: Results, think_s: float = 0.0) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        began = time.perf_counter()
        response = await http.post("/v1/sessions", files=[("files", f) for f in files])
        results.create_ms.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
        sid = response.json()["id"]
        try:
            await start.wait()
            n = index * 28  # each its own walk, from a slice's first click (a multiple of 4)
            while time.perf_counter() < stop_at[0]:
                segment = (await http.post(f"/v1/sessions/{sid}/segments", json={})).json()["id"]
                url = f"/v1/sessions/{sid}/segments/{segment}/interactions"
                for _ in range(CLICKS_PER_SEGMENT):
                    if time.perf_counter() >= stop_at[0]:
                        break
                    body = clicks[n % len(clicks)]
                    n += 1
                    began = time.perf_counter()
                    try:
                        answer = await http.post(url, json=body)
                    except httpx.HTTPError as exc:
                        results.failed(type(exc).__name__)
                        continue
                    if answer.status_code == 200:
                        results.click_ms.append((time.perf_counter() - began) * 1000)
                    else:
                        results.failed(f"{answer.status_code} {answer.json().get('error')}")
                    if think_s:
                        await asyncio.sleep(think_s)  # the annotator looks at the result
        finally:
            await http.delete(f"/v1/sessions/{sid}")


async def job_client(base: str, files, clicks: list[dict], start: asyncio.Event,
                     stop_at: list[float], done: list[int]) -> None:
    """A batch client: one session, one clicked slice, then propagation jobs back to back."""
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        sid = (await http.post("/v1/sessions", files=[("files", f) for f in files])).json()["id"]
        try:
            segment = (await http.post(f"/v1/sessions/{sid}/segments", json={})).json()["id"]
            url = f"/v1/sessions/{sid}/segments/{segment}"
            body = clicks[0]
            await http.post(f"{url}/interactions", json=body)
            await start.wait()
            while time.perf_counter() < stop_at[0]:
                submitted = await http.post(f"{url}/propagate", json={
                    "axis": "z", "start_index": body["plane"]["index"],
                    "method": "graphcut-seeds"})
                if submitted.status_code != 202:
                    print(f"  job client: {submitted.status_code} {submitted.text[:200]}")
                    return
                job = submitted.json()
                while time.perf_counter() < stop_at[0]:
                    state = (await http.get(f"/v1/jobs/{job['id']}")).json()["state"]
                    if state in ("succeeded", "failed", "cancelled"):
                        done[0] += state == "succeeded"
                        break
                    await asyncio.sleep(0.5)
        finally:
            await http.delete(f"/v1/sessions/{sid}")


async def one_load(base: str, clients: int, duration_s: float, files, clicks,
                   think_s: float = 0.0, job_clients: int = 0) -> dict:
    results = Results()
    start = asyncio.Event()
    stop_at = [float("inf")]
    jobs_done = [0]
    tasks = [asyncio.create_task(client_run(base, i, files, clicks, start, stop_at, results,
                                            think_s))
             for i in range(clients)]
    batch = [asyncio.create_task(job_client(base, files, clicks, start, stop_at, jobs_done))
             for _ in range(job_clients)]
    # every client has its session (or failed to get one) before the clicking starts
    while len(results.create_ms) < clients and not any(t.done() for t in tasks):
        await asyncio.sleep(0.05)
    began = time.perf_counter()
    stop_at[0] = began + duration_s
    start.set()
    await asyncio.gather(*tasks, *batch)
    elapsed = min(time.perf_counter(), stop_at[0]) - began
    attempts = len(results.click_ms) + results.errors
    return {"clicks/s": len(results.click_ms) / elapsed,
            "p50": pct(results.click_ms, 50) if results.click_ms else float("nan"),
            "p95": pct(results.click_ms, 95) if results.click_ms else float("nan"),
            "errors": results.errors / attempts if attempts else 0.0,
            "create_p95": pct(results.create_ms, 95), "clicks": len(results.click_ms),
            "problems": results.problems, "jobs": jobs_done[0]}


def run_replicas(client_counts: list[int], replica_counts: list[int], duration_s: float,
                 think_s: float, job_clients: int) -> None:
    """The load through nginx in front of 1, 2, 3... API replicas (medseg.replicas)."""
    import redis

    from medseg import replicas

    files, clicks = series(), liver_clicks()
    env = {"MEDSEG_DEV_MODE": "1", "MEDSEG_API_KEYS": "", "MEDSEG_LOG_LEVEL": "WARNING",
           "MEDSEG_TENANT_MAX_SESSIONS": "0", "MEDSEG_TENANT_MAX_MB": "0",
           "MEDSEG_TENANT_MAX_JOBS": "0"}
    rows = []
    for count in replica_counts:
        with replicas.run(api=count, workers=1, env=env) as cluster, \
                redis.Redis.from_url(cluster.redis_url) as connection:
            idle = asyncio.run(one_load(cluster.url, 1, duration_s, files, clicks))
            print(f"  {count} replica(s), idle: p95 {idle['p95']:.0f} ms", flush=True)
            for clients in client_counts:
                before = int(connection.info("memory")["used_memory"])
                row = asyncio.run(_measured(cluster.url, clients, duration_s, files, clicks,
                                            think_s, job_clients, connection))
                row["mb_per_session"] = (row.pop("peak_memory") - before) / (1 << 20) / max(
                    clients + job_clients, 1)
                row["held"] = row["p95"] <= 2 * idle["p95"]
                rows.append((count, clients, idle, row))
                print(f"  {count} replica(s), {clients} clients: {row['clicks/s']:.1f} clicks/s, "
                      f"p95 {row['p95']:.0f} ms, jobs {row['jobs']}"
                      + (f", problems {row['problems']}" if row["problems"] else ""), flush=True)
    print(f"\n| API replicas | clients | clicks/s | p50 ms | p95 ms | idle p95 ms | held (p95 <= "
          f"2x idle) | error rate | jobs done | Redis MB/session |  ({duration_s:g} s each, "
          f"{job_clients} batch job clients, think {think_s:g} s)")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for count, clients, idle, row in rows:
        print(f"| {count} | {clients} | {row['clicks/s']:.1f} | {row['p50']:.0f} | "
              f"{row['p95']:.0f} | {idle['p95']:.0f} | {'yes' if row['held'] else 'no'} | "
              f"{row['errors']:.1%} | {row['jobs']} | {row['mb_per_session']:.1f} |")


async def _measured(base, clients, duration_s, files, clicks, think_s, job_clients,
                    connection) -> dict:
    """`one_load`, sampling Redis's memory while the sessions exist (they are deleted after)."""
    peak = [int(connection.info("memory")["used_memory"])]

    async def sample() -> None:
        while True:
            peak[0] = max(peak[0], int(connection.info("memory")["used_memory"]))
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    try:
        row = await one_load(base, clients, duration_s, files, clicks, think_s, job_clients)
    finally:
        sampler.cancel()
    row["peak_memory"] = peak[0]
    return row


def run(client_counts: list[int], processes: list[int], duration_s: float) -> None:
    files, clicks = series(), liver_clicks()
    rows = []
    for workers in processes:
        with server(MEDSEG_WORKERS=str(workers), MEDSEG_RUN_WORKER="0") as base:
            for clients in client_counts:
                row = asyncio.run(one_load(base, clients, duration_s, files, clicks))
                rows.append((clients, workers, row))
                print(f"  {clients} clients, {workers} API process(es): {row['clicks']} clicks,"
                      f" {row['clicks/s']:.1f}/s, p95 {row['p95']:.0f} ms"
                      + (f", problems {row['problems']}" if row["problems"] else ""), flush=True)
    print(f"\n| clients | API processes | clicks/s | p50 ms | p95 ms | error rate | "
          f"create-session p95 ms |  ({duration_s:g} s of clicking each)")
    print("|---|---|---|---|---|---|---|")
    for clients, workers, row in rows:
        print(f"| {clients} | {workers} | {row['clicks/s']:.1f} | {row['p50']:.0f} | "
              f"{row['p95']:.0f} | {row['errors']:.1%} | {row['create_p95']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 32],
                        help="concurrent clients, one run each (default 8 32)")
    parser.add_argument("--processes", type=int, nargs="+", default=[2],
                        help="API processes (uvicorn workers), one server each (default 2; "
                             "e.g. 1 2 4 to compare)")
    parser.add_argument("--duration", type=float, default=15.0,
                        help="seconds of clicking per run (default 15)")
    parser.add_argument("--replicas", type=int, nargs="+", default=None,
                        help="API replicas behind nginx instead of --processes (e.g. 1 2 3)")
    parser.add_argument("--job-clients", type=int, default=0,
                        help="batch clients submitting propagation jobs meanwhile (--replicas)")
    parser.add_argument("--think", type=float, default=0.0,
                        help="seconds each annotator pauses between clicks (--replicas)")
    args = parser.parse_args()
    if args.replicas:
        run_replicas(args.clients, args.replicas, args.duration, args.think, args.job_clients)
    else:
        run(args.clients, args.processes, args.duration)


if __name__ == "__main__":
    main()
