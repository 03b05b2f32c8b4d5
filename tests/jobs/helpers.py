"""Submit jobs directly (the test kind has no route) and wait for them through the API."""

from __future__ import annotations

from collections.abc import Callable, Collection

from medseg.jobs import queue
from medseg.store.records import TERMINAL_STATES
from tests.jobs import demo_kinds
from tests.jobs.demo_kinds import PAINT
from tests.polling import poll


def submit_paint(store, session: dict, segment: dict, **params):
    return queue.submit(store, PAINT, "alice", session["id"], segment["id"], params,
                        segment["revision"])


def release_paint(store, job_id: str) -> None:
    """Let a paint job held at its `hold_at` step go on."""
    demo_kinds.release(store.jobs.redis, f"paint:{job_id}")


def _job(client, job_id: str) -> dict:
    response = client.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(client, job_id: str, predicate: Callable[[dict], bool], timeout_s: float = 30.0,
             what: str = "the condition") -> dict:
    """THE way tests wait for a job: poll `GET /v1/jobs/{id}` until `predicate(body)` and return
    that body. Fails when the deadline passes, or at once when the job has ended without
    meeting it (a finished job never changes again)."""
    return poll(lambda: _job(client, job_id), predicate, timeout_s, f"{what} of job {job_id}",
                hopeless=lambda body: body["state"] in TERMINAL_STATES)


def wait_state(client, job_id: str, states: Collection[str], timeout_s: float = 30.0) -> dict:
    """Wait until the job is in one of `states`."""
    return wait_for(client, job_id, lambda b: b["state"] in states, timeout_s,
                    f"state {' or '.join(sorted(states))}")


def wait_done(client, job_id: str, timeout_s: float = 30.0) -> dict:
    """Wait until the job has ended (succeeded, failed or cancelled); the caller checks which."""
    return wait_state(client, job_id, TERMINAL_STATES, timeout_s)


def wait_step(client, job_id: str, step: int, timeout_s: float = 30.0) -> dict:
    """Wait until the job has reported progress step `step` (or later)."""
    return wait_for(client, job_id, lambda b: b["progress"]["step"] >= step, timeout_s,
                    f"progress step {step}")
