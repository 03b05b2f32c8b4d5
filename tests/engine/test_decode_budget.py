"""Uploads decode against a memory budget: a small compressed file that declares (or holds)
gigabytes is refused from its header, in milliseconds, at a few MB of memory. Each bomb is
decoded in a fresh process (tests/engine/bombs.py) whose peak resident memory is measured;
before the budget the .nii.gz bomb was accepted at +1 GB and the zip bomb cost +2 GB."""

from __future__ import annotations

import gzip
import io
import json
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from medseg.engine.imageio import ImageLimits, load_image
from medseg.errors import CorruptImage, ImageTooLarge
from tests.engine.bombs import nifti_bomb
from tests.live import PYTHONPATH

MAX_GROWTH_MB = 300  # loose: the bombs cost 1 and 2 GB before; refused they cost about 1 MB
MAX_SECONDS = 2.0  # measured: 0.01 s; a loaded 2-core machine is slow, but not 200 times


def _measure(kind: str, path) -> dict:
    done = subprocess.run([sys.executable, "-m", "tests.engine.bombs", kind, str(path)],
                          capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": PYTHONPATH, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["nifti", "zip"])
def test_a_bomb_is_refused_from_its_header_at_small_memory(bombs, kind):
    result = _measure(kind, bombs.path(kind))
    assert result["error"] == "image_too_large", result
    assert "decompression bomb" in result["message"], result
    assert result["peak_growth_mb"] < MAX_GROWTH_MB, result
    assert result["seconds"] < MAX_SECONDS, result


def test_the_nifti_bomb_is_the_size_the_probe_found(bombs):
    assert 400_000 < bombs.path("nifti").stat().st_size < 600_000  # the probe's was 522 KB
    assert bombs.path("zip").stat().st_size < 8 << 20  # the probe's was 4 MB


def test_a_small_image_that_compresses_well_is_within_the_allowance():
    # 64 x 64 x 32 int16 of zeros but one voxel: compresses ~1000 times, yet far under the
    # 128 MiB allowance, so accepted (synthetic phantoms and label-like images do this)
    data = np.zeros((64, 64, 32), np.int16)
    data[3, 4, 5] = 7
    content = nifti_bomb_like(data)
    assert len(content) * 100 < data.nbytes  # it does expand more than 100 times
    volume = load_image([("small.nii.gz", content)])
    assert volume.shape == (32, 64, 64) and volume.array.max() == 7


def nifti_bomb_like(data_xyz: np.ndarray) -> bytes:
    import nibabel as nib

    raw = nib.Nifti1Image(data_xyz, np.eye(4)).to_bytes()
    return gzip.compress(raw, mtime=0)


def test_the_budget_scales_with_the_file_and_stops_at_the_uncompressed_limit():
    limits = ImageLimits(max_expansion_ratio=100, expansion_allowance=1 << 20,
                         max_uncompressed_bytes=64 << 20)
    assert limits.budget(1000) == 1 << 20  # the allowance
    assert limits.budget(100_000) == 10_000_000  # 100 times the file
    assert limits.budget(10 << 20) == 64 << 20  # never more than the uncompressed limit


def test_a_gzip_bomb_refused_by_ratio_names_the_numbers():
    # 512 x 512 x 64 int16 (32 MiB) in ~33 KB: over the budget of a 1 MiB allowance
    content = nifti_bomb((512, 512, 64))
    limits = ImageLimits(expansion_allowance=1 << 20)
    with pytest.raises(ImageTooLarge) as caught:
        load_image([("bomb.nii.gz", content)], limits)
    message = caught.value.message
    assert "32.0 MiB" in message and "100 times its size" in message, message
    assert "bomb.nii" not in message


def test_a_zip_member_that_holds_more_than_it_declares_is_not_read_past_its_size():
    # a member of 8 MiB zeros whose directory entries claim 4 KiB: the reader stops at the
    # declared size (and the checksum then fails) instead of inflating all of it
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.nii", bytes(8 << 20))
    data = bytearray(out.getvalue())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(signature)
        assert struct.unpack_from("<I", data, at + offset)[0] == 8 << 20
        struct.pack_into("<I", data, at + offset, 4096)
    with pytest.raises(CorruptImage, match="cannot be read"):
        load_image([("a.zip", bytes(data))])


def deflated_dicom(rows: int, cols: int, frames: int = 1) -> bytes:
    """A Deflated Explicit VR Little Endian DICOM file of zeros (pydicom writes the deflate)."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Rows, ds.Columns = "CT", rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 0], [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing, ds.SliceThickness = [1, 1], 1
    ds.PixelData = bytes(rows * cols * 2 * frames)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_a_deflated_dicom_bomb_is_refused_before_pydicom_inflates_it():
    # 16 MiB of pixel data in ~17 KB: over a 1 MiB allowance; a normal slice is accepted
    limits = ImageLimits(expansion_allowance=1 << 20)
    bomb = deflated_dicom(2048, 4096)
    assert len(bomb) < 100_000
    with pytest.raises(ImageTooLarge, match="deflated DICOM data decompresses to more than"):
        load_image([("slice.dcm", bomb)], limits)
    volume = load_image([("slice.dcm", deflated_dicom(64, 64))], limits)
    assert volume.shape == (1, 64, 64)
