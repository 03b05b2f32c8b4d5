"""Interactive first, with a real worker process: jobs wait in priority queues (interactive >
normal > batch), GET /v1/jobs/{id} reports position and an ETA from recent runs, a newer job on
the same segment supersedes the queued older one, and clicks never wait behind jobs."""

from __future__ import annotations

import redis

from medseg.jobs import queue, schedule
from medseg.store.jobs import runs_key
from tests.api.helpers import new_segment, upload
from tests.jobs.demo_kinds import PAINT
from tests.jobs.helpers import release_paint, submit_paint, wait_done, wait_step
from tests.live import job_worker

CLICK = {"type": "click", "dim": "2d", "plane": {"axis": "z", "index": 15},
         "clicks": [{"zyx": [15, 50, 40]}]}


def _paint(store, session, segment, priority, **params):
    return queue.submit(store, PAINT, "alice", session["id"], segment["id"], params,
                        segment["revision"], priority=priority)


def test_priorities_position_eta_and_clicks_never_wait(client, store, workers, totalseg):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    sid = session["id"]
    segments = [new_segment(client, sid, f"s{i}") for i in range(4)]
    connection: redis.Redis = store.jobs.redis
    connection.delete(runs_key(PAINT.name))
    workers.start()
    # one run of the kind: the history ETAs rest on (about 0.9 s)
    first = wait_done(client, submit_paint(store, session, segments[0], steps=3, step_s=0.3).id)
    assert first["state"] == "succeeded" and first["queue"] is None  # ended: no queue info
    median = first["timings_ms"]["run"] / 1000
    segments[0] = client.get(f"/v1/sessions/{sid}/segments/{segments[0]['id']}").json()
    # the one worker is held busy by a running job on segment 0 ...
    held = _paint(store, session, segments[0], "normal", steps=2, step_s=0, hold_at=1)
    running = wait_step(client, held.id, 1)
    assert running["queue"]["position"] is None and running["queue"]["starts_in_s"] == 0
    # ... while a batch, a normal and an interactive job queue up, in that order
    batch = _paint(store, session, segments[1], "batch", steps=1, step_s=0)
    normal = _paint(store, session, segments[2], "normal", steps=1, step_s=0)
    interactive = _paint(store, session, segments[3], "interactive", steps=1, step_s=0)
    seen = {name: client.get(f"/v1/jobs/{job.id}").json()
            for name, job in (("interactive", interactive), ("normal", normal), ("batch", batch))}
    assert [seen[n]["queue"]["position"] for n in ("interactive", "normal", "batch")] == [1, 2, 3]
    assert [seen[n]["queue"]["jobs_ahead"] for n in ("interactive", "normal", "batch")] == [0, 1, 2]
    assert all(seen[n]["priority"] == n and seen[n]["queue"]["workers"] == 1
               and seen[n]["queue"]["running"] == 1 for n in seen)
    etas = [seen[n]["queue"]["eta_s"] for n in ("interactive", "normal", "batch")]
    assert None not in etas and etas[0] < etas[1] < etas[2], etas
    # each job ahead adds one median run of its kind
    assert abs((etas[2] - etas[1]) - median) < 0.15 and abs((etas[1] - etas[0]) - median) < 0.15
    assert "paint" in seen["batch"]["queue"]["basis"]
    # a click on the segment the running job works on answers at once: clicks do not queue
    click = client.post(f"/v1/sessions/{sid}/segments/{segments[0]['id']}/interactions",
                        json=CLICK)
    assert click.status_code == 200, click.text
    release_paint(store, held.id)
    # the job started from the revision before the click: it fails, it never rebases
    assert wait_done(client, held.id)["error"]["code"] == "revision_conflict"
    done = {n: wait_done(client, job.id)
            for n, job in (("interactive", interactive), ("normal", normal), ("batch", batch))}
    assert all(d["state"] == "succeeded" for d in done.values()), done
    # one worker took them interactive first, then normal, then batch
    starts = [done[n]["started_at"] for n in ("interactive", "normal", "batch")]
    assert starts == sorted(starts), starts


def test_newer_job_supersedes_queued_older_on_same_segment(client, store, no_worker, totalseg):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    segment = new_segment(client, session["id"], "a")
    other = new_segment(client, session["id"], "b")
    older = submit_paint(store, session, segment, steps=1, step_s=0)
    elsewhere = submit_paint(store, session, other, steps=1, step_s=0)
    newer = submit_paint(store, session, segment, steps=1, step_s=0)
    gone = client.get(f"/v1/jobs/{older.id}").json()
    assert gone["state"] == "cancelled" and gone["started_at"] is None
    assert gone["error"]["code"] == "superseded" and newer.id in gone["error"]["message"]
    assert gone["queue"] is None
    # taken off RQ's queue too: only the other two wait there
    waiting = {j.decode() for j in store.jobs.redis.lrange(
        schedule.queue_for("normal", store.jobs.redis).key, 0, -1)}
    assert older.id not in waiting and {newer.id, elsewhere.id} <= waiting
    # another segment's queued job is not superseded; both others run
    assert client.get(f"/v1/jobs/{elsewhere.id}").json()["queue"]["position"] is not None
    no_worker.start()
    assert wait_done(client, newer.id)["state"] == "succeeded"
    assert wait_done(client, elsewhere.id)["state"] == "succeeded"
    assert client.get(f"/v1/jobs/{older.id}").json()["started_at"] is None


def test_running_job_is_not_superseded(client, store, worker, totalseg):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    segment = new_segment(client, session["id"], "a")
    running = submit_paint(store, session, segment, steps=2, step_s=0, hold_at=1)
    wait_step(client, running.id, 1)
    newer = submit_paint(store, session, segment, steps=1, step_s=0)
    assert client.get(f"/v1/jobs/{running.id}").json()["state"] == "running"
    assert client.get(f"/v1/jobs/{newer.id}").json()["queue"]["position"] == 1
    release_paint(store, running.id)
    assert wait_done(client, running.id)["state"] == "succeeded"
    # the newer one then starts from a revision that moved on: it fails, never rebases
    assert wait_done(client, newer.id)["error"]["code"] == "revision_conflict"


def test_a_worker_kept_for_the_interactive_queue(client, store, no_worker, redis_url, totalseg):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    normal = _paint(store, session, new_segment(client, session["id"], "a"), "normal", steps=1,
                    step_s=0)
    with job_worker(redis_url, "--queues", "interactive"):
        interactive = _paint(store, session, new_segment(client, session["id"], "b"),
                             "interactive", steps=1, step_s=0)
        assert wait_done(client, interactive.id)["state"] == "succeeded"
        # submitted first, but in a queue this worker does not take from
        waiting = client.get(f"/v1/jobs/{normal.id}").json()
        assert waiting["state"] == "queued" and waiting["queue"]["position"] == 1
    no_worker.start()  # a worker of every queue takes it
    assert wait_done(client, normal.id)["state"] == "succeeded"
