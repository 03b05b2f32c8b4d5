"""Image planes for viewers: raw little-endian voxels, compressed on request, tenant-checked;
and the viewer's static files at /ui."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
import zstandard

from tests.api.helpers import upload


def plane(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    rows, cols = (int(v) for v in response.headers["X-Shape"].split(","))
    return np.frombuffer(
        response.content, dtype=np.dtype(response.headers["X-Dtype"]).newbyteorder("<")
    ).reshape(rows, cols)


@pytest.fixture
def ct(client, totalseg):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    volume = np.asarray(nib.load(totalseg / "ct_3mm.nii.gz").dataobj).transpose(2, 1, 0)
    return session, volume


@pytest.mark.parametrize("axis, index", [("z", 0), ("z", 17), ("y", 50), ("x", 121)])
def test_slice_equals_the_image_plane(client, ct, axis, index):
    session, volume = ct
    response = client.get(
        f"/v1/sessions/{session['id']}/slices/{axis}/{index}",
        headers={"Accept-Encoding": "identity"},
    )
    expected = np.take(volume, index, axis="zyx".index(axis))
    got = plane(response)
    assert response.headers["X-Dtype"] == "int16" and "Content-Encoding" not in response.headers
    assert got.shape == expected.shape and np.array_equal(got, expected)


def test_slice_is_compressed_when_the_client_accepts_it(client, ct):
    session, volume = ct
    url = f"/v1/sessions/{session['id']}/slices/z/12"
    # httpx decodes gzip itself; ask the app for the raw body through a stream
    with client.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        raw = b"".join(response.iter_raw())
    assert np.array_equal(np.frombuffer(gzip.decompress(raw), "<i2").reshape(101, 122), volume[12])
    with client.stream("GET", url, headers={"Accept-Encoding": "zstd, gzip"}) as response:
        assert response.headers["Content-Encoding"] == "zstd"
        raw = b"".join(response.iter_raw())
    data = zstandard.ZstdDecompressor().decompress(raw, max_output_size=1 << 20)
    assert np.array_equal(np.frombuffer(data, "<i2").reshape(101, 122), volume[12])


def test_slice_errors(client, bob, ct):
    session, _ = ct
    base = f"/v1/sessions/{session['id']}/slices"
    outside = client.get(f"{base}/z/30")
    assert outside.status_code == 422 and "outside 0..29" in outside.json()["message"]
    assert client.get(f"{base}/w/3").status_code == 422
    assert client.get(f"{base}/z/-1").status_code == 422
    assert bob.get(f"{base}/z/3").status_code == 404  # another tenant's session
    assert client.get(f"{base}/z/3", headers={"X-API-Key": "wrong"}).status_code == 401


def test_png_image_slice_is_uint8(client, tmp_path):
    from PIL import Image

    pixels = (np.arange(40 * 60) % 251).astype(np.uint8).reshape(40, 60)
    Image.fromarray(pixels).save(tmp_path / "gray.png")
    session = upload(client, tmp_path / "gray.png")
    got = plane(client.get(f"/v1/sessions/{session['id']}/slices/z/0"))
    assert got.dtype == np.uint8 and np.array_equal(got, pixels)


def test_viewer_is_served_at_ui(client):
    root = client.get("/", follow_redirects=False)
    assert root.status_code in (302, 307) and root.headers["location"] == "/ui/"
    page = client.get("/ui/")
    assert page.status_code == 200 and "<title>medseg" in page.text
    assert page.headers["Cache-Control"] == "no-cache"
    codec = client.get("/ui/lib/maskcodec.js")
    assert codec.status_code == 200 and "export function applyDelta" in codec.text
    assert client.get("/ui/../pyproject.toml").status_code == 404


def test_without_viewer_files_root_goes_to_docs(redis_url, store, tmp_path):
    from fastapi.testclient import TestClient

    from medseg.api.app import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(redis_url, clients_dir=tmp_path), store)
    with TestClient(app) as c:
        assert c.get("/", follow_redirects=False).headers["location"] == "/docs"
        assert c.get("/ui/").status_code == 404
