"""Interactions compute in child processes of a real API process: /healthz answers while a
click holds the GIL, a click past the deadline answers 504, changes nothing and leaves the
session unlocked and usable."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

from medseg.store.keys import SessionKeys
from tests.conftest import KEYS
from tests.jobs.demo_kinds import started_key
from tests.live import api_server
from tests.polling import poll

HEADERS = {"X-API-Key": KEYS["alice"]}
DEADLINE_S = 5
LIVER = [15, 50, 40]  # a voxel inside the liver of ct_3mm


@pytest.fixture(scope="module")
def server(redis_url):
    with api_server(redis_url, MEDSEG_REQUEST_DEADLINE_S=str(DEADLINE_S),
                    MEDSEG_COMPUTE_PROCESSES="2") as base_url:
        yield base_url


@pytest.fixture(scope="module")
def session_id(server, totalseg):
    source = totalseg / "ct_3mm.nii.gz"
    created = httpx.post(f"{server}/v1/sessions", headers=HEADERS, timeout=120,
                         files=[("files", (source.name, source.read_bytes()))])
    assert created.status_code == 201, created.text
    return created.json()["id"]


@pytest.fixture
def segment_url(server, session_id):
    segment = httpx.post(f"{server}/v1/sessions/{session_id}/segments", headers=HEADERS,
                         json={}, timeout=30)
    assert segment.status_code == 201, segment.text
    return f"{server}/v1/sessions/{session_id}/segments/{segment.json()['id']}"


@pytest.fixture
def store_redis(redis_url):
    with redis.Redis.from_url(redis_url) as client:
        yield client


def _slow_click(url: str, params: dict) -> httpx.Response:
    return httpx.post(f"{url}/interactions", headers=HEADERS, timeout=120,
                      json={"type": "click", "method": "slow-click", "params": params,
                            "clicks": [{"zyx": LIVER}]})


def _history(url: str) -> dict:
    response = httpx.get(f"{url}/history", headers=HEADERS, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_healthz_answers_while_a_click_holds_the_gil(server, segment_url, store_redis):
    with ThreadPoolExecutor(1) as pool:
        click = pool.submit(_slow_click, segment_url, {"hold_name": "healthz", "gil_s": 3})
        poll(lambda: store_redis.exists(started_key("healthz")), bool, 60, "start of the click",
             hopeless=lambda _: click.done())
        # in the API process this click would hold its GIL for 3 s: /healthz would wait for it
        health = httpx.get(f"{server}/healthz", timeout=1.5)
        assert health.status_code == 200
        assert not click.done()  # answered while the click computed
        assert click.result(timeout=60).status_code == 200


def test_a_click_past_the_deadline_answers_504_and_changes_nothing(server, session_id,
                                                                    segment_url, store_redis):
    before = _history(segment_url)
    start = time.monotonic()
    late = _slow_click(segment_url, {"hold_name": "deadline", "gil_s": 600})
    elapsed = time.monotonic() - start
    assert late.status_code == 504, late.text
    body = late.json()
    assert body["error"] == "deadline_exceeded"
    assert f"{DEADLINE_S} s deadline" in body["message"]
    assert "nothing was applied" in body["message"]
    assert DEADLINE_S <= elapsed < DEADLINE_S + 20
    # the child was killed (it would have held its GIL for 10 minutes), the lock released
    pid = int(store_redis.get(started_key("deadline")))
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not store_redis.exists(SessionKeys(session_id).lock)
    assert _history(segment_url) == before
    # the session is usable at once: the next click commits on the unchanged head
    click = httpx.post(f"{segment_url}/interactions", headers=HEADERS, timeout=60,
                       json={"type": "click", "clicks": [{"zyx": LIVER}]})
    assert click.status_code == 200, click.text
    after = _history(segment_url)
    assert after["revisions"][-1]["parent"] == before["head"] == click.json()["delta"][
        "from_revision"]


def test_a_conflict_found_in_the_child_answers_409(segment_url):
    head = _history(segment_url)["head"]
    stale = httpx.post(f"{segment_url}/interactions", headers=HEADERS, timeout=60,
                       json={"type": "click", "clicks": [{"zyx": LIVER}],
                             "base_revision": head + 1000})
    assert stale.status_code == 409, stale.text
    assert stale.json()["error"] == "revision_conflict"
    assert _history(segment_url)["head"] == head
