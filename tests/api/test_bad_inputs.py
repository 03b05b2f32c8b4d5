"""Bad inputs get a clear 4xx naming the problem; the server stays up and no session is harmed."""

from __future__ import annotations

import gzip
import io
import zipfile

import pydicom
import pytest
from fastapi.testclient import TestClient

from medseg.api.app import create_app
from medseg.store import Store
from tests.api.helpers import new_segment, upload
from tests.conftest import KEYS, make_settings


def post_files(client, files):
    return client.post("/v1/sessions", files=[("files", f) for f in files])


def assert_error(response, statuses, *words):
    assert response.status_code in statuses, response.text
    body = response.json()
    assert body["error"] and body["request_id"]
    for word in words:
        assert word.lower() in body["message"].lower(), body["message"]


def test_truncated_nifti(client, totalseg):
    data = (totalseg / "ct_3mm.nii.gz").read_bytes()
    response = post_files(client, [("ct.nii.gz", data[: len(data) // 2])])
    assert_error(response, {400, 422}, "ct.nii.gz")


def test_text_named_nifti(client):
    response = post_files(client, [("notes.nii.gz", b"this is not an image\n" * 20)])
    assert_error(response, {400, 415, 422}, "notes.nii.gz")


def test_dicom_zip_with_mixed_series(client, totalseg):
    paths = sorted((totalseg / "ct_dicom").iterdir())[:4]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, path in enumerate(paths):
            ds = pydicom.dcmread(path)
            if i % 2:
                ds.SeriesInstanceUID = pydicom.uid.generate_uid()
            out = io.BytesIO()
            ds.save_as(out)
            archive.writestr(path.name, out.getvalue())
    response = post_files(client, [("series.zip", buffer.getvalue())])
    assert_error(response, {400, 422}, "series")


def test_unsupported_file(client):
    response = post_files(client, [("report.pdf", b"%PDF-1.4 not an image")])
    assert_error(response, {415}, "supported")


def test_two_gigabyte_claim_is_refused_before_reading(client):
    response = client.post("/v1/sessions", content=b"x" * 10,
                           headers={"Content-Length": str(2 << 30),
                                    "Content-Type": "multipart/form-data; boundary=x"})
    assert_error(response, {413}, "limit")
    assert client.get("/healthz").status_code == 200


def test_zip_bomb_and_gzip_bomb(redis_url):
    settings = make_settings(redis_url, max_uncompressed_bytes=50 << 20)
    with TestClient(create_app(settings, Store.connect(redis_url, 60)),
                    headers={"X-API-Key": KEYS["alice"]}) as c:
        zeros = b"\0" * (200 << 20)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("slice0001.dcm", zeros)
        assert len(buffer.getvalue()) < 1 << 20
        assert_error(post_files(c, [("bomb.zip", buffer.getvalue())]), {413}, "bomb.zip")
        bomb = gzip.compress(zeros, compresslevel=1)
        assert_error(post_files(c, [("bomb.nii.gz", bomb)]), {413, 422}, "bomb.nii.gz")
        assert c.get("/healthz").status_code == 200


def test_too_many_voxels(redis_url, totalseg):
    settings = make_settings(redis_url, max_voxels=10_000)
    with TestClient(create_app(settings, Store.connect(redis_url, 60)),
                    headers={"X-API-Key": KEYS["alice"]}) as c:
        response = post_files(c, [("ct.nii.gz", (totalseg / "ct_3mm.nii.gz").read_bytes())])
        assert_error(response, {413}, "10")


@pytest.mark.parametrize("body, words", [
    ({"type": "click", "clicks": [{"zyx": [15, 50, 500]}]}, ["outside", "500"]),
    ({"type": "click", "clicks": [{"zyx": [-1, 50, 50]}]}, ["outside"]),
    ({"type": "click", "clicks": [{"zyx": [15, 50]}]}, ["zyx"]),
    ({"type": "box", "box": {"lo": [20, 60, 60], "hi": [10, 70, 70]}}, ["lo"]),
    ({"type": "click", "dim": "2d", "clicks": [{"zyx": [15, 50, 50]}]}, ["plane"]),
    ({"type": "click", "dim": "2d", "plane": {"axis": "z", "index": 14},
      "clicks": [{"zyx": [15, 50, 50]}]}, ["not on the 2d plane"]),
    ({"type": "click", "method": "magic", "clicks": [{"zyx": [15, 50, 50]}]}, ["unknown method"]),
    ({"type": "click", "params": {"nope": 1}, "clicks": [{"zyx": [15, 50, 50]}]}, ["nope"]),
    ({"type": "lasso"}, ["type"]),
])
def test_bad_interactions_change_nothing(client, totalseg, body, words):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    segment = new_segment(client, session["id"])
    url = f"/v1/sessions/{session['id']}/segments/{segment['id']}"
    response = client.post(f"{url}/interactions", json=body)
    assert_error(response, {422}, *words)
    after = client.get(url).json()
    assert after["revision"] == segment["revision"] and after["voxels"] == 0
    assert len(client.get(f"{url}/history").json()["revisions"]) == 1
