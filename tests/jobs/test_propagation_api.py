"""Propagation end to end: HTTP API -> Redis queue -> real worker process -> one revision,
streamed slice by slice; locks; a correction that re-propagates; cancel mid-way."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from medseg.algorithms.metrics import dice
from medseg.engine.prompts import Box, Marks
from medseg_protocol import codec
from tests.api.helpers import full_mask, new_segment, upload
from tests.jobs import demo_kinds
from tests.jobs.helpers import wait_done, wait_state, wait_step


@pytest.fixture(scope="module")
def kidney(totalseg):
    seg = nib.load(totalseg / "ct_3mm_seg.nii.gz")
    labels = json.loads((totalseg / "labels.json").read_text())["ct_3mm_seg.nii.gz"]
    label = int(next(k for k, v in labels.items() if v == "kidney_left"))
    return np.asarray(seg.dataobj).transpose(2, 1, 0) == label


def drawn_slice(client, store, totalseg, reference, z: int):
    """A session whose segment holds the reference mask on slice z (as if the user drew it)."""
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    segment = new_segment(client, session["id"], "kidney")
    meta = store.sessions.get(session["id"])
    seg, head = store.segments.head(meta, segment["id"])
    box = Box((z, 0, 0), (z, meta.shape[1] - 1, meta.shape[2] - 1))
    record = store.segments.commit(
        meta, seg, head, box, reference[z : z + 1], {"type": "test"}, {}, Marks()
    )
    return session, segment["id"], record.revision


def url(session, seg, tail=""):
    return f"/v1/sessions/{session['id']}/segments/{seg}{tail}"


def test_propagate_an_organ_streams_slices_and_makes_one_revision(
    client, store, worker, totalseg, kidney
):
    session, seg, base = drawn_slice(client, store, totalseg, kidney, 11)
    accepted = client.post(
        url(session, seg, "/propagate"), json={"axis": "z"}, headers={"If-Match": f'"{base}"'}
    )
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    assert job["kind"] == "propagate" and job["base_revision"] == base
    done = wait_done(client, job["id"], timeout_s=60)
    assert done["state"] == "succeeded", done
    mask = full_mask(client, session["id"], seg)
    assert dice(mask, kidney) > 0.85
    # the organ ends at z=22: nothing far beyond it
    assert not mask[24:].any()
    result = done["result"]
    assert result["start_index"] == 11 and result["method"] == "propnet-2d-seeds"  # default
    assert set(result["slices_changed"]) == set(np.nonzero(mask.any(axis=(1, 2)))[0]) - {11}
    # the audit trail says it was a propagation
    history = client.get(url(session, seg, "/history")).json()
    last = history["revisions"][-1]
    assert last["revision"] == done["result_revision"] == history["head"]
    assert last["interaction"]["type"] == "propagation" and last["interaction"]["job"] == job["id"]
    assert len(history["revisions"]) == 3  # create, drawn slice, propagation
    # the start slice is locked now
    assert client.get(url(session, seg, "/locks")).json()["locked_slices"] == {"z": [11]}
    # the event stream carries every slice's delta: painting them gives the final mask
    painted = full_mask(client, session["id"], seg, revision=base)
    slices, totals = [], []
    with client.stream("GET", f"/v1/jobs/{job['id']}/events") as response:
        event = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.split(": ", 1)[1]
            elif line.startswith("data:") and event == "slice":
                data = json.loads(line.split(": ", 1)[1])
                painted = codec.apply_delta(painted, data["delta"])
                slices.append(data["index"])
                totals.append((data["done"], data["estimated_total"]))
    assert np.array_equal(painted, mask)
    assert slices[0] == 12 and 10 in slices and totals[-1][0] == len(slices)
    assert all(done_ <= total for done_, total in totals)


def test_correction_repropagates_only_between_locked_slices(
    client, store, worker, totalseg, kidney
):
    session, seg, _base = drawn_slice(client, store, totalseg, kidney, 11)
    job = client.post(url(session, seg, "/propagate"), json={"start_index": 11}).json()
    wait_state(client, job["id"], {"succeeded"}, timeout_s=60)
    assert client.put(url(session, seg, "/locks/z/5")).json()["locked_slices"] == {"z": [5, 11]}
    before = full_mask(client, session["id"], seg)
    # a 2D click on slice 8 (between the locks) with re-propagation
    centre = np.argwhere(kidney[8]).mean(axis=0).round().astype(int).tolist()
    change = client.post(
        url(session, seg, "/interactions"),
        json={
            "type": "click",
            "dim": "2d",
            "plane": {"axis": "z", "index": 8},
            "clicks": [{"zyx": [8, *centre]}],
            "propagate": {},
        },
    )
    assert change.status_code == 200, change.text
    body = change.json()
    assert body["job"]["base_revision"] == body["revision"]
    done = wait_done(client, body["job"]["id"], timeout_s=60)
    assert done["state"] == "succeeded", done
    after = full_mask(client, session["id"], seg)
    changed = set(np.nonzero((after != before).any(axis=(1, 2)))[0])
    assert changed and changed <= {6, 7, 8, 9, 10}
    assert set(done["result"]["slices_predicted"]) <= {6, 7, 9, 10}
    locks = client.get(url(session, seg, "/locks")).json()["locked_slices"]
    assert locks == {"z": [5, 8, 11]}
    assert client.delete(url(session, seg, "/locks/z/5")).json()["locked_slices"] == {"z": [8, 11]}
    assert client.get(url(session, seg)).json()["locked_slices"] == {"z": [8, 11]}


def test_cancel_midway_keeps_the_previous_revision(client, store, worker, totalseg, kidney):
    session, seg, base = drawn_slice(client, store, totalseg, kidney, 11)
    # slow-test holds before its 4th slice until released: running, at step 3, for sure
    job = client.post(
        url(session, seg, "/propagate"),
        json={
            "start_index": 11,
            "method": "slow-test",
            "params": {"hold_after": 3, "hold_name": session["id"]},
        },
    ).json()
    body = wait_step(client, job["id"], 3)
    assert body["state"] == "running" and body["progress"]["step"] == 3
    assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["cancel_requested"] is True
    demo_kinds.release(store.jobs.redis, f"slow-test:{session['id']}")
    done = wait_done(client, job["id"])
    assert done["state"] == "cancelled" and done["result_revision"] is None
    assert done["progress"]["step"] == 4  # it stopped after the slice it was on
    segment = client.get(url(session, seg)).json()
    assert segment["revision"] == base and segment["locked_slices"] == {}
    assert np.array_equal(
        full_mask(client, session["id"], seg), full_mask(client, session["id"], seg, revision=base)
    )
    assert full_mask(client, session["id"], seg).sum() == kidney[11].sum()


def test_bad_requests(client, store, worker, totalseg, kidney):
    session, seg, base = drawn_slice(client, store, totalseg, kidney, 11)
    post = lambda body, **kw: client.post(url(session, seg, "/propagate"), json=body, **kw)
    assert post({"start_index": 2}).json()["error"] == "invalid_prompt"  # empty slice
    assert post({"start_index": 99}).status_code == 422
    assert post({"method": "nope"}).json()["error"] == "unknown_name"
    assert post({"params": {"nope": 1}}).json()["error"] == "invalid_prompt"
    assert post({"axis": "w"}).status_code == 422
    assert post({}, headers={"If-Match": '"1"'}).json()["error"] == "revision_conflict"
    assert client.put(url(session, seg, "/locks/z/99")).status_code == 422
    click = {
        "type": "click",
        "dim": "2d",
        "plane": {"axis": "z", "index": 11},
        "clicks": [{"zyx": [11, 50, 50]}],
    }
    bad = client.post(
        url(session, seg, "/interactions"), json={**click, "propagate": {"method": "nope"}}
    )
    assert bad.json()["error"] == "unknown_name"  # checked before the click is applied
    three_d = client.post(
        url(session, seg, "/interactions"),
        json={**click, "dim": "3d", "plane": None, "propagate": {}},
    )
    assert three_d.status_code == 422
    assert client.get(url(session, seg)).json()["revision"] == base
    empty = new_segment(client, session["id"], "empty")
    assert client.post(url(session, empty["id"], "/propagate"), json={}).status_code == 422
    caps = client.get("/v1/capabilities").json()
    names = [m["name"] for m in caps["propagation_methods"]]
    assert names[0] == "propnet-2d-seeds" and "graphcut-seeds" in names  # the default first
    assert {"propagate", "noop"} <= {k["name"] for k in caps["job_kinds"]}


def test_the_propagation_network_propagates_a_held_out_organ(
    client, store, worker, totalseg, kidney
):
    """The trained network (kidneys are held out of its training) through API, queue and worker."""
    session, seg, base = drawn_slice(client, store, totalseg, kidney, 11)
    accepted = client.post(
        url(session, seg, "/propagate"),
        json={"axis": "z", "method": "propnet-2d", "base_revision": base},
    )
    assert accepted.status_code == 202, accepted.text
    done = wait_done(client, accepted.json()["id"], timeout_s=60)
    assert done["state"] == "succeeded", done
    assert done["result"]["method"] == "propnet-2d"
    mask = full_mask(client, session["id"], seg)
    assert mask[10].any() and mask[12].any()
    assert dice(mask, kidney) > 0.75  # measured 0.85 from the largest slice (README)
