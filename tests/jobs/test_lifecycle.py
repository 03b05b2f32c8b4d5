"""A job's life with a real Redis and a real worker process: queued -> running (progress) ->
succeeded as one revision; cancel while queued and while running; conflicts; failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from tests.api.helpers import full_mask, new_segment, upload
from tests.jobs.helpers import release_paint, submit_paint, wait_done, wait_step
from tests.live import PYTHONPATH


def _session(client, totalseg):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    return session, new_segment(client, session["id"])


def test_life_cycle_progress_events_and_one_revision(client, store, no_worker, totalseg):
    session, segment = _session(client, totalseg)
    job = submit_paint(store, session, segment, steps=4, step_s=0.1, hold_at=1)
    # no worker runs yet: the job can only be waiting in the queue
    first = client.get(f"/v1/jobs/{job.id}").json()
    assert first["state"] == "queued" and first["base_revision"] == segment["revision"]
    assert first["started_at"] is None and first["progress"]["step"] == 0
    no_worker.start()
    # held after step 1 until released: it can only be running, at exactly that step
    running = wait_step(client, job.id, 1)
    assert running["state"] == "running" and running["started_at"] is not None
    assert running["progress"] == {"step": 1, "total": 4, "message": "slice 0", "loss": 1.0}
    assert running["result_revision"] is None
    release_paint(store, job.id)
    done = wait_done(client, job.id)
    assert done["state"] == "succeeded", done
    assert done["progress"] == {"step": 4, "total": 4, "message": "slice 3", "loss": 0.25}
    assert done["timings_ms"]["queue"] >= 0 and done["timings_ms"]["run"] > 300
    # exactly one new revision, made by the job, on top of the base
    history = client.get(f"/v1/sessions/{session['id']}/segments/{segment['id']}/history").json()
    assert [r["revision"] for r in history["revisions"]] == [
        segment["revision"],
        done["result_revision"],
    ]
    assert history["head"] == done["result_revision"]
    assert full_mask(client, session["id"], segment["id"]).sum() == 4 * 16
    # the event stream replays from the start for a late subscriber and ends with "end"
    with client.stream("GET", f"/v1/jobs/{job.id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = list(response.iter_lines())
    kinds = [line.split(": ", 1)[1] for line in lines if line.startswith("event:")]
    data = [json.loads(line.split(": ", 1)[1]) for line in lines if line.startswith("data:")]
    states = [d["state"] for k, d in zip(kinds, data) if k == "state"]
    assert states == ["queued", "running", "succeeded"] and kinds[-1] == "end"
    assert kinds.count("progress") == 4 and kinds.count("slice") == 4
    assert [d["index"] for k, d in zip(kinds, data) if k == "slice"] == [0, 1, 2, 3]


def test_other_tenants_get_404(client, bob, store, worker, totalseg):
    session, segment = _session(client, totalseg)
    job = submit_paint(store, session, segment, steps=1, step_s=0)
    assert bob.get(f"/v1/jobs/{job.id}").status_code == 404
    assert bob.post(f"/v1/jobs/{job.id}/cancel").status_code == 404
    assert bob.get(f"/v1/jobs/{job.id}/events").status_code == 404
    assert client.get("/v1/jobs/0123456789abcdef01234567").json()["error"] == "job_not_found"
    assert wait_done(client, job.id)["state"] == "succeeded"  # bob's cancel did nothing


def test_cancel_while_queued_never_runs(client, store, no_worker, totalseg):
    session, segment = _session(client, totalseg)
    # no worker at all while the job is queued and cancelled: nothing can take it first
    job = submit_paint(store, session, segment, steps=2, step_s=0)
    cancelled = client.post(f"/v1/jobs/{job.id}/cancel").json()
    assert cancelled["state"] == "cancelled" and cancelled["started_at"] is None
    # now a worker; a job submitted after the cancelled one runs after it (one worker, FIFO),
    # so once that one has finished, the cancelled one had its chance to run and did not
    no_worker.start()
    after = submit_paint(store, session, segment, steps=1, step_s=0)
    assert wait_done(client, after.id)["state"] == "succeeded"
    body = client.get(f"/v1/jobs/{job.id}").json()
    assert body["state"] == "cancelled" and body["started_at"] is None
    assert body["progress"]["step"] == 0 and body["result_revision"] is None
    history = client.get(f"/v1/sessions/{session['id']}/segments/{segment['id']}/history").json()
    assert [r["interaction"]["type"] for r in history["revisions"]] == ["create", "paint"]


def test_cancel_while_running_keeps_previous_revision(client, store, worker, totalseg):
    session, segment = _session(client, totalseg)
    job = submit_paint(store, session, segment, steps=20, step_s=0.1, hold_at=2)
    body = wait_step(client, job.id, 2)  # held there until released
    assert body["state"] == "running" and body["progress"]["step"] == 2
    asked = client.post(f"/v1/jobs/{job.id}/cancel").json()
    assert asked["cancel_requested"] is True and asked["state"] == "running"
    release_paint(store, job.id)
    done = wait_done(client, job.id)
    # it stops at its next step, the first after the request
    assert done["state"] == "cancelled" and done["result_revision"] is None
    assert done["progress"]["step"] == 3
    seg = client.get(f"/v1/sessions/{session['id']}/segments/{segment['id']}").json()
    assert seg["revision"] == segment["revision"] and seg["voxels"] == 0
    # cancelling a finished job changes nothing
    assert client.post(f"/v1/jobs/{job.id}/cancel").json()["state"] == "cancelled"


def test_revision_conflict_fails_and_keeps_the_newer_revision(client, store, worker, totalseg):
    session, segment = _session(client, totalseg)
    job = submit_paint(store, session, segment, steps=6, step_s=0.1, hold_at=1)
    assert wait_step(client, job.id, 1)["state"] == "running"  # held: it cannot finish first
    url = f"/v1/sessions/{session['id']}/segments/{segment['id']}"
    click = client.post(
        f"{url}/interactions",
        json={
            "type": "click",
            "dim": "2d",
            "plane": {"axis": "z", "index": 15},
            "clicks": [{"zyx": [15, 50, 40]}],
        },
    )
    assert click.status_code == 200, click.text
    release_paint(store, job.id)
    done = wait_done(client, job.id)
    assert done["state"] == "failed" and done["error"]["code"] == "revision_conflict"
    assert client.get(url).json()["revision"] == click.json()["revision"]


def test_failing_job_reports_its_error(client, store, worker, totalseg):
    session, segment = _session(client, totalseg)
    job = submit_paint(store, session, segment, steps=1, step_s=0, fail=True)
    done = wait_done(client, job.id)
    assert done["state"] == "failed" and done["error"]["code"] == "internal_error"
    assert "asked to fail" in done["error"]["message"]
    events = store.jobs.events(store.jobs.get(job.id))
    assert events[-1][1] == "end" and events[-1][2]["state"] == "failed"
    assert json.dumps(events[-1][2])  # JSON-able
    assert np.all(full_mask(client, session["id"], segment["id"]) == 0)


def test_readyz_counts_job_workers(client, worker):
    assert int(client.get("/readyz").json()["job_workers"]) == 1  # this module's one worker


def test_the_worker_never_imports_fastapi():
    code = (
        "import json, sys, medseg.worker, medseg.builtin\n"
        "medseg.builtin.build('tests.jobs.demo_kinds')\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules}\n"
        "                        & {'fastapi', 'starlette', 'torch'})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": PYTHONPATH},
    )
    # fastapi/starlette: the API's; torch: the server needs none (the trainer's)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
