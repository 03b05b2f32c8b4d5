"""medseg.engine.imageio on the real TotalSegmentator files in ../shared/data/totalseg."""

from __future__ import annotations

import gzip
import io
import json
import random
import zipfile
import zlib
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from medseg.engine.imageio import (
    ImageLimits,
    load_image,
    reorient_to,
    save_nifti,
    save_nrrd,
    save_png,
)
from medseg.errors import CorruptImage, ImageTooLarge, MedsegError, UnsupportedFormat

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "totalseg"
if not DATA.is_dir():  # the repo may be checked out elsewhere; fall back to the known location
    DATA = Path("/work/shared/data/totalseg")
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="shared data not available")


def _read(name: str) -> bytes:
    return (DATA / name).read_bytes()


def _label(mask_file: str, organ: str) -> int:
    labels = json.loads((DATA / "labels.json").read_text())[mask_file]
    return next(int(k) for k, v in labels.items() if v == organ)


@pytest.fixture(scope="module")
def ct_bytes() -> bytes:
    return _read("ct_3mm.nii.gz")


@pytest.fixture(scope="module")
def dicom_files() -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted((DATA / "ct_dicom").iterdir())]


@pytest.fixture(scope="module")
def dicom_vol(dicom_files):
    return load_image(dicom_files)


def _zip(members: list[tuple[str, bytes]], level: int = 6) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        for name, content in members:
            zf.writestr(name, content)
    return buf.getvalue()


def _nifti_bytes(data_xyz: np.ndarray, affine=None, gz: bool = True, slope=None) -> bytes:
    img = nib.Nifti1Image(data_xyz, np.eye(4) if affine is None else affine)
    if slope is not None:
        img.header.set_slope_inter(*slope)
    raw = img.to_bytes()
    return gzip.compress(raw) if gz else raw


# --- NIfTI -------------------------------------------------------------------------------


def test_nifti_ct_loads_like_nibabel(ct_bytes):
    vol = load_image([("ct_3mm.nii.gz", ct_bytes)])
    ref = nib.load(DATA / "ct_3mm.nii.gz")
    assert vol.shape == (30, 101, 122)
    assert vol.spacing == pytest.approx((3.0, 3.0, 3.0))
    assert np.array_equal(vol.affine, ref.affine)
    assert vol.array.dtype == np.int16  # scl_slope 1: integers stay integers
    assert vol.array.flags.c_contiguous
    assert np.array_equal(vol.array, np.asanyarray(ref.dataobj).transpose(2, 1, 0))
    assert vol.source_format == "nifti"
    assert vol.array.min() <= -1000  # air in HU


def test_save_nifti_round_trip_is_bit_exact(ct_bytes):
    vol = load_image([("ct_3mm.nii.gz", ct_bytes)])
    out = save_nifti(vol.array, vol.affine)
    back = load_image([("out.nii.gz", out)])
    assert back.array.dtype == vol.array.dtype
    assert np.array_equal(back.array, vol.array)
    assert np.array_equal(back.affine, vol.affine)
    img = nib.Nifti1Image.from_bytes(gzip.decompress(out))
    assert int(img.header["sform_code"]) > 0 and int(img.header["qform_code"]) > 0
    assert np.allclose(img.get_qform(), vol.affine, atol=1e-4)
    assert np.array_equal(np.asanyarray(img.dataobj), vol.array.transpose(2, 1, 0))


def test_mr_and_uncompressed_nifti():
    vol = load_image([("mr_3mm.nii.gz", _read("mr_3mm.nii.gz"))])
    assert vol.shape == (20, 91, 117)
    raw = gzip.decompress(_read("mr_3mm.nii.gz"))
    plain = load_image([("mr_3mm.nii", raw)])
    assert np.array_equal(plain.array, vol.array) and np.array_equal(plain.affine, vol.affine)


def test_nifti_2d_4d_and_scaling():
    two_d = load_image([("a.nii.gz", _nifti_bytes(np.arange(12, dtype=np.uint8).reshape(4, 3)))])
    assert two_d.shape == (1, 3, 4) and two_d.is_2d
    single = load_image([("b.nii.gz", _nifti_bytes(np.ones((4, 3, 2, 1), np.int16)))])
    assert single.shape == (2, 3, 4)
    with pytest.raises(UnsupportedFormat, match="4D"):
        load_image([("c.nii.gz", _nifti_bytes(np.ones((4, 3, 2, 5), np.int16)))])
    scaled = load_image([("d.nii", _nifti_bytes(np.full((2, 2, 2), 3, np.int16), slope=(2, 1)))])
    assert scaled.array.dtype.kind == "f" and np.all(scaled.array == 7)


# --- DICOM -------------------------------------------------------------------------------


def test_dicom_series_loads(dicom_vol):
    vol = dicom_vol
    assert vol.shape == (20, 512, 512)
    assert vol.spacing == pytest.approx((2.0, 0.9765625, 0.9765625))
    assert vol.modality == "CT" and vol.source_format == "dicom"
    assert vol.array.dtype == np.int16
    assert vol.array.min() <= -1000 and (vol.array < -900).mean() > 0.05  # air around the body
    assert 0 < np.median(vol.array[:, 200:300, 200:300]) < 200  # soft tissue in the middle
    # slices sorted along the normal: first slice is the most inferior one (z = -804.5)
    assert vol.affine[:3, 3] == pytest.approx([249.51171875, 437.51171875, -804.5])
    assert vol.affine[2, 2] == pytest.approx(2.0)


def test_dicom_zip_and_shuffled_order_give_same_volume(dicom_files, dicom_vol):
    shuffled = dicom_files[:]
    random.Random(7).shuffle(shuffled)
    assert shuffled != dicom_files
    zipped = _zip([(f"series/{n}", c) for n, c in shuffled] + [("series/README.txt", b"hi")])
    for vol in (load_image(shuffled), load_image([("ct.zip", zipped)])):
        assert np.array_equal(vol.array, dicom_vol.array)
        assert np.array_equal(vol.affine, dicom_vol.affine)


def test_dicom_grid_matches_seg_nifti_and_liver_hu(dicom_vol):
    seg = nib.load(DATA / "ct_dicom_seg.nii.gz")
    seg_zyx = np.asanyarray(seg.dataobj).transpose(2, 1, 0)
    aligned = reorient_to(dicom_vol.affine, dicom_vol.shape, seg_zyx, seg.affine)
    # exact relation: same grid, the NIfTI's y axis (rows) runs the other way
    assert np.array_equal(aligned, seg_zyx[:, ::-1, :])
    flip_y = np.eye(4)
    flip_y[1, 1], flip_y[1, 3] = -1, dicom_vol.shape[1] - 1
    assert np.allclose(seg.affine @ flip_y, dicom_vol.affine, atol=0.01)
    liver = aligned == _label("ct_dicom_seg.nii.gz", "liver")
    assert liver.sum() > 10_000
    assert 60 < dicom_vol.array[liver].mean() < 120  # README: about 90 HU
    assert dicom_vol.array[seg_zyx == _label("ct_dicom_seg.nii.gz", "liver")].mean() < 60


def test_reorient_to_rejects_other_grids(dicom_vol):
    seg = nib.load(DATA / "ct_dicom_seg.nii.gz")
    seg_zyx = np.asanyarray(seg.dataobj).transpose(2, 1, 0)
    shifted = seg.affine.copy()
    shifted[0, 3] += 1.0
    with pytest.raises(CorruptImage, match="grids do not match"):
        reorient_to(dicom_vol.affine, dicom_vol.shape, seg_zyx, shifted)
    with pytest.raises(CorruptImage, match="shape"):
        reorient_to(dicom_vol.affine, (19, 512, 512), seg_zyx, seg.affine)


def test_dicom_without_preamble_single_slice(dicom_files, dicom_vol):
    content = dicom_files[0][1]
    vol = load_image([("noext", content[132:])])  # no 128-byte preamble, no 'DICM'
    assert vol.shape == (1, 512, 512) and vol.modality == "CT"
    assert vol.affine[:3, 3] == pytest.approx([249.51171875, 437.51171875, -766.5])
    assert np.array_equal(vol.array[0], dicom_vol.array[-1])  # the most superior slice


def test_dicom_missing_slice_is_rejected(dicom_files):
    with pytest.raises(CorruptImage, match="non-uniform slice spacing"):
        load_image(dicom_files[:10] + dicom_files[11:])


def test_dicom_mixed_series_zip_is_rejected(dicom_files):
    members = []
    for i, (name, content) in enumerate(dicom_files[:2]):
        ds = pydicom.dcmread(io.BytesIO(content))
        if i == 1:
            ds.SeriesInstanceUID = pydicom.uid.generate_uid()
        buf = io.BytesIO()
        ds.save_as(buf)
        members.append((name, buf.getvalue()))
    with pytest.raises(CorruptImage, match=r"mixed series.*2 different series") as caught:
        load_image([("mixed.zip", _zip(members))])
    uid = pydicom.dcmread(io.BytesIO(members[1][1])).SeriesInstanceUID
    assert str(uid) not in caught.value.message  # a UID identifies the study: not repeated


def test_dicom_undecodable_transfer_syntax_is_named(dicom_files):
    ds = pydicom.dcmread(io.BytesIO(dicom_files[0][1]))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.80"  # JPEG-LS: no decoder installed
    buf = io.BytesIO()
    ds.save_as(buf)
    with pytest.raises((UnsupportedFormat, CorruptImage), match="JPEG-LS"):
        load_image([("x.dcm", buf.getvalue())])


# --- NRRD --------------------------------------------------------------------------------


def test_nrrd_round_trip(ct_bytes, dicom_vol, tmp_path):
    ct = load_image([("ct_3mm.nii.gz", ct_bytes)])
    for vol in (ct, dicom_vol):
        out = save_nrrd(vol.array, vol.affine)
        back = load_image([("x.nrrd", out)])
        assert back.source_format == "nrrd"
        assert np.array_equal(back.array, vol.array) and back.array.dtype == vol.array.dtype
        assert np.allclose(back.affine, vol.affine)
        assert back.spacing == pytest.approx(vol.spacing)
    # an independent reader lines the file up with the input: (x, y, z) data, RAS directions
    header = nrrd.read_header(io.BytesIO(out))
    assert header["space"] == "right-anterior-superior" and header["encoding"] == "gzip"
    assert np.allclose(header["space directions"].T, dicom_vol.affine[:3, :3])
    assert np.allclose(header["space origin"], dicom_vol.affine[:3, 3])
    (tmp_path / "x.nrrd").write_bytes(out)
    data, _ = nrrd.read(str(tmp_path / "x.nrrd"))  # pynrrd's own (x, y, z) order
    assert np.array_equal(data, dicom_vol.array.transpose(2, 1, 0))


def test_nrrd_lps_space_is_converted_to_ras():
    arr_xyz = np.arange(24, dtype=np.int16).reshape(4, 3, 2)
    header = {
        "space": "left-posterior-superior",
        "space directions": np.diag([0.5, 0.7, 2.0]),
        "space origin": np.array([10.0, 20.0, 30.0]),
    }
    buf = io.BytesIO()
    nrrd.write(buf, arr_xyz, header)
    vol = load_image([("lps.nrrd", buf.getvalue())])
    assert vol.shape == (2, 3, 4)
    assert np.array_equal(vol.array, arr_xyz.transpose(2, 1, 0))
    assert np.allclose(vol.affine[:3, :3], np.diag([-0.5, -0.7, 2.0]))
    assert np.allclose(vol.affine[:3, 3], [-10.0, -20.0, 30.0])


# --- PNG / JPEG --------------------------------------------------------------------------


def _pil_bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_png_and_jpeg_2d():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (40, 60), dtype=np.uint8)
    vol = load_image([("g.png", _pil_bytes(Image.fromarray(gray), "PNG"))])
    assert vol.shape == (1, 40, 60) and vol.modality == "photo" and vol.source_format == "png"
    assert np.array_equal(vol.array[0], gray)
    assert np.array_equal(vol.affine, np.eye(4)) and vol.spacing == (1.0, 1.0, 1.0)

    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    luma = 0.299 * 200 + 0.587 * 100 + 0.114 * 50
    png = load_image([("c.png", _pil_bytes(Image.fromarray(rgb), "PNG"))])
    assert png.array.shape == (1, 20, 30) and np.all(np.abs(png.array - luma) <= 1)
    jpg = load_image([("c.jpg", _pil_bytes(Image.fromarray(rgb), "JPEG", quality=95))])
    assert jpg.source_format == "jpeg" and jpg.array.shape == (1, 20, 30)
    assert np.abs(jpg.array.astype(float) - luma).max() <= 4


def test_save_png_round_trip():
    labels = np.zeros((16, 24), np.uint8)
    labels[4:8, 5:9] = 3
    back = load_image([("m.png", save_png(labels))])
    assert np.array_equal(back.array[0], labels)
    wide = np.arange(16 * 24, dtype=np.uint16).reshape(16, 24) * 100
    back16 = load_image([("w.png", save_png(wide[None]))])
    assert np.array_equal(back16.array[0], wide)
    assert np.array_equal(load_image([("b.png", save_png(labels > 0))]).array[0], labels > 0)


# --- bad inputs --------------------------------------------------------------------------


def test_truncated_gzip_nifti(ct_bytes):
    with pytest.raises(CorruptImage, match=r"the uploaded file is not a valid NIfTI.*truncated"):
        load_image([("ct_3mm.nii.gz", ct_bytes[: len(ct_bytes) // 2])])


def test_truncated_plain_nifti(ct_bytes):
    raw = gzip.decompress(ct_bytes)
    with pytest.raises(CorruptImage, match="data is truncated"):
        load_image([("ct.nii", raw[: len(raw) - 1000])])


def test_text_named_nii_gz():
    with pytest.raises(CorruptImage, match=r"not a valid NIfTI.*looks like text") as caught:
        load_image([("notes.nii.gz", b"hello, this is not an image\n" * 20)])
    assert "notes" not in caught.value.message and "hello" not in caught.value.message


def test_gzip_bomb_behind_a_small_nifti_header():
    header = nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)).to_bytes()
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    parts = [comp.compress(header)]
    zeros = bytes(1 << 20)
    parts += [comp.compress(zeros) for _ in range(200)]  # 200 MB of zeros
    bomb = b"".join(parts) + comp.flush()
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageTooLarge, match="gzip bomb"):
        load_image([("bomb.nii.gz", bomb)])
    with pytest.raises(ImageTooLarge, match="gzip bomb"):
        load_image([("bomb.nii.gz", bomb)], ImageLimits(max_uncompressed_bytes=1 << 20))


def test_gzipped_zeros_are_not_decompressed_fully():
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    bomb = b"".join(comp.compress(bytes(1 << 20)) for _ in range(64)) + comp.flush()
    with pytest.raises((CorruptImage, ImageTooLarge), match="NIfTI|bomb"):
        load_image([("zeros.nii.gz", bomb)], ImageLimits(max_uncompressed_bytes=1 << 20))


def test_decompressed_size_limit_on_real_file(ct_bytes):
    with pytest.raises(ImageTooLarge, match="the uploaded file is too large"):
        load_image([("ct_3mm.nii.gz", ct_bytes)], ImageLimits(max_uncompressed_bytes=100_000))


def test_zip_bomb():
    buf = io.BytesIO()
    zf = zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
    with zf, zf.open("slice.dcm", "w") as fh:
        for _ in range(64):
            fh.write(bytes(1 << 20))
    with pytest.raises(ImageTooLarge, match="zip bomb"):
        load_image([("bomb.zip", buf.getvalue())], ImageLimits(max_uncompressed_bytes=1 << 20))


def test_too_many_voxels(ct_bytes, dicom_files):
    with pytest.raises(ImageTooLarge, match=r"30 x 101 x 122.*1000 voxels"):
        load_image([("ct_3mm.nii.gz", ct_bytes)], ImageLimits(max_voxels=1000))
    with pytest.raises(ImageTooLarge, match="voxels"):
        load_image(dicom_files, ImageLimits(max_voxels=512 * 512 * 10))
    big = _pil_bytes(Image.new("L", (100, 100)), "PNG")
    with pytest.raises(ImageTooLarge, match="voxels"):
        load_image([("big.png", big)], ImageLimits(max_voxels=1000))


def test_upload_size_limit(ct_bytes):
    with pytest.raises(ImageTooLarge, match="upload is too large"):
        load_image([("ct_3mm.nii.gz", ct_bytes)], ImageLimits(max_upload_bytes=1000))


def test_empty_inputs():
    with pytest.raises(CorruptImage, match="no files"):
        load_image([])
    with pytest.raises(CorruptImage, match="the uploaded file is empty"):
        load_image([("a.nii", b"")])
    with pytest.raises(CorruptImage, match="file 2 of 3 is empty"):
        load_image([("a.dcm", b"x"), ("b.dcm", b""), ("c.dcm", b"x")])


def test_random_bytes_and_mixed_uploads(ct_bytes):
    noise = np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    with pytest.raises(UnsupportedFormat, match="supported: NIfTI"):
        load_image([("upload.bin", noise)])
    with pytest.raises(UnsupportedFormat, match="DICOM series"):
        load_image([("a.nii.gz", ct_bytes), ("b.nii.gz", ct_bytes)])
    with pytest.raises(CorruptImage, match="not a valid PNG"):
        png = _pil_bytes(Image.new("L", (50, 50)), "PNG")
        load_image([("x.png", png[:60])])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pos=st.integers(0, 400),
    value=st.integers(0, 255),
    cut=st.integers(1, 2000),
    fmt=st.sampled_from(["nii", "nii.gz", "nrrd", "png"]),
)
def test_damaged_files_only_raise_domain_errors(pos, value, cut, fmt):
    data = np.arange(6 * 7 * 8, dtype=np.int16).reshape(8, 7, 6)
    if fmt == "nrrd":
        content = save_nrrd(data, np.eye(4))
    elif fmt == "png":
        content = save_png(data[0].astype(np.uint8))
    else:
        content = save_nifti(data, np.eye(4))
        if fmt == "nii":
            content = gzip.decompress(content)
    damaged = bytearray(content[: max(len(content) - cut, 1)])
    damaged[pos % len(damaged)] = value
    try:
        vol = load_image([(f"x.{fmt}", bytes(damaged))])
    except MedsegError:
        return
    assert vol.array.ndim == 3


# --- non-finite voxels and implausible geometry (issue 12) ---------------------------------


def test_non_finite_voxels_are_replaced_and_reported():
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(4, 3, 2) + 10.0  # (x, y, z)
    data[0, 0, 0], data[1, 0, 0], data[2, 0, 0] = np.nan, np.inf, -np.inf
    vol = load_image([("a.nii", nib.Nifti1Image(data, np.eye(4)).to_bytes())])
    finite = data[np.isfinite(data)]
    assert np.isfinite(vol.array).all()
    assert vol.array[0, 0, 0] == finite.min() and vol.array[0, 0, 2] == finite.min()
    assert vol.array[0, 0, 1] == finite.max()
    assert vol.warnings == ["3 of 24 voxels were NaN or infinite (often: outside the field "
                            "of view); they read as 11 (NaN, -inf) or 33 (+inf)"]
    clean = load_image([("b.nii", nib.Nifti1Image(data[3:], np.eye(4)).to_bytes())])
    assert clean.warnings == []


def test_no_finite_voxel_and_bad_geometry_are_refused():
    nan = np.full((3, 3, 2), np.nan, np.float32)
    with pytest.raises(CorruptImage, match="every voxel"):
        load_image([("a.nii", nib.Nifti1Image(nan, np.eye(4)).to_bytes())])
    zeros = np.zeros((3, 3, 2), np.float32)
    with pytest.raises(CorruptImage, match=r"voxel size \[1, 1e\+09, 1e-09\] mm"):
        load_image([("b.nii", nib.Nifti1Image(zeros, np.diag([1e-9, 1e9, 1.0, 1.0]))
                     .to_bytes())])
