"""A worker killed with SIGKILL mid-job leaves the job failed with a reason and the session
intact; a restarted API (jobs live in Redis) still serves the job."""

from __future__ import annotations

import os
import signal
import time

from fastapi.testclient import TestClient

from medseg.api.app import create_app
from tests.api.helpers import new_segment, upload
from tests.conftest import KEYS
from tests.jobs.helpers import submit_paint, wait_state
from tests.live import job_worker


def _running_job(client, store, totalseg):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    segment = new_segment(client, session["id"])
    job = submit_paint(store, session, segment, steps=50, step_s=0.1)
    body = wait_state(client, job.id, {"running"})
    while body["progress"]["step"] < 2:
        body = client.get(f"/v1/jobs/{job.id}").json()
    return session, segment, job


def _assert_session_intact(client, session, segment):
    url = f"/v1/sessions/{session['id']}/segments/{segment['id']}"
    seg = client.get(url).json()
    assert seg["revision"] == segment["revision"] and seg["voxels"] == 0
    click = client.post(f"{url}/interactions", json={  # the session lock is free
        "type": "click", "dim": "2d", "plane": {"axis": "z", "index": 15},
        "clicks": [{"zyx": [15, 50, 40]}]})
    assert click.status_code == 200, click.text


def test_job_process_killed_fails_at_once(client, store, redis_url, totalseg):
    with job_worker(redis_url):
        session, segment, job = _running_job(client, store, totalseg)
        horse = int(store.jobs.get(job.id).worker.rsplit(":", 1)[1])
        os.kill(horse, signal.SIGKILL)
        done = wait_state(client, job.id, {"failed", "succeeded"}, timeout_s=15)
    assert done["state"] == "failed" and done["error"]["code"] == "worker_lost"
    # RQ's handler names the signal; under load the heartbeat may run out first (same code)
    assert "signal 9" in done["error"]["message"] or "stopped (killed" in done["error"]["message"]
    _assert_session_intact(client, session, segment)


def test_whole_worker_killed_fails_by_heartbeat(client, store, redis_url, totalseg):
    with job_worker(redis_url) as worker:
        session, segment, job = _running_job(client, store, totalseg)
        os.killpg(worker.pid, signal.SIGKILL)  # the worker; its job process dies with it
        worker.wait(timeout=10)
        started = time.monotonic()
        done = wait_state(client, job.id, {"failed", "succeeded"}, timeout_s=15)
    assert done["state"] == "failed" and done["error"]["code"] == "worker_lost"
    assert time.monotonic() - started < 8  # heartbeat TTL is 1 s in tests
    _assert_session_intact(client, session, segment)
    # a new API process (restart) still finds the job in Redis
    with TestClient(create_app(client.app.state.settings),
                    headers={"X-API-Key": KEYS["alice"]}) as restarted:
        assert restarted.get(f"/v1/jobs/{job.id}").json()["state"] == "failed"
