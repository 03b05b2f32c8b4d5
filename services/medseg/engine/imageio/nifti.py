"""NIfTI-1/2 (.nii, .nii.gz) reading from bytes."""

from __future__ import annotations

import io
import re
import struct

import nibabel as nib
import numpy as np

from medseg.engine.imageio._common import (
    GZIP_MAGIC,
    ImageLimits,
    check_affine,
    check_voxels,
    detail,
    gunzip_bounded,
    human,
    looks_like,
    spacing_from_affine,
)
from medseg.engine.volume import Volume
from medseg.errors import CorruptImage, ImageTooLarge, UnsupportedFormat

_SLACK = 1 << 16  # bytes tolerated after the data the header declares


def nifti_kind(head: bytes) -> int | None:
    """1 or 2 for a NIfTI-1/NIfTI-2 header (either byte order), else None."""
    if len(head) < 348:
        return None
    for endian in "<>":
        size = struct.unpack(endian + "i", head[:4])[0]
        if size == 348 and head[344:347] in (b"n+1", b"ni1"):
            return 1
        if size == 540 and head[4:7] in (b"n+2", b"ni2"):
            return 2
    return None


def _header(label: str, head: bytes):
    kind = nifti_kind(head)
    if kind is None:
        raise CorruptImage(
            f"{label} is not a valid NIfTI: it has no NIfTI-1/NIfTI-2 header (it looks like "
            f"{looks_like(head)})"
        )
    klass = nib.Nifti1Header if kind == 1 else nib.Nifti2Header
    # the fixed header only, its extension flag cleared: the extensions (TotalSegmentator's
    # label names, several KB) may lie past the bytes peeked so far; the full read keeps them
    size = 348 if kind == 1 else 540
    fixed = head[:size] + b"\0\0\0\0"
    try:
        hdr = klass.from_fileobj(io.BytesIO(fixed), check=True)
    except Exception as exc:  # noqa: BLE001 - HeaderDataError, ValueError, ...
        raise CorruptImage(f"{label} is not a valid NIfTI: bad header ({detail(exc)})") from exc
    if hdr["magic"].item() in (b"ni1", b"ni2"):
        raise UnsupportedFormat(
            f"{label} is a NIfTI header of a .hdr/.img pair; upload a single-file "
            ".nii or .nii.gz instead"
        )
    return kind, hdr


def _check_and_size(label: str, hdr, limits: ImageLimits) -> int:
    """Validate shape/dtype against the limits; return the byte size the file must have."""
    shape = tuple(int(s) for s in hdr.get_data_shape())
    if len(shape) < 2 or any(s < 1 for s in shape):
        raise UnsupportedFormat(
            f"{label}: NIfTI image of shape {shape} is not supported (need 2D or 3D)"
        )
    if len(shape) == 2:
        check_voxels(label, (1, shape[1], shape[0]), limits, "(z, y, x)")
    else:
        check_voxels(
            label, shape[2::-1] + shape[3:], limits, "(z, y, x" + ", t" * (len(shape) > 3) + ")"
        )
    try:
        dtype = hdr.get_data_dtype()
    except Exception as exc:  # noqa: BLE001
        raise CorruptImage(f"{label} is not a valid NIfTI: unknown datatype "
                           f"({detail(exc)})") from exc
    if dtype.fields is not None or dtype.kind not in "biuf":
        raise UnsupportedFormat(
            f"{label}: NIfTI datatype {dtype} is not supported (need a scalar "
            "integer or float image)"
        )
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes > limits.max_uncompressed_bytes:
        raise ImageTooLarge(
            f"{label} is too large: its data is {human(nbytes)}, more than the limit of "
            f"{human(limits.max_uncompressed_bytes)}"
        )
    return int(hdr.get_data_offset()) + nbytes


def load_nifti(label: str, content: bytes, limits: ImageLimits) -> Volume:
    if content[:2] == GZIP_MAGIC:
        state: dict = {}

        def peek(head: bytes) -> int:
            state["kind"], state["hdr"] = _header(label, head)
            need = _check_and_size(label, state["hdr"], limits)
            limits.check_expansion(label, len(content), need, "its NIfTI header")
            return need + _SLACK

        raw = gunzip_bounded(label, content, limits.budget(len(content)), "NIfTI", peek)
        kind, hdr = state["kind"], state["hdr"]
    else:
        raw = content
        kind, hdr = _header(label, raw[:544])
        _check_and_size(label, hdr, limits)
    need = _check_and_size(label, hdr, limits)
    if len(raw) < need:
        raise CorruptImage(
            f"{label} is not a valid NIfTI: data is truncated (header declares "
            f"{need} bytes, file has {len(raw)})"
        )
    klass = nib.Nifti1Image if kind == 1 else nib.Nifti2Image
    try:
        img = klass.from_bytes(raw)
        data = np.asanyarray(img.dataobj)
        affine = np.array(img.affine, dtype=np.float64)
    except Exception as exc:  # noqa: BLE001
        raise CorruptImage(f"{label} is not a valid NIfTI: {detail(exc)}") from exc
    data = _to_3d(label, np.asarray(data))
    if data.dtype == np.float64 and hdr.get_data_dtype().kind in "iu":
        data = data.astype(np.float32)  # scaled integers: float32 is plenty
    affine = check_affine(label, affine, "NIfTI")
    array = np.ascontiguousarray(data.transpose(2, 1, 0))
    descrip = _text(hdr["descrip"])
    slope, inter = hdr.get_slope_inter()
    extra = {
        "nifti_version": kind,
        "datatype": str(hdr.get_data_dtype()),
        "descrip": descrip,
        "qform_code": int(hdr["qform_code"]),
        "sform_code": int(hdr["sform_code"]),
    }
    if slope is not None:
        extra["scl_slope"], extra["scl_inter"] = float(slope), float(inter or 0.0)
    return Volume(
        array=array,
        spacing=spacing_from_affine(affine),
        affine=affine,
        modality=_modality(descrip),
        source_format="nifti",
        extra=extra,
    )


def _to_3d(label: str, data: np.ndarray) -> np.ndarray:
    if data.ndim == 2:
        return data[:, :, None]
    if data.ndim > 3:
        extra_dims = data.shape[3:]
        if any(s != 1 for s in extra_dims):
            raise UnsupportedFormat(
                f"{label}: {data.ndim}D NIfTI of shape {data.shape} is not supported "
                "(only 3D, or 4D with a single volume)"
            )
        data = data.reshape(data.shape[:3])
    return data


def _text(value) -> str:
    raw = value.item() if hasattr(value, "item") else value
    if isinstance(raw, bytes):
        raw = raw.split(b"\0", 1)[0].decode("latin-1", "replace")
    return str(raw).strip()


def _modality(descrip: str) -> str:
    match = re.search(r"\b(CT|MRI?|PET|US)\b", descrip)
    if not match:
        return "unknown"
    return "MR" if match.group(1) == "MRI" else match.group(1)
