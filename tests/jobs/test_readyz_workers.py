"""/readyz counts live job workers only: a worker killed with SIGKILL drops out of the count
within its heartbeat window, although RQ's own registry still lists it for minutes."""

from __future__ import annotations

import os
import signal
import time

from rq import Queue, Worker

from medseg.jobs.settings import QUEUE_NAME
from tests.live import job_worker
from tests.polling import poll

# the killed worker's presence beats every 0.25 s and runs out 1 s after its last beat; it is
# idle (blocked in a Redis read), so its beating thread is never kept from the GIL
HEARTBEAT_S = 1.0


def _live_workers(client) -> int:
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    return int(response.json()["job_workers"])


def test_killed_worker_drops_out_within_its_heartbeat(client, store, redis_url):
    assert _live_workers(client) == 0  # this module's Redis: no worker yet
    with job_worker(redis_url, MEDSEG_JOB_HEARTBEAT_S=str(HEARTBEAT_S)) as worker:
        assert _live_workers(client) == 1
        os.killpg(worker.pid, signal.SIGKILL)  # nothing of it runs any cleanup
        worker.wait(timeout=10)
        killed = time.monotonic()
        poll(lambda: _live_workers(client), lambda n: n == 0, HEARTBEAT_S + 5,
             "killed worker leaving the count")
        assert time.monotonic() - killed < HEARTBEAT_S + 3  # its window, plus slack
    # RQ still lists the dead worker (its key lives worker_ttl + 60 s): counting that registry,
    # as /readyz did, reports a worker that is gone
    connection = store.jobs.redis
    assert Worker.count(connection=connection, queue=Queue(QUEUE_NAME, connection=connection)) == 1


def test_stopped_worker_leaves_the_count_at_once(client, redis_url):
    with job_worker(redis_url) as worker:  # the default 10 s window
        assert _live_workers(client) == 1
        worker.terminate()  # a warm shutdown retires its presence on the way out
        worker.wait(timeout=15)
        assert _live_workers(client) == 0  # long before its 10 s window would run out
