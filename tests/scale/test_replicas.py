"""One user's session across 3 API replicas behind nginx (round robin) with 2 job workers on one
Redis: every request lands on another replica than the one before, revisions stay consistent,
stale If-Match is 409 wherever it lands, and killing a replica mid-request loses nothing (the
POST it was computing is answered 502, is not replayed on another replica, and a retry with
If-Match lands once)."""

from __future__ import annotations

import gzip
import os
import threading

import httpx
import nibabel as nib
import numpy as np
import redis

from medseg_protocol import codec
from tests.conftest import KEYS
from tests.jobs.demo_kinds import started_key
from tests.polling import poll

HEADERS = {"X-API-Key": KEYS["alice"]}


class User:
    """An httpx client through the balancer that records which replica answered each request."""

    def __init__(self, url: str):
        self.http = httpx.Client(base_url=url, headers=HEADERS, timeout=120)
        self.seen: list[str] = []

    def __call__(self, method: str, path: str, expect: int = 200, **kwargs) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        assert response.status_code == expect, (method, path, response.status_code, response.text)
        self.seen.append(response.headers["X-Medseg-Replica"])
        return response

    def close(self) -> None:
        self.http.close()


def _upload(user: User, totalseg) -> str:
    source = totalseg / "ct_3mm.nii.gz"
    created = user("POST", "/v1/sessions", expect=201,
                   files=[("files", (source.name, source.read_bytes()))])
    return created.json()["id"]


def _click(z: int, y: int, x: int, **extra) -> dict:
    return {"type": "click", "dim": "2d", "plane": {"axis": "z", "index": z},
            "clicks": [{"zyx": [z, y, x]}], **extra}


def test_one_session_round_robin_over_replicas(cluster, totalseg):
    user = User(cluster.url)
    try:
        sid = _upload(user, totalseg)
        segment = user("POST", f"/v1/sessions/{sid}/segments", expect=201,
                       json={"name": "liver"}).json()
        url = f"/v1/sessions/{sid}/segments/{segment['id']}"
        first = user("POST", f"{url}/interactions", json=_click(15, 50, 40),
                     headers={"If-Match": f'"{segment["revision"]}"'}).json()
        assert first["previous_revision"] == segment["revision"] < first["revision"]
        second = user("POST", f"{url}/interactions", json=_click(15, 52, 42),
                      headers={"If-Match": f'"{first["revision"]}"'}).json()
        assert second["previous_revision"] == first["revision"]
        # the revision the first click made is stale now, on whichever replica the retry lands
        for _ in range(3):
            conflict = user("POST", f"{url}/interactions", expect=409, json=_click(15, 60, 40),
                            headers={"If-Match": f'"{first["revision"]}"'})
            assert conflict.json()["error"] == "revision_conflict"
        undo = user("POST", f"{url}/undo").json()
        assert (undo["previous_revision"], undo["revision"]) == (second["revision"],
                                                                 first["revision"])
        head = user("GET", f"{url}").json()
        assert head["revision"] == first["revision"] and head["can_redo"]
        job = user("POST", f"{url}/propagate", expect=202,
                   json={"axis": "z", "start_index": 15, "method": "graphcut-seeds"},
                   headers={"If-Match": f'"{first["revision"]}"'}).json()
        assert job["base_revision"] == first["revision"]
        done = poll(lambda: user("GET", f"/v1/jobs/{job['id']}").json(),
                    lambda j: j["state"] in ("succeeded", "failed", "cancelled"), 120,
                    "the propagation job's end")
        assert done["state"] == "succeeded", done
        head = user("GET", url).json()
        assert head["revision"] == done["result_revision"] > second["revision"]
        assert not head["can_redo"]  # the job's revision dropped the undone click
        mask = codec.decode_mask(user("GET", f"{url}/mask").json())
        exported = user("GET", f"/v1/sessions/{sid}/export")
        labels = np.asarray(nib.Nifti1Image.from_bytes(gzip.decompress(exported.content)).dataobj)
        assert (labels.transpose(2, 1, 0) > 0).sum() == mask.sum() == head["voxels"] > 0
        user("DELETE", f"/v1/sessions/{sid}", expect=204)
    finally:
        user.close()
    # round robin: each request on another replica than the one before, all three used
    assert set(user.seen) == {"api-1", "api-2", "api-3"}, user.seen
    assert all(a != b for a, b in zip(user.seen, user.seen[1:])), user.seen


def test_replica_killed_mid_request_loses_nothing(cluster, totalseg):
    """Runs last in the module: it kills a replica for good."""
    user = User(cluster.url)
    connection = redis.Redis.from_url(cluster.redis_url)
    try:
        sid = _upload(user, totalseg)
        segment = user("POST", f"/v1/sessions/{sid}/segments", expect=201, json={}).json()
        url = f"/v1/sessions/{sid}/segments/{segment['id']}"
        acked = [user("POST", f"{url}/interactions", json=_click(10, 40, 40)).json()]
        # a click that computes until released: the replica computing it is then killed
        name = f"replica-kill-{sid}"
        answer: dict = {}

        def held_click() -> None:
            with httpx.Client(base_url=cluster.url, headers=HEADERS, timeout=120) as http:
                answer["response"] = http.post(
                    f"{url}/interactions", headers={"If-Match": f'"{acked[-1]["revision"]}"'},
                    json=_click(10, 44, 44, method="slow-click", params={"hold_name": name}))

        thread = threading.Thread(target=held_click)
        thread.start()
        child_pid = int(poll(lambda: connection.get(started_key(name)), bool, 60,
                             "the held click computing"))
        victim = next(r for r in cluster.replicas if os.getpgid(child_pid) == r.process.pid)
        cluster.kill(victim)
        since_kill = len(user.seen)
        thread.join(timeout=120)
        # received by the replica, then lost with it: 502, never replayed on another replica
        assert answer["response"].status_code == 502, answer["response"].text
        # the session is whole on the others: the click it was computing was not committed
        history = user("GET", f"{url}/history").json()
        assert history["head"] == acked[-1]["revision"]
        # a retry with If-Match lands once (waits for the dead holder's lock to expire)
        retried = user("POST", f"{url}/interactions", json=_click(10, 44, 44),
                       headers={"If-Match": f'"{acked[-1]["revision"]}"'}).json()
        assert retried["previous_revision"] == acked[-1]["revision"]
        acked.append(retried)
        user("POST", f"{url}/interactions", expect=409, json=_click(10, 44, 44),
             headers={"If-Match": f'"{acked[-2]["revision"]}"'})
        for i in range(4):  # POSTs and GETs keep working on the survivors
            acked.append(user("POST", f"{url}/interactions", json=_click(10, 30 + i, 50),
                              headers={"If-Match": f'"{acked[-1]["revision"]}"'}).json())
            assert acked[-1]["previous_revision"] == acked[-2]["revision"]
            user("GET", f"/v1/sessions/{sid}")
        history = user("GET", f"{url}/history").json()
        revisions = {r["revision"] for r in history["revisions"]}
        assert {a["revision"] for a in acked} <= revisions  # every acknowledged change is there
        assert history["head"] == acked[-1]["revision"]
        survivors = {r.name for r in cluster.replicas} - {victim.name}
        assert set(user.seen[since_kill:]) == survivors, user.seen[since_kill:]
        user("DELETE", f"/v1/sessions/{sid}", expect=204)
    finally:
        connection.close()
        user.close()
