"""A 2D photo-like image: upload PNG, a box and a click, export the label map as PNG."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from medseg.algorithms.metrics import dice
from tests.api.helpers import full_mask, new_segment


def disc_png() -> tuple[bytes, np.ndarray]:
    y, x = np.ogrid[:160, :200]
    disc = (y - 80) ** 2 + (x - 90) ** 2 < 40**2
    rng = np.random.default_rng(1)
    image = np.where(disc, 180, 60) + rng.normal(0, 8, size=disc.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue(), disc


def test_png_click_box_and_png_export(client):
    content, disc = disc_png()
    response = client.post("/v1/sessions", files=[("files", ("photo.png", content))])
    assert response.status_code == 201, response.text
    session = response.json()
    assert session["shape"] == [1, 160, 200]
    sid = session["id"]

    clicked = new_segment(client, sid, "by click")
    url = f"/v1/sessions/{sid}/segments/{clicked['id']}/interactions"
    change = client.post(url, json={"type": "click", "dim": "2d", "clicks": [{"zyx": [0, 80, 90]}]})
    assert change.status_code == 200, change.text
    assert dice(full_mask(client, sid, clicked["id"])[0], disc) > 0.9

    boxed = new_segment(client, sid, "by box")
    url = f"/v1/sessions/{sid}/segments/{boxed['id']}/interactions"
    change = client.post(url, json={"type": "box", "dim": "2d",
                                    "box": {"lo": [0, 35, 45], "hi": [0, 125, 135]}})
    assert change.status_code == 200, change.text
    assert dice(full_mask(client, sid, boxed["id"])[0], disc) > 0.85

    exported = client.get(f"/v1/sessions/{sid}/export", params={"format": "png"})
    assert exported.status_code == 200 and exported.headers["content-type"] == "image/png"
    labels = np.asarray(Image.open(io.BytesIO(exported.content)))
    assert labels.shape == (160, 200)
    assert set(np.unique(labels)) <= {0, clicked["label"], boxed["label"]}
    assert dice(labels > 0, disc) > 0.85


def test_png_export_of_a_volume_names_the_formats_that_fit(client, totalseg):
    from tests.api.helpers import upload

    session = upload(client, totalseg / "ct_3mm.nii.gz")
    segment = new_segment(client, session["id"])
    for url in (f"/v1/sessions/{session['id']}/export",
                f"/v1/sessions/{session['id']}/segments/{segment['id']}/mask"):
        answer = client.get(url, params={"format": "png"})
        # a format that cannot hold a volume, not a bad prompt
        assert answer.status_code == 422, answer.text
        body = answer.json()
        assert body["error"] == "unsupported_export_format"
        assert "2D images only" in body["message"] and "30 slices" in body["message"]
        assert "nifti" in body["message"] and "nrrd" in body["message"]


def test_propagation_on_a_2d_image_is_refused_and_changes_nothing(client):
    """A PNG is one slice: along z nothing lies beyond it, along y or x its "slices" are rows
    of pixels. Propagating was accepted and, along y, the job overwrote rows with predictions
    (the disc's mask shrank to a few pixels); now a 422 names the image as 2D, no job is
    queued and the segment keeps its revision."""
    content, _ = disc_png()
    sid = client.post("/v1/sessions", files=[("files", ("photo.png", content))]).json()["id"]
    segment = new_segment(client, sid, "disc")
    base = f"/v1/sessions/{sid}/segments/{segment['id']}"
    click = {"type": "click", "dim": "2d", "plane": {"axis": "z", "index": 0},
             "clicks": [{"zyx": [0, 80, 90]}]}
    assert client.post(f"{base}/interactions", json=click).status_code == 200
    head = client.get(base).json()
    for body in ({}, {"axis": "y"}, {"axis": "x", "start_index": 90}):
        refused = client.post(f"{base}/propagate", json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.json()["error"] == "invalid_prompt"
        assert "2D" in refused.json()["message"] and "[1, 160, 200]" in refused.json()["message"]
    # a 2D interaction on a row plane asking to propagate: refused before it is applied
    row_click = {"type": "click", "dim": "2d", "plane": {"axis": "y", "index": 80},
                 "clicks": [{"zyx": [0, 80, 90]}], "propagate": {}}
    refused = client.post(f"{base}/interactions", json=row_click)
    assert refused.status_code == 422 and "2D" in refused.json()["message"], refused.text
    assert client.get(f"/v1/sessions/{sid}/jobs").json() == []
    after = client.get(base).json()
    assert (after["revision"], after["voxels"]) == (head["revision"], head["voxels"])


def test_a_2d_interaction_on_a_plane_the_2d_image_lacks_is_refused(client):
    """On a PNG ([1, Y, X]) a plane across y or x is a row of pixels, not a slice: a click,
    scribble or box on it was accepted and segmented that row. Now a 422 names the plane and
    says the image is 2D; its own plane z=0 (or none) still works."""
    content, disc = disc_png()
    sid = client.post("/v1/sessions", files=[("files", ("photo.png", content))]).json()["id"]
    segment = new_segment(client, sid, "disc")
    base = f"/v1/sessions/{sid}/segments/{segment['id']}"
    bodies = [
        {"type": "click", "clicks": [{"zyx": [0, 80, 90]}]},
        {"type": "scribble", "scribbles": [{"path": [[0, 80, 80], [0, 80, 100]]}]},
        {"type": "box", "box": {"lo": [0, 80, 45], "hi": [0, 80, 135]}},
    ]
    for body in bodies:
        for axis, index in (("y", 80), ("x", 90)):
            if body["type"] != "click" and axis == "x":
                continue  # the marks must lie on the plane to reach the new check
            refused = client.post(f"{base}/interactions", json={
                **body, "dim": "2d", "plane": {"axis": axis, "index": index}})
            assert refused.status_code == 422, refused.text
            answer = refused.json()
            assert answer["error"] == "invalid_prompt"
            assert f"plane {axis}={index}" in answer["message"], answer["message"]
            assert "2D" in answer["message"] and "z=0" in answer["message"]
    assert client.get(base).json()["revision"] == segment["revision"]
    own = client.post(f"{base}/interactions", json={
        **bodies[0], "dim": "2d", "plane": {"axis": "z", "index": 0}})
    assert own.status_code == 200, own.text
    assert dice(full_mask(client, sid, segment["id"])[0], disc) > 0.9


def test_a_3d_interaction_with_a_plane_is_refused(client, totalseg):
    """`plane` means nothing in 3D and was ignored: a body that forgot `dim: "2d"` (the
    default is 3d) ran a 3D segmentation. Now a 422 says so and nothing changes; an explicit
    `"plane": null` stays fine."""
    from tests.api.helpers import upload

    session = upload(client, totalseg / "ct_3mm.nii.gz")
    segment = new_segment(client, session["id"])
    base = f"/v1/sessions/{session['id']}/segments/{segment['id']}"
    click = {"type": "click", "clicks": [{"zyx": [24, 49, 86]}]}
    for extra in ({}, {"dim": "3d"}):
        refused = client.post(f"{base}/interactions", json={
            **click, **extra, "plane": {"axis": "z", "index": 24}})
        assert refused.status_code == 422, refused.text
        answer = refused.json()
        assert answer["error"] == "invalid_prompt"
        assert "dim '3d'" in answer["message"] and "dim '2d'" in answer["message"]
    assert client.get(base).json()["revision"] == segment["revision"]
    fine = client.post(f"{base}/interactions", json={**click, "dim": "3d", "plane": None})
    assert fine.status_code == 200, fine.text
