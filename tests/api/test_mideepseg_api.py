"""MIDeepSeg through the API with a tiny random model: `points` starts a segment, `click`s with
method mideepseg refine it, both answer deltas; undo/redo and replay stay exact; clear 422s."""

from __future__ import annotations

import numpy as np
import pytest

from medseg_protocol import codec
from tests.api.helpers import full_mask, new_segment, upload
from tests.models.tiny import tiny_models_dir


@pytest.fixture(autouse=True)
def models(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MEDSEG_MODELS_DIR", str(tiny_models_dir(tmp_path_factory)))


@pytest.fixture
def session(client, tmp_path):
    import nibabel as nib

    z, y, x = np.ogrid[:12, :48, :56]
    ball = ((z - 6) / 4.0) ** 2 + ((y - 24) / 12.0) ** 2 + ((x - 28) / 14.0) ** 2 < 1
    volume = (ball * 100 + np.random.default_rng(0).normal(0, 5, ball.shape)).astype(np.int16)
    path = tmp_path / "ball.nii.gz"
    nib.save(nib.Nifti1Image(volume.transpose(2, 1, 0), np.diag([0.8, 0.8, 2.0, 1.0])), path)
    return upload(client, path)


POINTS = [[6, 14, 28], [6, 34, 28], [6, 24, 16], [6, 24, 40]]
PLANE = {"axis": "z", "index": 6}


def post(client, sid, seg, body):
    return client.post(f"/v1/sessions/{sid}/segments/{seg}/interactions", json=body)


def test_points_then_refinement_clicks_answer_deltas_and_undo_is_exact(client, session):
    sid = session["id"]
    seg = new_segment(client, sid)["id"]
    r = post(client, sid, seg, {"type": "points", "dim": "2d", "plane": PLANE, "points": POINTS})
    assert r.status_code == 200, r.text
    first = r.json()
    mask = codec.apply_delta(np.zeros(session["shape"], bool), first["delta"])
    assert np.array_equal(mask, full_mask(client, sid, seg))
    for zyx, fg in [([6, 24, 28], True), ([6, 2, 2], False)]:
        for refinement in ("if-gc", "gc"):
            r = post(client, sid, seg, {"type": "click", "method": "mideepseg", "dim": "2d",
                                        "plane": PLANE, "params": {"refinement": refinement},
                                        "clicks": [{"zyx": zyx, "foreground": fg}]})
            assert r.status_code == 200, r.text
            mask = codec.apply_delta(mask, r.json()["delta"])
            assert mask[tuple(zyx)] == fg and all(mask[tuple(p)] for p in POINTS)
    head = r.json()["revision"]
    assert np.array_equal(mask, full_mask(client, sid, seg))
    history = client.get(f"/v1/sessions/{sid}/segments/{seg}/history").json()["revisions"]
    points_rev = next(h for h in history if h["interaction"]["type"] == "points")
    assert points_rev["interaction"]["marks"]["points"] == POINTS
    assert points_rev["interaction"]["result"]["model"] == "mideepseg-2d-egd@0.0.1"
    # undo twice, redo twice: the masks of those revisions come back exactly
    before = full_mask(client, sid, seg, head - 1)
    assert client.post(f"/v1/sessions/{sid}/segments/{seg}/undo").status_code == 200
    assert np.array_equal(full_mask(client, sid, seg), before)
    # a refinement after an undo refines the undone-to revision's stored CNN output
    r = post(client, sid, seg, {"type": "click", "method": "mideepseg", "dim": "2d",
                                "plane": PLANE, "params": {"refinement": "gc"},
                                "clicks": [{"zyx": [6, 2, 2], "foreground": False}]})
    assert r.status_code == 200
    assert np.array_equal(full_mask(client, sid, seg), full_mask(client, sid, seg, head))


def test_points_in_3d_restart_a_segment(client, session):
    sid = session["id"]
    seg = new_segment(client, sid)["id"]
    assert post(client, sid, seg, {"type": "click", "dim": "3d",
                                   "clicks": [{"zyx": [6, 24, 28]}]}).status_code == 200
    points = [[3, 24, 28], [9, 24, 28], *POINTS]
    r = post(client, sid, seg, {"type": "points", "dim": "3d", "points": points})
    assert r.status_code == 200, r.text
    head = client.get(f"/v1/sessions/{sid}/segments/{seg}/history").json()["revisions"][-1]
    assert head["interaction"]["result"]["model"] == "mideepseg-3d-egd@0.0.1"
    r = post(client, sid, seg, {"type": "click", "method": "mideepseg", "dim": "3d",
                                "clicks": [{"zyx": [6, 24, 28]}]})
    assert r.status_code == 200, r.text
    assert full_mask(client, sid, seg)[6, 24, 28]


@pytest.mark.parametrize("body, status, message", [
    ({"type": "points", "dim": "2d", "plane": PLANE, "points": POINTS[:2]}, 422,
     "at least 3 interior margin points"),
    ({"type": "click", "method": "mideepseg", "dim": "2d", "plane": PLANE,
      "clicks": [{"zyx": [6, 24, 28]}]}, 422, "nothing to refine here"),
    ({"type": "points", "dim": "2d", "plane": PLANE, "points": POINTS,
      "params": {"encoding": "gaussian"}}, 422, "available: mideepseg-2d-egd"),
    ({"type": "points", "dim": "2d", "plane": PLANE, "points": POINTS,
      "method": "geodesic-graphcut"}, 422, "does not take 'points'"),
    ({"type": "points", "dim": "2d", "plane": PLANE, "points": [[5, 1, 1], *POINTS]}, 422,
     "not on the 2D plane z=6"),
])
def test_bad_mideepseg_requests_are_clear_422s(client, session, body, status, message):
    sid = session["id"]
    created = new_segment(client, sid)
    r = post(client, sid, created["id"], body)
    assert r.status_code == status and message in r.json()["message"], r.text
    assert (
        client.get(f"/v1/sessions/{sid}/segments/{created['id']}").json()["revision"]
        == created["revision"]
    )


def test_capabilities_list_points_and_mideepseg(client):
    caps = client.get("/v1/capabilities").json()
    assert "points" in caps["interaction_types"] and caps["default_method"] == "geodesic-graphcut"
    method = next(m for m in caps["methods"] if m["name"] == "mideepseg")
    assert method["params"]["lamb"] == 5.0 and method["params"]["refinement"] == "if-gc"
    assert set(method["interaction_types"]) == {"points", "click"}
