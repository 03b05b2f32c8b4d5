"""Latency benchmark: `make bench` (or `python -m medseg_bench.latency`). Prints a table.

Starts its own Redis and API process (dev mode, loopback), uploads a synthetic 512x512x300
int16 CT-like volume, then times session creation, 2D clicks on a 512x512 slice, 3D clicks on
an object whose region of interest is about 128^3, undo, 2D refinement clicks (a background
click inside the mask on the same slice) and 3D refinement clicks (a second volume, 3 x 1.5 x
1.5 mm, whose 3D clicks have a 64x128x128 region of interest: a foreground click in a lobe the
first click left out, then a background click inside the mask), MIDeepSeg initial segmentation from
interior margin points and refinement clicks (2D on a 512x512 slice, 3D on a ~64^3-class
region; when the server lists the EGD models), and export, end to end over HTTP and on the
server (the `Server-Timing` header), plus the size of each delta against the full mask.
BIFSeg rows: a `bifseg` box around the 'liver' on a 512x512 slice (2D), then a fine-tuning
job on it (supervised, one scribble, the paper's 4 x 20 iterations) through the API's own
worker: HTTP = POST until the client saw it succeed (polling every 10 ms), server = the job's
run time in the worker (its `timings_ms.run`). `--only mideepseg|bifseg` runs just those rows.

With the refinement rows (`--only refine`): 3D first clicks on a 65x129x129 ROI, the second
volume at 1.875 x 0.9375 x 0.9375 mm, by geodesic-graphcut (the default) and by slicewise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from contextlib import contextmanager

import httpx
import nibabel as nib
import numpy as np
from scipy import ndimage

from medseg.store.embedded import EmbeddedRedis, free_port


def synthetic_ct(shape=(300, 512, 512), seed=0) -> tuple[np.ndarray, dict[str, tuple]]:
    """int16 (Z, Y, X) HU-like volume: a body ellipse, a large 'liver', a ~100-voxel 'ball'.
    Returns the volume and voxel positions inside each object."""
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    volume = np.full(shape, -1000, dtype=np.int16)
    body = ((y - 256) / 220.0) ** 2 + ((x - 256) / 240.0) ** 2 < 1
    volume[np.broadcast_to(body, shape)] = 30
    liver = ((z - 150) / 90.0) ** 2 + ((y - 240) / 110.0) ** 2 + ((x - 180) / 120.0) ** 2 < 1
    volume[liver] = 90
    ball = ((z - 150) / 45.0) ** 2 + ((y - 260) / 45.0) ** 2 + ((x - 380) / 45.0) ** 2 < 1
    volume[ball] = 160
    # a small ball (radius 26 voxels): its relaxed box is a ~64^3-class MIDeepSeg region
    small = ((z - 150) / 26.0) ** 2 + ((y - 100) / 26.0) ** 2 + ((x - 380) / 26.0) ** 2 < 1
    volume[small] = 130
    noise = rng.normal(0, 12, size=(shape[1], shape[2])).astype(np.float32)
    volume += ndimage.gaussian_filter(noise, 1.0).astype(np.int16)[None]
    return volume, {"liver": (150, 240, 180), "ball": (150, 260, 380), "small": (150, 100, 380)}


def lobed_volume(shape=(96, 256, 256), seed=1) -> tuple[np.ndarray, dict[str, tuple]]:
    """int16 (Z, Y, X) volume for 3 x 1.5 x 1.5 mm voxels: an ellipsoid (radii 36 mm) whose
    high-x half is brighter (a 'lobe' a first click at the dim half leaves out), so a 3D click
    on it has a 64x128x128 ROI (60 mm margins). Returns the volume and the click positions."""
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    c = [n // 2 for n in shape]
    volume = np.full(shape, 30, dtype=np.int16)
    body = ((z - c[0]) / 12.0) ** 2 + ((y - c[1]) / 24.0) ** 2 + ((x - c[2]) / 24.0) ** 2 < 1
    volume[body & (x < c[2])] = 120
    volume[body & (x >= c[2])] = 150
    noise = rng.normal(0, 12, size=shape).astype(np.float32)
    volume += ndimage.gaussian_filter(noise, 1.0).astype(np.int16)
    return volume, {"dim": (c[0], c[1], c[2] - 12), "lobe": (c[0], c[1], c[2] + 12),
                    "dim_edge": (c[0], c[1], c[2] - 20)}


def margin_points(centre, radii, plane: bool) -> list[list[int]]:
    """Interior margin points of an ellipsoid: 2 voxels inside each in-plane extreme, and
    through-plane too unless `plane` (4 points in 2D, 6 in 3D)."""
    points = []
    for axis in (1, 2) if plane else (0, 1, 2):
        for sign in (-1, 1):
            p = list(centre)
            p[axis] += sign * (radii[axis] - 2)
            points.append(p)
    return points


def nifti_bytes(volume: np.ndarray, spacing=(0.8, 0.8, 1.5)) -> bytes:
    """`spacing` (x, y, z) mm."""
    image = nib.Nifti1Image(volume.transpose(2, 1, 0), np.diag([*spacing, 1.0]))
    return image.to_bytes()  # uncompressed .nii: upload cost, not gzip, is what we time


@contextmanager
def server(**env_overrides: str):
    """An API process (dev mode, loopback) against a Redis of its own; `env_overrides` are
    extra MEDSEG_* settings (e.g. MEDSEG_WORKERS for more uvicorn processes)."""
    with EmbeddedRedis() as redis_url:
        port = free_port()
        env = {**os.environ, "MEDSEG_REDIS_URL": redis_url, "MEDSEG_PORT": str(port),
               "MEDSEG_HOST": "127.0.0.1", "MEDSEG_DEV_MODE": "1", "MEDSEG_API_KEYS": "",
               "MEDSEG_LOG_LEVEL": "WARNING", **env_overrides}
        env.pop("MEDSEG_API_KEYS_FILE", None)
        process = subprocess.Popen([sys.executable, "-m", "medseg.main"], env=env,
                                   stdout=subprocess.DEVNULL,
                                   stderr=(None if os.environ.get("MEDSEG_BENCH_LOGS")
                                           else subprocess.DEVNULL))
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=10)


class Timer:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[list[float], list[float]]] = {}
        # per row, the answer's own stages (`timings_ms` of an interaction: load, compute,
        # encode) and the rest of the server time (lock, hand-over to the compute process,
        # commit, HTTP), in ms
        self.stages: dict[str, dict[str, list[float]]] = {}

    def call(self, name: str, fn, *args, **kwargs) -> httpx.Response:
        start = time.perf_counter()
        response = fn(*args, **kwargs)
        elapsed = (time.perf_counter() - start) * 1000
        response.raise_for_status()
        server_ms = float(response.headers["Server-Timing"].split("dur=")[1])
        e2e, srv = self.rows.setdefault(name, ([], []))
        e2e.append(elapsed)
        srv.append(server_ms)
        stages = (response.json().get("timings_ms") or {}) if response.headers.get(
            "content-type", "").startswith("application/json") else {}
        if isinstance(stages, dict) and {"load", "compute"} <= set(stages):
            row = self.stages.setdefault(name, {})
            for stage in ("load", "compute", "encode"):
                row.setdefault(stage, []).append(float(stages.get(stage, 0.0)))
            row.setdefault("rest", []).append(
                server_ms - sum(float(stages.get(k, 0.0)) for k in ("load", "compute", "encode")))
        return response


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def bifseg_rows(http: httpx.Client, timer: Timer, sid: str, zyx, repeats: int) -> None:
    """A 2D `bifseg` box around the object at `zyx`, then a supervised fine-tuning job."""
    z, y, x = zyx
    box = {"lo": [z, y - 110, x - 120], "hi": [z, y + 110, x + 120]}
    for _ in range(repeats):
        seg = http.post(f"/v1/sessions/{sid}/segments", json={}).json()["id"]
        url = f"/v1/sessions/{sid}/segments/{seg}"
        timer.call("box (bifseg) 2D, 512x512 slice, box 221x241", http.post, f"{url}/interactions",
                   json={"type": "box", "method": "bifseg", "dim": "2d",
                         "plane": {"axis": "z", "index": z}, "box": box})
        start = time.perf_counter()
        job = http.post(f"{url}/finetune", json={"mode": "supervised", "scribbles": [
            {"path": [[z, y, x - 40], [z, y, x + 40]], "foreground": True}]}).json()
        while job["state"] in ("queued", "running"):
            time.sleep(0.01)
            job = http.get(f"/v1/jobs/{job['id']}").json()
        if job["state"] != "succeeded":
            raise RuntimeError(f"fine-tuning job {job['state']}: {job['error']}")
        e2e, srv = timer.rows.setdefault("finetune job 2D (4 x 20 iterations), submit to done",
                                         ([], []))
        e2e.append((time.perf_counter() - start) * 1000)
        srv.append(job["timings_ms"]["run"])


def run(repeats: int, only: str | None = None) -> None:
    volume, points = synthetic_ct()
    upload = nifti_bytes(volume)
    timer = Timer()
    sizes = []
    with server() as base, httpx.Client(base_url=base, timeout=600) as http:
        sessions = [timer.call("create session 512x512x300 int16", http.post, "/v1/sessions",
                               files=[("files", ("ct.nii", upload))]).json()["id"]
                    for _ in range(max(2, repeats // 10) if only is None else 1)]
        sid = sessions[0]
        if only in (None, "bifseg"):
            bifseg_rows(http, timer, sid, points["liver"], max(3, repeats // 3))
        model_free = (("2D click, 512x512 slice", points["liver"], "2d"),
                      ("3D click, 3D ROI around a ball", points["ball"], "3d"))
        for label, zyx, dim in model_free if only in (None, "refine") else ():
            for i in range(repeats if dim == "2d" else max(3, repeats // 3)):
                seg = http.post(f"/v1/sessions/{sid}/segments", json={}).json()["id"]
                url = f"/v1/sessions/{sid}/segments/{seg}"
                body: dict[str, object] = {"type": "click", "dim": dim,
                                           "clicks": [{"zyx": list(zyx)}]}
                if dim == "2d":
                    body["plane"] = {"axis": "z", "index": zyx[0]}
                change = timer.call(label, http.post, f"{url}/interactions", json=body).json()
                if i == 0:
                    full = http.get(f"{url}/mask").json()
                    raw_bits = int(np.prod(volume.shape)) // 8
                    roi = change["roi"]
                    roi_shape = [h - lo + 1 for lo, h in zip(roi["lo"], roi["hi"])]
                    sizes.append((label, len(change["delta"]["data"]), len(full["data"]), raw_bits,
                                  change["delta"]["changed_voxels"], "x".join(map(str, roi_shape))))
                timer.call("undo", http.post, f"{url}/undo")
                http.post(f"{url}/redo")
                if dim == "2d":  # a background click inside the mask, near its edge
                    z, y, x = zyx
                    body = {"type": "click", "dim": "2d", "plane": {"axis": "z", "index": z},
                            "clicks": [{"zyx": [z, y, x + 40], "foreground": False}]}
                    label2 = "2D refinement click (bg inside the mask), 512x512 slice"
                    change = timer.call(label2, http.post, f"{url}/interactions",
                                        json=body).json()
                    if i == 0:
                        roi = change["roi"]
                        sizes.append((label2, len(change["delta"]["data"]), 0, raw_bits,
                                      change["delta"]["changed_voxels"], "x".join(
                                          str(h - lo + 1) for lo, h in zip(roi["lo"],
                                                                           roi["hi"]))))
        if only in (None, "refine"):
            refine3d_rows(http, timer, sizes, repeats)
            first3d_rows(http, timer, sizes, repeats)
        if only in (None, "mideepseg"):
            mideepseg_rows(http, timer, sid, points, repeats)
        for _ in range(max(2, repeats // 10) if only is None else 0):
            timer.call("export label map (NIfTI)", http.get, f"/v1/sessions/{sid}/export")
        for other in sessions:
            http.delete(f"/v1/sessions/{other}")
    print_table(timer, sizes)


def refine3d_rows(http: httpx.Client, timer: Timer, sizes: list, repeats: int) -> None:
    """3D first click on the dim half of `lobed_volume`'s ellipsoid, then two refinement
    clicks on the same segment: foreground in the bright lobe it missed, then background near
    the dim half's edge, inside the mask (each ROI about 64x128x128 voxels)."""
    volume, points = lobed_volume()
    sid = http.post("/v1/sessions", files=[("files", ("lobed.nii", nifti_bytes(
        volume, (1.5, 1.5, 3.0))))]).json()["id"]
    for i in range(max(3, repeats // 3)):
        seg = http.post(f"/v1/sessions/{sid}/segments", json={}).json()["id"]
        url = f"/v1/sessions/{sid}/segments/{seg}"
        clicks = [("3D first click, lobed ellipsoid (3 x 1.5 x 1.5 mm)", points["dim"], True),
                  ("3D refinement click (fg in a missed lobe, bg in the mask), ~64x128x128 ROI",
                   points["lobe"], True),
                  ("3D refinement click (fg in a missed lobe, bg in the mask), ~64x128x128 ROI",
                   points["dim_edge"], False)]
        for label, zyx, fg in clicks:
            body = {"type": "click", "dim": "3d",
                    "clicks": [{"zyx": list(zyx), "foreground": fg}]}
            change = timer.call(label, http.post, f"{url}/interactions", json=body).json()
            if i == 0:
                roi = change["roi"]
                sizes.append((f"{label} ({'fg' if fg else 'bg'})", len(change["delta"]["data"]),
                              0, int(np.prod(volume.shape)) // 8,
                              change["delta"]["changed_voxels"],
                              "x".join(str(h - lo + 1) for lo, h in zip(roi["lo"], roi["hi"]))))
    http.delete(f"/v1/sessions/{sid}")


def first3d_rows(http: httpx.Client, timer: Timer, sizes: list, repeats: int) -> None:
    """3D first clicks whose ROI is 65x129x129 (issue 13 item 3's 128x128x64): the lobed
    volume at 1.875 x 0.9375 x 0.9375 mm, so the 60 mm margin spans 32 slices and 64 pixels
    each way; the default method (geodesic-graphcut) and `slicewise` (its `auto` start: the
    2D click on the click's slice, propagated, tied by a 3D cut), each on a new segment."""
    volume, points = lobed_volume()
    sid = http.post("/v1/sessions", files=[("files", ("lobed.nii", nifti_bytes(
        volume, (0.9375, 0.9375, 1.875))))]).json()["id"]
    for i in range(max(3, repeats // 3)):
        for method in ("geodesic-graphcut", "slicewise"):
            seg = http.post(f"/v1/sessions/{sid}/segments", json={}).json()["id"]
            label = f"3D first click ({method}), a 65x129x129 3D click ROI"
            change = timer.call(label, http.post, f"/v1/sessions/{sid}/segments/{seg}/interactions",
                                json={"type": "click", "dim": "3d", "method": method,
                                      "clicks": [{"zyx": list(points["dim"])}]}).json()
            if i == 0:
                roi = change["roi"]
                sizes.append((label, len(change["delta"]["data"]), 0,
                              int(np.prod(volume.shape)) // 8, change["delta"]["changed_voxels"],
                              "x".join(str(h - lo + 1) for lo, h in zip(roi["lo"], roi["hi"]))))
    http.delete(f"/v1/sessions/{sid}")


def mideepseg_rows(http: httpx.Client, timer: Timer, sid: str, points: dict, repeats: int) -> None:
    """MIDeepSeg initial (points) and refinement (click) rows, 2D on the liver's 512x512
    slice and 3D on the small ball, for each dims whose EGD model the server lists."""
    dims = {m["dims"] for m in http.get("/v1/models").json()["models"]
            if m["task"] == "mideepseg" and m["encoding"] == "egd"}
    cases = [(2, "2D", points["liver"], (90, 110, 120)), (3, "3D", points["small"], (26, 26, 26))]
    for d, label, centre, radii in cases:
        if d not in dims:
            print(f"(no {label} mideepseg-egd model: its rows are skipped)")
            continue
        plane = {"axis": "z", "index": centre[0]} if d == 2 else None
        where: dict[str, object] = {"dim": "2d", "plane": plane} if d == 2 else {"dim": "3d"}
        region = "512x512 slice, liver" if d == 2 else "small ball, ~72^3 box"
        for i in range(repeats if d == 2 else max(3, repeats // 3)):
            seg = http.post(f"/v1/sessions/{sid}/segments", json={}).json()["id"]
            url = f"/v1/sessions/{sid}/segments/{seg}"
            body: dict[str, object] = {"type": "points",
                                       "points": margin_points(centre, radii, d == 2), **where}
            timer.call(f"MIDeepSeg {label} initial (points; {region})", http.post,
                       f"{url}/interactions", json=body)
            click = list(centre)
            click[2] += radii[2] // 2 * (1 if i % 2 else -1)
            body = {"type": "click", "method": "mideepseg", "clicks": [{"zyx": click}], **where}
            timer.call(f"MIDeepSeg {label} refinement click (IF-GC)", http.post,
                       f"{url}/interactions", json=body)


def print_table(timer: Timer, sizes) -> None:
    print("\n| operation | n | HTTP p50 ms | HTTP p95 ms | server p50 ms | server p95 ms |")
    print("|---|---|---|---|---|---|")
    for name, (e2e, srv) in timer.rows.items():
        print(f"| {name} | {len(e2e)} | {pct(e2e, 50):.1f} | {pct(e2e, 95):.1f} | "
              f"{pct(srv, 50):.1f} | {pct(srv, 95):.1f} |")
    if timer.stages:
        print("\n| operation | load p50 ms | compute p50 ms | encode p50 ms | rest p50 ms |")
        print("|---|---|---|---|---|")
        for name, row in timer.stages.items():
            print(f"| {name} | " + " | ".join(f"{pct(row[k], 50):.1f}" for k in (
                "load", "compute", "encode", "rest")) + " |")
    print("\n| interaction | delta (base64 bytes) | full mask rle/1 (base64 bytes) | "
          "full mask raw bits (bytes) | changed voxels | ROI (z x y x x) |")
    print("|---|---|---|---|---|---|")
    for label, delta, full, raw, changed, roi in sizes:
        print(f"| {label} | {delta} | {full} | {raw} | {changed} | {roi} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=30, help="clicks per row (default 30)")
    parser.add_argument("--only", choices=["mideepseg", "bifseg", "refine"], default=None,
                        help="only session creation and these rows")
    args = parser.parse_args()
    run(args.repeats, args.only)


if __name__ == "__main__":
    main()
