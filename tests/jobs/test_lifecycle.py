"""A job's life with a real Redis and a real worker process: queued -> running (progress) ->
succeeded as one revision; cancel while queued and while running; conflicts; failures."""

from __future__ import annotations

import json

import numpy as np

from tests.api.helpers import full_mask, new_segment, upload
from tests.jobs.helpers import submit_paint, wait_state


def _session(client, totalseg):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    return session, new_segment(client, session["id"])


def test_life_cycle_progress_events_and_one_revision(client, store, worker, totalseg):
    session, segment = _session(client, totalseg)
    job = submit_paint(store, session, segment, steps=4, step_s=0.1)
    first = client.get(f"/v1/jobs/{job.id}").json()
    assert first["state"] in ("queued", "running") and first["base_revision"] == segment["revision"]
    running = wait_state(client, job.id, {"running", "succeeded"})
    done = wait_state(client, job.id, {"succeeded", "failed"})
    assert done["state"] == "succeeded", done
    assert done["progress"] == {"step": 4, "total": 4, "message": "slice 3", "loss": 0.25}
    assert done["timings_ms"]["queue"] >= 0 and done["timings_ms"]["run"] > 300
    assert running["state"] in ("running", "succeeded")
    # exactly one new revision, made by the job, on top of the base
    history = client.get(f"/v1/sessions/{session['id']}/segments/{segment['id']}/history").json()
    assert [r["revision"] for r in history["revisions"]] == [segment["revision"], done["result_revision"]]
    assert history["head"] == done["result_revision"]
    assert full_mask(client, session["id"], segment["id"]).sum() == 4 * 16
    # the event stream replays from the start for a late subscriber and ends with "end"
    with client.stream("GET", f"/v1/jobs/{job.id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        kinds = [line.split(": ", 1)[1] for line in response.iter_lines() if line.startswith("event:")]
    assert kinds[:2] == ["state", "state"] and kinds[-2:] == ["state", "end"]
    assert kinds.count("progress") == 4 and kinds.count("slice") == 4


def test_other_tenants_get_404(client, bob, store, worker, totalseg):
    session, segment = _session(client, totalseg)
    job = submit_paint(store, session, segment, steps=1, step_s=0)
    assert bob.get(f"/v1/jobs/{job.id}").status_code == 404
    assert bob.post(f"/v1/jobs/{job.id}/cancel").status_code == 404
    assert bob.get(f"/v1/jobs/{job.id}/events").status_code == 404
    assert client.get("/v1/jobs/0123456789abcdef01234567").json()["error"] == "job_not_found"
    wait_state(client, job.id, {"succeeded"})


def test_cancel_while_queued_never_runs(client, store, redis_url, totalseg):
    # no worker for this module's queue yet... stop it by submitting behind a long job instead
    from tests.live import job_worker

    session, segment = _session(client, totalseg)
    with job_worker(redis_url):
        blocker = submit_paint(store, session, segment, steps=8, step_s=0.2)
        wait_state(client, blocker.id, {"running"})
        job = submit_paint(store, session, segment, steps=2, step_s=0)
        cancelled = client.post(f"/v1/jobs/{job.id}/cancel").json()
        assert cancelled["state"] == "cancelled" and cancelled["started_at"] is None
        client.post(f"/v1/jobs/{blocker.id}/cancel")
        wait_state(client, blocker.id, {"cancelled"})
    assert client.get(f"/v1/jobs/{job.id}").json()["started_at"] is None
    history = client.get(f"/v1/sessions/{session['id']}/segments/{segment['id']}/history").json()
    assert len(history["revisions"]) == 1  # neither job changed anything


def test_cancel_while_running_keeps_previous_revision(client, store, worker, totalseg):
    session, segment = _session(client, totalseg)
    job = submit_paint(store, session, segment, steps=20, step_s=0.1)
    body = wait_state(client, job.id, {"running"})
    while body["progress"]["step"] < 2:
        body = client.get(f"/v1/jobs/{job.id}").json()
    asked = client.post(f"/v1/jobs/{job.id}/cancel").json()
    assert asked["cancel_requested"] is True
    done = wait_state(client, job.id, {"cancelled", "succeeded", "failed"})
    assert done["state"] == "cancelled" and done["result_revision"] is None
    seg = client.get(f"/v1/sessions/{session['id']}/segments/{segment['id']}").json()
    assert seg["revision"] == segment["revision"] and seg["voxels"] == 0
    # cancelling a finished job changes nothing
    assert client.post(f"/v1/jobs/{job.id}/cancel").json()["state"] == "cancelled"


def test_revision_conflict_fails_and_keeps_the_newer_revision(client, store, worker, totalseg):
    session, segment = _session(client, totalseg)
    job = submit_paint(store, session, segment, steps=6, step_s=0.1)
    wait_state(client, job.id, {"running"})
    url = f"/v1/sessions/{session['id']}/segments/{segment['id']}"
    click = client.post(f"{url}/interactions", json={
        "type": "click", "dim": "2d", "plane": {"axis": "z", "index": 15},
        "clicks": [{"zyx": [15, 50, 40]}]})
    assert click.status_code == 200, click.text
    done = wait_state(client, job.id, {"succeeded", "failed"})
    assert done["state"] == "failed" and done["error"]["code"] == "revision_conflict"
    assert client.get(url).json()["revision"] == click.json()["revision"]


def test_failing_job_reports_its_error(client, store, worker, totalseg):
    session, segment = _session(client, totalseg)
    job = submit_paint(store, session, segment, steps=1, step_s=0, fail=True)
    done = wait_state(client, job.id, {"succeeded", "failed"})
    assert done["state"] == "failed" and done["error"]["code"] == "internal_error"
    assert "asked to fail" in done["error"]["message"]
    events = store.jobs.events(store.jobs.get(job.id))
    assert events[-1][1] == "end" and events[-1][2]["state"] == "failed"
    assert json.dumps(events[-1][2])  # JSON-able
    assert np.all(full_mask(client, session["id"], segment["id"]) == 0)


def test_readyz_counts_job_workers(client, worker):
    assert int(client.get("/readyz").json()["job_workers"]) >= 1


def test_the_worker_never_imports_fastapi():
    import subprocess
    import sys

    code = ("import sys, medseg.worker, medseg.builtin\n"
            "medseg.builtin.build('tests.jobs.demo_kinds')\n"
            "assert 'fastapi' not in sys.modules and 'starlette' not in sys.modules\n"
            "assert 'torch' not in sys.modules, 'the server needs no torch'")
    subprocess.run([sys.executable, "-c", code], check=True)
