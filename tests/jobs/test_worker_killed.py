"""A worker killed with SIGKILL mid-job leaves the job failed with a reason and the session
intact; a restarted API (jobs live in Redis) still serves the job."""

from __future__ import annotations

import os
import signal
import time

from fastapi.testclient import TestClient

from medseg.api.app import create_app
from medseg.store.keys import SessionKeys
from tests.api.helpers import new_segment, upload
from tests.conftest import KEYS
from tests.jobs.helpers import submit_paint, wait_done, wait_step
from tests.live import job_worker
from tests.polling import poll

# The worker whose whole process group is killed beats every 0.5 s with a 2 s TTL, so its
# lost job shows within seconds; its job is held in a blocking Redis read, which leaves the
# heartbeat thread free to run (a short heartbeat is for such jobs only, see tests/live.py).
SHORT_HEARTBEAT_S = 2.0


def _running_job(client, store, totalseg):
    """A paint job held (in the worker) after its step 2 and never released."""
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    segment = new_segment(client, session["id"])
    job = submit_paint(store, session, segment, steps=4, step_s=0.1, hold_at=2)
    body = wait_step(client, job.id, 2)
    assert body["state"] == "running" and body["progress"]["step"] == 2
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
    # the default test heartbeat (10 s) is far longer than this takes: the only way the job
    # can fail here is the worker's handler for a job process that died under it
    with job_worker(redis_url):
        session, segment, job = _running_job(client, store, totalseg)
        horse = int(store.jobs.get(job.id).worker.rsplit(":", 1)[1])
        os.kill(horse, signal.SIGKILL)
        done = wait_done(client, job.id, timeout_s=15)
    assert done["state"] == "failed" and done["error"]["code"] == "worker_lost"
    assert f"(pid {horse}) was killed by signal 9" in done["error"]["message"], done["error"]
    _assert_session_intact(client, session, segment)


def test_whole_worker_killed_fails_by_heartbeat(client, store, redis_url, totalseg):
    with job_worker(redis_url, MEDSEG_JOB_HEARTBEAT_S=str(SHORT_HEARTBEAT_S)) as worker:
        session, segment, job = _running_job(client, store, totalseg)
        # the job's heartbeat thread keeps beating: a TTL raised far above the heartbeat's
        # comes back down to it at the next beat (raised, not lowered: it must not expire here)
        heartbeat = SessionKeys(session["id"]).job_heartbeat(job.id)
        store.jobs.redis.pexpire(heartbeat, 60_000)
        poll(lambda: store.jobs.redis.pttl(heartbeat),
             lambda ttl: 0 < ttl <= SHORT_HEARTBEAT_S * 1000, 10, "heartbeat")
        os.killpg(worker.pid, signal.SIGKILL)  # the worker; its job process dies with it
        worker.wait(timeout=10)
        started = time.monotonic()
        done = wait_done(client, job.id, timeout_s=15)
    # nobody was left to say what happened: only the heartbeat's running out tells
    assert done["state"] == "failed" and done["error"]["code"] == "worker_lost"
    assert "the worker running this job stopped" in done["error"]["message"], done["error"]
    assert time.monotonic() - started < SHORT_HEARTBEAT_S + 6  # within its TTL, plus slack
    _assert_session_intact(client, session, segment)
    # a new API process (restart) still finds the job in Redis
    with TestClient(create_app(client.app.state.settings),
                    headers={"X-API-Key": KEYS["alice"]}) as restarted:
        assert restarted.get(f"/v1/jobs/{job.id}").json()["state"] == "failed"
