"""Issue 17: one interaction removed from a segment's history. The new head revision is the
history replayed without it (bit for bit what the same interactions give on a fresh segment),
it undoes like any change, a later removal sees through an earlier one, and what cannot be
replayed is refused with a clear 4xx (nothing written)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medseg_protocol import codec
from tests.api.helpers import full_mask, new_segment, upload
from tests.api.test_accuracy_real_data import largest_slice, organ_reference

SEG = "ct_3mm_seg.nii.gz"


def _post(client, sid, seg, body):
    response = client.post(f"/v1/sessions/{sid}/segments/{seg}/interactions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _replay(client, sid, bodies) -> np.ndarray:
    seg = new_segment(client, sid, "replay")["id"]
    for body in bodies:
        _post(client, sid, seg, body)
    return full_mask(client, sid, seg)


def test_remove_an_interaction_replays_the_rest(client, totalseg):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    sid = session["id"]
    liver = organ_reference(totalseg, SEG, "liver", session)
    spleen = organ_reference(totalseg, SEG, "spleen", session)
    z = largest_slice(liver)
    liver, spleen = liver * (np.arange(liver.shape[0]) == z)[:, None, None], \
        spleen * (np.arange(spleen.shape[0]) == z)[:, None, None]
    assert spleen.sum() > 100  # both organs on the slice
    plane = {"dim": "2d", "plane": {"axis": "z", "index": z}}
    at = lambda organ: [z, *(int(v) for v in ndimage.center_of_mass(organ[z]))]
    on_liver = {"type": "click", "method": "geodesic-graphcut", **plane,
                "clicks": [{"zyx": at(liver)}]}
    on_spleen = {"type": "click", "method": "geodesic-graphcut", **plane,
                 "clicks": [{"zyx": at(spleen)}]}
    paint = {"type": "paint", "plane": plane["plane"], "radius_mm": 6,
             "path": [[z, 10, 10], [z, 10, 40]]}
    seg = new_segment(client, sid)["id"]
    url = f"/v1/sessions/{sid}/segments/{seg}"
    revisions = [_post(client, sid, seg, body)["revision"] for body in (on_liver, on_spleen, paint)]
    head = full_mask(client, sid, seg)
    assert head[spleen].mean() > 0.5 and head[liver].mean() > 0.2 and head[z, 10, 25]

    # remove the spleen click: liver click + paint, replayed
    removed = client.delete(f"{url}/interactions/{revisions[1]}")
    assert removed.status_code == 200, removed.text
    change = removed.json()
    after = full_mask(client, sid, seg)
    assert np.array_equal(codec.apply_delta(head, change["delta"]), after)
    assert np.array_equal(after, _replay(client, sid, [on_liver, paint]))
    assert not after[spleen].any() and after[z, 10, 25] and after[liver].mean() > 0.2
    history = client.get(f"{url}/history").json()
    last = history["revisions"][-1]["interaction"]
    assert last["type"] == "remove" and last["removed"] == revisions[1]
    assert removed.headers["ETag"] == f'"{history["head"]}"'

    # one undo brings it back, redo removes it again
    assert client.post(f"{url}/undo").status_code == 200
    assert np.array_equal(full_mask(client, sid, seg), head)
    assert client.post(f"{url}/redo").status_code == 200
    # a later removal sees through the first: only the paint is left
    second = client.delete(f"{url}/interactions/{revisions[0]}")
    assert second.status_code == 200, second.text
    assert np.array_equal(full_mask(client, sid, seg), _replay(client, sid, [paint]))

    # refused, nothing written: removed already, the segment's first revision, a stale
    # If-Match, another segment's revision
    before = client.get(f"{url}/history").json()["head"]
    again = client.delete(f"{url}/interactions/{revisions[1]}")
    assert again.status_code == 422 and "removed already" in again.json()["message"]
    first = client.get(f"{url}/history").json()["revisions"][0]["revision"]
    create = client.delete(f"{url}/interactions/{first}")
    assert create.status_code == 422 and "not an interaction" in create.json()["message"]
    stale = client.delete(f"{url}/interactions/{revisions[2]}", headers={"If-Match": '"1"'})
    assert stale.status_code == 409
    other = new_segment(client, sid, "other")["id"]
    assert client.delete(f"/v1/sessions/{sid}/segments/{other}/interactions/"
                         f"{revisions[2]}").status_code == 404
    assert client.get(f"{url}/history").json()["head"] == before


def test_threshold_stroke_is_a_revision_that_undoes_and_locks(client, totalseg):
    """A threshold stroke over the liver's edge at a soft-tissue window paints part of what a
    paint stroke there paints (not the fat or air under the brush), locks its slice and undoes;
    a removal replays it; a reversed window is a 422."""
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    sid = session["id"]
    liver = organ_reference(totalseg, SEG, "liver", session)
    z = largest_slice(liver)
    ys, xs = np.nonzero(liver[z])
    y = int(np.median(ys))
    row = np.nonzero(liver[z, y])[0]
    path = [[z, y, max(int(row.min()) - 15, 0)], [z, y, int(row.min()) + 15]]  # across the edge
    stroke = {"plane": {"axis": "z", "index": z}, "radius_mm": 6, "path": path}
    painted_seg, seg = new_segment(client, sid, "paint")["id"], new_segment(client, sid)["id"]
    _post(client, sid, painted_seg, {"type": "paint", **stroke})
    painted = full_mask(client, sid, painted_seg)
    change = _post(client, sid, seg, {"type": "threshold", **stroke, "low": 0, "high": 200})
    mask = full_mask(client, sid, seg)
    assert 0 < mask.sum() < painted.sum() and not (mask & ~painted).any()
    assert (mask & liver).sum() > 0.8 * (painted & liver).sum()  # liver is ~50-70 HU
    assert change["revision"] == client.get(f"/v1/sessions/{sid}/segments/{seg}").json()["revision"]
    assert client.get(f"/v1/sessions/{sid}/segments/{seg}").json()["locked_slices"] == {"z": [z]}
    url = f"/v1/sessions/{sid}/segments/{seg}"
    assert client.post(f"{url}/undo").status_code == 200 and not full_mask(client, sid, seg).any()
    assert client.post(f"{url}/redo").status_code == 200
    assert np.array_equal(full_mask(client, sid, seg), mask)
    bad = client.post(f"{url}/interactions", json={"type": "threshold", **stroke, "low": 200,
                                                   "high": 0})
    assert bad.status_code == 422 and "exceeds" in bad.json()["message"]
    _post(client, sid, seg, {"type": "paint", **stroke, "path": [[z, 5, 5]]})
    assert client.delete(f"{url}/interactions/{change['revision']}").status_code == 200
    assert not (full_mask(client, sid, seg) & liver).any()


def test_a_removal_that_leaves_a_kept_interaction_unable_to_run_names_it(client, totalseg):
    """Removing the only foreground click leaves a later background click to start the mask,
    which no method can. The 422 used to be the method's own words ("nothing to segment: add
    a foreground click"), as if the DELETE itself were malformed; it now names the kept
    revision that cannot run again and what to do. Nothing is written."""
    sid = upload(client, totalseg / "ct_3mm.nii.gz")["id"]
    seg = new_segment(client, sid)["id"]
    url = f"/v1/sessions/{sid}/segments/{seg}"
    fg = _post(client, sid, seg, {"type": "click", "dim": "3d",
                                  "clicks": [{"zyx": [24, 49, 86]}]})["revision"]
    bg = _post(client, sid, seg, {"type": "click", "dim": "3d",
                                  "clicks": [{"zyx": [24, 52, 63], "foreground": False}]})
    head = client.get(url).json()["revision"]
    refused = client.delete(f"{url}/interactions/{fg}")
    assert refused.status_code == 422, refused.text
    message = refused.json()["message"]
    assert f"removing revision {fg} leaves revision {bg['revision']}" in message, message
    assert "geodesic-graphcut" in message and "foreground" in message  # the method's reason
    assert client.get(url).json()["revision"] == head
