"""Serialise (z, y, x) arrays as .nii.gz, .nrrd (gzip) and PNG bytes.

Every writer is byte-reproducible: the same array and affine give the same bytes at any time
(gzip's mtime is 0, the NRRD header carries no date, PNG no tIME chunk)."""

from __future__ import annotations

import gzip
import io

import nibabel as nib
import nrrd
import numpy as np
from PIL import Image

_NIFTI_OK = {np.dtype(t) for t in ("u1", "i1", "i2", "u2", "i4", "u4", "f4", "f8")}


def _as_3d(array_zyx: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    array = np.asarray(array_zyx)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ValueError(f"expected a (z, y, x) array, got shape {array.shape}")
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise ValueError("affine must be a finite 4x4 matrix")
    return array, affine


def _storable(array: np.ndarray) -> np.ndarray:
    """Cast dtypes NIfTI/NRRD readers handle badly (bool, int64, float16) to safe ones."""
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype.kind in "iu" and array.dtype not in _NIFTI_OK:
        lo, hi = (int(array.min()), int(array.max())) if array.size else (0, 0)
        for dtype in (np.uint8, np.int16, np.uint16, np.int32, np.uint32):
            if np.iinfo(dtype).min <= lo and hi <= np.iinfo(dtype).max:
                return array.astype(dtype)
        return array.astype(np.float64)
    if array.dtype.kind == "f" and array.dtype not in _NIFTI_OK:
        return array.astype(np.float32)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"cannot store dtype {array.dtype} in a medical image file")
    return array


def save_nifti(array_zyx: np.ndarray, affine: np.ndarray) -> bytes:
    """.nii.gz bytes holding array_zyx.transpose(2, 1, 0) with `affine` as sform and qform."""
    array, affine = _as_3d(array_zyx, affine)
    data = _storable(array).transpose(2, 1, 0)
    img = nib.Nifti1Image(data, affine)
    img.header.set_data_dtype(data.dtype)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)  # best rigid fit when the affine has shears
    img.header.set_xyzt_units("mm")
    img.header.set_slope_inter(1.0, 0.0)
    raw = img.to_bytes()
    return gzip.compress(raw, compresslevel=3, mtime=0)


def save_nrrd(array_zyx: np.ndarray, affine: np.ndarray) -> bytes:
    """Gzip-encoded NRRD in RAS space; axes are (x, y, z) with directions from `affine`."""
    array, affine = _as_3d(array_zyx, affine)
    data = np.ascontiguousarray(_storable(array))
    header = {
        "space": "right-anterior-superior",
        "space directions": affine[:3, :3].T.copy(),  # row i = world step of axis i
        "space origin": affine[:3, 3].copy(),
        "kinds": ["domain", "domain", "domain"],
        "encoding": "gzip",
    }
    buf = io.BytesIO()
    nrrd.write(buf, data, header, compression_level=3, index_order="C")
    return _without_comments(buf.getvalue())


def _without_comments(content: bytes) -> bytes:
    """The NRRD without its header comments: pynrrd writes the time of writing into one
    ("# on <date>(GMT)."), so two exports of one mask would differ. Comments are optional; the
    header ends at the first empty line, its gzip data (mtime 0 from zlib) follows unchanged."""
    header, sep, data = content.partition(b"\n\n")
    if not sep:
        raise ValueError("pynrrd wrote no header/data separator")
    lines = [line for line in header.split(b"\n") if not line.startswith(b"#")]
    return b"\n".join(lines) + sep + data


def save_png(array_2d: np.ndarray) -> bytes:
    """Lossless grayscale PNG of a 2D label/mask image (values kept: bool -> 0/1 uint8).

    Accepts (y, x) or (1, y, x). Integer values must fit 0..65535 (8-bit PNG when <= 255).
    """
    array = np.asarray(array_2d)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"save_png needs a 2D array, got shape {array.shape}")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.dtype.kind == "f":
        if array.size and not np.all(np.isfinite(array) & (array == np.round(array))):
            raise ValueError("save_png stores integer labels; got non-integer float values")
    elif array.dtype.kind not in "iu":
        raise ValueError(f"save_png cannot store dtype {array.dtype}")
    lo, hi = (array.min(), array.max()) if array.size else (0, 0)
    if lo < 0 or hi > 65535:
        raise ValueError(f"save_png stores values 0..65535; got range {lo}..{hi}")
    if hi <= 255 and array.dtype != np.uint16:
        img = Image.fromarray(np.ascontiguousarray(array.astype(np.uint8)))
    else:
        img = Image.fromarray(np.ascontiguousarray(array.astype(np.uint16)))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()
