"""Submit jobs directly (the test kind has no route) and wait for them through the API."""

from __future__ import annotations

import time

from medseg.jobs import queue
from tests.jobs.demo_kinds import PAINT


def submit_paint(store, session: dict, segment: dict, **params):
    return queue.submit(store, PAINT, "alice", session["id"], segment["id"], params,
                        segment["revision"])


def wait_state(client, job_id: str, states, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        body = client.get(f"/v1/jobs/{job_id}").json()
        if body["state"] in states:
            return body
        assert time.monotonic() < deadline, f"job stuck in {body['state']}: {body}"
        time.sleep(0.02)
