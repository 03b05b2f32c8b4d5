"""Uploads that are damaged or odd: NaN voxels, missing DICOM pixels, names that carry
patient data. The answer names the problem in plain words and never the file's name."""

from __future__ import annotations

import io
import zipfile

import nibabel as nib
import numpy as np
import pydicom
import pytest

from medseg_protocol import codec
from tests.api.test_bad_inputs import assert_error, post_files

MARKER = "PHI-MARKER-Jane-Doe"


def nifti_bytes(array_xyz: np.ndarray, zooms=(1.0, 1.0, 1.0)) -> bytes:
    image = nib.Nifti1Image(array_xyz, np.diag([*zooms, 1.0]))
    return image.to_bytes()


def disk_volume() -> np.ndarray:
    """(x, y, z) float32, 64 x 64 x 5: a bright disk of radius 10 on a dark, mildly textured
    background in each slice, and ONE NaN voxel per slice far from the disk."""
    x, y = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    slice_ = np.where((x - 32) ** 2 + (y - 32) ** 2 <= 100, 200.0, 0.0)
    slice_ += 5.0 * np.sin(x / 3.0) * np.cos(y / 5.0)
    volume = np.repeat(slice_[:, :, None], 5, axis=2).astype(np.float32)
    volume[3, 60, :] = np.nan
    return volume


def click_mask(client, volume_xyz: np.ndarray) -> tuple[dict, np.ndarray]:
    """(the session, the mask of slice 2 after one 2D click in the disk)."""
    response = post_files(client, [("image.nii.gz", nifti_bytes(volume_xyz))])
    assert response.status_code == 201, response.text
    session = response.json()
    seg = client.post(f"/v1/sessions/{session['id']}/segments", json={}).json()["id"]
    url = f"/v1/sessions/{session['id']}/segments/{seg}"
    click = {"type": "click", "dim": "2d", "plane": {"axis": "z", "index": 2},
             "clicks": [{"zyx": [2, 32, 32]}]}
    assert client.post(f"{url}/interactions", json=click).status_code == 200
    return session, codec.decode_mask(client.get(f"{url}/mask").json())[2]


def test_nan_voxels_are_replaced_and_reported_and_a_click_stays_local(client):
    """One NaN voxel per slice made the whole ROI NaN, and a click then marked the whole
    slice (200, silently wrong). Now a NaN reads as the lowest finite value (background),
    the session says how many there were, and the click gives what it gives on the same
    image with those voxels set to the background by hand."""
    with_nan = disk_volume()
    session, mask = click_mask(client, with_nan)
    assert len(session["warnings"]) == 1 and "5 of 20480 voxels" in session["warnings"][0]
    assert client.get(f"/v1/sessions/{session['id']}").json()["warnings"] == session["warnings"]
    assert 0 < mask.sum() < mask.size / 4  # the disk's region, not the whole slice
    clean = np.nan_to_num(with_nan, nan=float(np.nanmin(with_nan)))
    clean_session, clean_mask = click_mask(client, clean)
    assert clean_session["warnings"] == []
    assert np.array_equal(mask, clean_mask)
    plane = client.get(f"/v1/sessions/{session['id']}/slices/z/2")
    pixels = np.frombuffer(plane.content, dtype=plane.headers["X-Dtype"])
    assert np.isfinite(pixels).all()


def test_an_image_without_a_finite_voxel_is_refused(client):
    volume = np.full((8, 8, 2), np.nan, dtype=np.float32)
    response = post_files(client, [("all-nan.nii.gz", nifti_bytes(volume))])
    assert_error(response, {422}, "every voxel", "nan")
    assert response.json()["error"] == "corrupt_image"


def test_an_implausible_voxel_size_is_refused(client):
    volume = np.zeros((8, 8, 2), dtype=np.float32)
    response = post_files(client, [("tiny.nii.gz", nifti_bytes(volume, (1e-9, 1e9, 1.0)))])
    assert_error(response, {422}, "voxel size", "plausible")
    assert "np." not in response.text


@pytest.mark.parametrize("name, content", [
    (f"{MARKER}.nii.gz", f"{MARKER} is not an image\n".encode() * 20),  # text, NIfTI name
    (f"{MARKER}.nii.gz", b"\x1f\x8b" + b"\0" * 100),  # a broken gzip stream
    (f"{MARKER}.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100),  # Pillow quoted a BytesIO repr
    (f"{MARKER}.nrrd", b"NRRD0004\ntype: nonsense\n\n"),
    (f"{MARKER}.pdf", b"%PDF-1.4 " + MARKER.encode()),
])
def test_error_never_echoes_the_file_name_or_its_bytes(client, name, content):
    response = post_files(client, [(name, content)])
    assert response.status_code in (415, 422), response.text
    assert MARKER not in response.text
    assert " at 0x" not in response.text and "b'" not in response.text


def test_zip_and_dicom_errors_name_files_by_position(client, totalseg):
    paths = sorted((totalseg / "ct_dicom").iterdir())[:3]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # a slice cut short, then three good ones
        archive.writestr(f"{MARKER}-slice.dcm", paths[0].read_bytes()[:1500])
        for path in paths:
            archive.writestr(f"{MARKER}-{path.name}", path.read_bytes())
    response = post_files(client, [(f"{MARKER}.zip", buffer.getvalue())])
    assert_error(response, {422}, "file 1 of 4 in the zip archive", "has no pixel data")
    assert MARKER not in response.text
    files = [(f"{MARKER}-{p.name}", p.read_bytes()) for p in paths]
    response = post_files(client, [*files, (f"{MARKER}.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 99)])
    assert_error(response, {415}, "file 4 of 4", "png")
    assert MARKER not in response.text


def test_dicom_slice_without_pixel_data_is_named(client, totalseg):
    """It was dropped and the gap it left was reported as "non-uniform spacing"."""
    paths = sorted((totalseg / "ct_dicom").iterdir())[:5]
    files = []
    for i, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        if i == 2:
            del ds.PixelData
        out = io.BytesIO()
        ds.save_as(out)
        files.append((f"{MARKER}-{i}.dcm", out.getvalue()))
    response = post_files(client, files)
    assert_error(response, {422}, "file 3 of 5 (a dicom slice) has no pixel data")
    assert "spacing" not in response.json()["message"] and MARKER not in response.text


def test_duplicate_dicom_positions_are_plain_numbers(client, totalseg):
    path = sorted((totalseg / "ct_dicom").iterdir())[0]
    twin = pydicom.dcmread(path)
    twin.SOPInstanceUID = pydicom.uid.generate_uid()
    out = io.BytesIO()
    twin.save_as(out)
    response = post_files(client, [(f"{MARKER}-a.dcm", path.read_bytes()),
                                   (f"{MARKER}-b.dcm", out.getvalue())])
    assert_error(response, {422}, "duplicate slice positions", "file 1 of 2", "file 2 of 2")
    assert "np.float64" not in response.text and MARKER not in response.text


@pytest.mark.parametrize("kind", ["nifti", "zip"])
def test_a_decompression_bomb_is_refused_with_413_naming_the_problem(client, bombs, kind):
    path = bombs.path(kind)
    response = post_files(client, [(f"Patient^Jane.{path.name}", path.read_bytes())])
    assert_error(response, {413}, "too large", "decompression bomb", "declares")
    assert response.json()["error"] == "image_too_large"
    assert "Patient" not in response.text and "Jane" not in response.text
