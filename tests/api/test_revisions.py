"""Revisions: deltas, undo/redo bit for bit, stale revisions, history as an audit trail."""

from __future__ import annotations

import numpy as np

from medseg_protocol import codec
from tests.api.helpers import full_mask, new_segment, upload

LIVER_CLICK = [15, 50, 40]


def click(client, url, zyx, foreground=True, **extra):
    return client.post(
        f"{url}/interactions",
        json={"type": "click", "clicks": [{"zyx": zyx, "foreground": foreground}], **extra},
    )


def test_deltas_undo_redo_and_conflicts(client, totalseg):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    sid = session["id"]
    segment = new_segment(client, sid)
    url = f"/v1/sessions/{sid}/segments/{segment['id']}"
    local = np.zeros(session["shape"], dtype=bool)

    first = click(client, url, LIVER_CLICK)
    assert first.status_code == 200, first.text
    first = first.json()
    assert (
        first["previous_revision"] == segment["revision"] and first["delta"]["changed_voxels"] > 0
    )
    local = codec.apply_delta(local, first["delta"])
    assert np.array_equal(local, full_mask(client, sid, segment["id"]))

    second = click(client, url, [15, 60, 60], foreground=False, base_revision=first["revision"])
    assert second.status_code == 200, second.text
    second = second.json()
    local = codec.apply_delta(local, second["delta"])
    after_second = full_mask(client, sid, segment["id"])
    assert np.array_equal(local, after_second)

    # a stale revision (body field or If-Match) gets 409 and changes nothing
    stale = click(client, url, [10, 50, 40], base_revision=first["revision"])
    assert stale.status_code == 409 and stale.json()["error"] == "revision_conflict"
    stale = client.post(f"{url}/undo", headers={"If-Match": f'"{first["revision"]}"'})
    assert stale.status_code == 409
    assert client.get(url).json()["revision"] == second["revision"]

    undo = client.post(f"{url}/undo", headers={"If-Match": f'"{second["revision"]}"'}).json()
    assert undo["revision"] == first["revision"] and undo["can_redo"]
    local = codec.apply_delta(local, undo["delta"])
    assert np.array_equal(local, full_mask(client, sid, segment["id"]))
    assert np.array_equal(local, full_mask(client, sid, segment["id"], first["revision"]))

    undo2 = client.post(f"{url}/undo").json()
    assert undo2["revision"] == segment["revision"] and not undo2["can_undo"]
    assert not full_mask(client, sid, segment["id"]).any()
    nothing = client.post(f"{url}/undo")  # nothing left to undo
    assert nothing.status_code == 409 and nothing.json()["error"] == "nothing_to_undo"

    redo = client.post(f"{url}/redo").json()
    redo = client.post(f"{url}/redo").json()
    assert redo["revision"] == second["revision"] and not redo["can_redo"]
    assert np.array_equal(full_mask(client, sid, segment["id"]), after_second)

    # delta between any two revisions
    delta = client.get(
        f"{url}/delta", params={"from": segment["revision"], "to": second["revision"]}
    ).json()
    assert np.array_equal(codec.apply_delta(np.zeros_like(local), delta), after_second)

    history = client.get(f"{url}/history").json()
    kinds = [r["interaction"]["type"] for r in history["revisions"]]
    assert kinds == ["create", "click", "click"] and history["head"] == second["revision"]
    record = history["revisions"][2]["interaction"]
    assert record["method"] == "geodesic-graphcut" and record["marks"]["bg"] == [[15, 60, 60]]
    assert set(history["revisions"][1]["timings_ms"]) >= {"load", "compute", "compute.graphcut"}


def test_new_change_after_undo_drops_redo(client, totalseg):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    segment = new_segment(client, session["id"])
    url = f"/v1/sessions/{session['id']}/segments/{segment['id']}"
    click(client, url, LIVER_CLICK)
    client.post(f"{url}/undo")
    fork = click(client, url, [15, 50, 45]).json()
    assert not fork["can_redo"]
    nothing = client.post(f"{url}/redo")  # its own code, not undo's
    assert nothing.status_code == 409, nothing.text
    assert nothing.json()["error"] == "nothing_to_redo"
    assert "nothing to redo" in nothing.json()["message"]


def test_label_map_never_overlaps_but_per_segment_masks_do(client, totalseg):
    import io
    import zipfile

    import nibabel as nib

    session = upload(client, totalseg / "ct_3mm.nii.gz")
    sid = session["id"]
    a, b = new_segment(client, sid, "a"), new_segment(client, sid, "b")
    for seg in (a, b):  # same click: the masks overlap
        click(client, f"/v1/sessions/{sid}/segments/{seg['id']}", LIVER_CLICK)
    exported = client.get(f"/v1/sessions/{sid}/export", params={"format": "nifti"})
    labels = nib.Nifti1Image.from_bytes(__import__("gzip").decompress(exported.content))
    data = np.asarray(labels.dataobj)
    assert set(np.unique(data)) <= {0, a["label"], b["label"]}
    assert (data == b["label"]).sum() == full_mask(client, sid, b["id"]).sum()  # later wins
    zipped = client.get(f"/v1/sessions/{sid}/export", params={"per_segment": True})
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        assert len(archive.namelist()) == 2


def test_a_change_answers_its_etag_and_the_change_result_schema(client, totalseg):
    """Clicks, undo and redo answer JSON serialized by pydantic directly (not through
    FastAPI's response_model pass): the body is a ChangeResult as before, with its ETag."""
    from medseg.api.schemas import ChangeResult

    session = upload(client, totalseg / "ct_3mm.nii.gz")
    segment = new_segment(client, session["id"])
    url = f"/v1/sessions/{session['id']}/segments/{segment['id']}"
    answers = [click(client, url, LIVER_CLICK), client.post(f"{url}/undo"),
               client.post(f"{url}/redo")]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        body = answer.json()
        assert answer.headers["ETag"] == f'"{body["revision"]}"'
        assert ChangeResult.model_validate(body).model_dump(mode="json") == body
    assert answers[0].json()["timings_ms"]["compute"] > 0 and answers[0].json()["roi"]
    assert answers[1].json()["can_redo"] and not answers[2].json()["can_redo"]
