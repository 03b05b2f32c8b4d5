"""DICOM series (one or more single-frame image instances) -> Volume."""

from __future__ import annotations

import io
import math
import warnings
import zlib

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from medseg.engine.imageio._common import LPS_TO_RAS, ImageLimits, check_voxels, human
from medseg.engine.volume import Volume
from medseg.errors import CorruptImage, ImageTooLarge, UnsupportedFormat, plain

DICOMDIR_SOP = "1.2.840.10008.1.3.10"
# Volume.extra key: the series' instances (pydicom datasets) in the volume's slice order, so an
# uploaded series can keep what a DICOM SEG of it must reference (usecases/uploaded_dicom.py)
INSTANCES = "instances"
_SPACING_TOL = 0.05  # relative deviation allowed between consecutive slice gaps


def is_dicom(content: bytes) -> bool:
    return content[128:132] == b"DICM"


def looks_like_raw_dicom(content: bytes) -> bool:
    """Preamble-less DICOM usually starts with a group 0x0002 or 0x0008 tag."""
    return (
        len(content) > 8 and content[:2] in (b"\x02\x00", b"\x08\x00") and content[3:4] == b"\x00"
    )


DEFLATED = pydicom.uid.DeflatedExplicitVRLittleEndian


def check_deflated(label: str, content: bytes, limits: ImageLimits) -> None:
    """A file in the Deflated transfer syntax is one deflate stream after its file meta, which
    pydicom inflates whole, unbounded: measure what it inflates to first (streamed, nothing
    kept) and refuse it (ImageTooLarge) when that is more than the file's decode budget."""
    if str(DEFLATED).encode() not in content[:8192]:
        return
    fh = io.BytesIO(content)
    try:
        pydicom.filereader.read_preamble(fh, force=True)
        meta = pydicom.filereader._read_file_meta_info(fh)
    except Exception:  # noqa: BLE001 - not readable meta: pydicom will say so
        return
    if meta.get("TransferSyntaxUID") != DEFLATED:
        return
    budget = limits.budget(len(content))
    dec = zlib.decompressobj(-zlib.MAX_WBITS)
    size, pos, tail = 0, fh.tell(), b""
    try:
        while not dec.eof and (tail or pos < len(content)):
            if not tail:
                tail, pos = content[pos : pos + (1 << 20)], pos + (1 << 20)
            size += len(dec.decompress(tail, 1 << 20))
            tail = dec.unconsumed_tail
            if size > budget:
                raise ImageTooLarge(
                    f"{label} is too large: its deflated DICOM data decompresses to more than "
                    f"the {human(budget)} a file of its size may decode to (possible "
                    "decompression bomb)")
    except zlib.error:
        return  # damaged: pydicom names it


def read_dataset(label: str, content: bytes,
                 limits: ImageLimits | None = None) -> pydicom.Dataset | None:
    """Parse one file; None when it is not DICOM at all."""
    check_deflated(label, content, limits or ImageLimits())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return pydicom.dcmread(io.BytesIO(content), force=False)
            except InvalidDicomError:
                if not looks_like_raw_dicom(content):
                    return None
                ds = pydicom.dcmread(io.BytesIO(content), force=True)
                if "SOPClassUID" not in ds and "PixelData" not in ds:
                    return None
                return ds
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on damaged files
        if is_dicom(content):
            # pydicom's words may quote the file's elements (patient data): not repeated
            raise CorruptImage(f"{label} is not a valid DICOM file: its data elements cannot "
                               "be read (damaged or truncated)") from exc
        return None


def is_image(ds: pydicom.Dataset) -> bool:
    sop = str(getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID", ""))
    if sop == DICOMDIR_SOP or "DirectoryRecordSequence" in ds:
        return False
    return "PixelData" in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds


def is_slice_without_pixels(ds: pydicom.Dataset) -> bool:
    """An image slice whose pixel data is missing (damaged or truncated): its SOP class is an
    image storage class, or it has the image pixel module's Rows and Columns or a position in
    the patient. A non-image object (a structured report, a DICOMDIR, a presentation state)
    has none of these."""
    if is_image(ds) or "DirectoryRecordSequence" in ds:
        return False
    sop = getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID", None)
    image_class = "Image Storage" in str(getattr(sop, "name", ""))
    return image_class or ("Rows" in ds and "Columns" in ds) or "ImagePositionPatient" in ds


def load_dicom_series(datasets: list[tuple[str, pydicom.Dataset]], limits: ImageLimits) -> Volume:
    if not datasets:
        raise CorruptImage("no DICOM image instances found (only DICOMDIR or non-image objects)")
    series = {str(ds.get("SeriesInstanceUID", "")) for _, ds in datasets}
    if len(series) > 1:  # the UIDs themselves identify a study: not repeated
        raise CorruptImage(
            f"mixed series: the {len(datasets)} DICOM files belong to {len(series)} different "
            "series (SeriesInstanceUID); upload one series at a time"
        )
    first_label, first = datasets[0]
    frames = max(int(ds.get("NumberOfFrames", 1) or 1) for _, ds in datasets)
    if frames > 1:
        raise UnsupportedFormat(
            f"{first_label} is a multi-frame DICOM ({frames} frames); only series of "
            "single-frame instances are supported"
        )
    rows, cols = _int(first_label, first, "Rows"), _int(first_label, first, "Columns")
    check_voxels("DICOM series", (len(datasets), rows, cols), limits, "(slices, rows, columns)")
    iop = _vec(first_label, first, "ImageOrientationPatient", 6, default=[1, 0, 0, 0, 1, 0])
    spacing_key = "PixelSpacing" if _present(first, "PixelSpacing") else "ImagerPixelSpacing"
    ps = _vec(first_label, first, spacing_key, 2, default=[1.0, 1.0])
    for label, ds in datasets[1:]:
        if (_int(label, ds, "Rows"), _int(label, ds, "Columns")) != (rows, cols):
            raise CorruptImage(
                f"DICOM series is inconsistent: {label} is {_int(label, ds, 'Rows')}x"
                f"{_int(label, ds, 'Columns')} pixels, {first_label} is {rows}x{cols}"
            )
        other = _vec(label, ds, "ImageOrientationPatient", 6, default=[1, 0, 0, 0, 1, 0])
        if not np.allclose(other, iop, atol=1e-4):
            raise CorruptImage(
                f"DICOM series is inconsistent: {label} has a different "
                "ImageOrientationPatient than the other slices"
            )
    row_dir, col_dir = iop[:3], iop[3:]  # X: along a row (column index), Y: down the columns
    if min(np.linalg.norm(row_dir), np.linalg.norm(col_dir)) < 1e-6:
        raise CorruptImage(f"{first_label}: ImageOrientationPatient is degenerate")
    row_dir, col_dir = row_dir / np.linalg.norm(row_dir), col_dir / np.linalg.norm(col_dir)
    normal = np.cross(row_dir, col_dir)
    if np.linalg.norm(normal) < 1e-6:
        raise CorruptImage(f"{first_label}: ImageOrientationPatient is degenerate")
    normal /= np.linalg.norm(normal)
    positions = []
    for label, ds in datasets:
        default = [0.0, 0.0, 0.0] if len(datasets) == 1 else None
        positions.append(_vec(label, ds, "ImagePositionPatient", 3, default=default))
    order = np.argsort([float(p @ normal) for p in positions], kind="stable")
    datasets = [datasets[i] for i in order]
    positions = [positions[i] for i in order]
    slice_vec, ds_mm = _slice_step(datasets, positions, normal, first)
    affine_lps = np.eye(4)
    affine_lps[:3, 0] = row_dir * ps[1]  # column index i, column spacing
    affine_lps[:3, 1] = col_dir * ps[0]  # row index j, row spacing
    affine_lps[:3, 2] = slice_vec * ds_mm
    affine_lps[:3, 3] = positions[0]
    array = _pixels(datasets)
    return Volume(
        array=array,
        spacing=(float(ds_mm), float(ps[0]), float(ps[1])),
        affine=LPS_TO_RAS @ affine_lps,
        modality=str(first.get("Modality", "unknown") or "unknown"),
        source_format="dicom",
        extra={
            "series_instance_uid": next(iter(series)) or None,
            "transfer_syntax": _ts(first),
            "n_files": len(datasets),
            "photometric": str(first.get("PhotometricInterpretation", "")),
            INSTANCES: [ds for _, ds in datasets],  # slice k of the array is instance k
        },
    )


def _slice_step(datasets, positions, normal, first) -> tuple[np.ndarray, float]:
    if len(positions) == 1:
        try:
            gap = float(first.get("SpacingBetweenSlices") or first.get("SliceThickness") or 1.0)
        except (TypeError, ValueError):
            gap = 1.0
        # one slice: its thickness is only a label, a bad one (0, NaN) must not make the
        # volume's spacing unusable
        return normal, gap if math.isfinite(gap) and gap > 0 else 1.0
    steps = np.diff(np.asarray(positions), axis=0)
    gaps = np.linalg.norm(steps, axis=1)
    if np.any(gaps < 1e-4):
        i = int(np.argmin(gaps))
        raise CorruptImage(
            f"DICOM series has duplicate slice positions: {datasets[i][0]} and "
            f"{datasets[i + 1][0]} are both at {plain(np.round(positions[i], 3))} mm"
        )
    span = positions[-1] - positions[0]
    mean_gap = float(np.linalg.norm(span)) / (len(positions) - 1)
    if np.max(np.abs(gaps - mean_gap)) > max(_SPACING_TOL * mean_gap, 0.01):
        raise CorruptImage(
            f"DICOM series has non-uniform slice spacing: gaps between "
            f"{gaps.min():.3f} and {gaps.max():.3f} mm (missing slices?)"
        )
    direction = span / np.linalg.norm(span)
    if abs(direction @ normal) < 0.5:
        raise CorruptImage("DICOM slice positions do not advance along the slice normal")
    return direction, mean_gap


def _pixels(datasets) -> np.ndarray:
    slices = []
    integral = True
    for label, ds in datasets:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                px = ds.pixel_array
        except Exception as exc:  # noqa: BLE001
            ts = _ts(ds)
            raise UnsupportedFormat(
                f"{label}: cannot decode its DICOM pixel data (transfer syntax {ts}); a "
                "codec for it may be missing, or the data is damaged"
            ) from exc
        if px.ndim == 3:  # colour (rows, cols, samples)
            px = px[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        slope = float(ds.get("RescaleSlope", 1) or 1)
        inter = float(ds.get("RescaleIntercept", 0) or 0)
        integral &= px.dtype.kind in "biu" and slope.is_integer() and inter.is_integer()
        slices.append(px.astype(np.float64) * slope + inter if (slope, inter) != (1, 0) else px)
    try:
        stacked = np.stack(slices)
    except ValueError as exc:
        raise CorruptImage("DICOM series is inconsistent: its slices differ in size") from exc
    if integral:
        lo, hi = (float(stacked.min()), float(stacked.max())) if stacked.size else (0, 0)
        for dtype in (np.int16, np.int32):
            info = np.iinfo(dtype)
            if info.min <= lo and hi <= info.max:
                return np.ascontiguousarray(stacked.astype(dtype))
    return np.ascontiguousarray(stacked.astype(np.float32))


def _ts(ds) -> str:
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if uid is None:
        return "unknown"
    return f"{uid.name} ({uid})" if uid.name != str(uid) else str(uid)


def _int(label: str, ds, key: str) -> int:
    try:
        value = int(ds[key].value)
    except Exception:  # noqa: BLE001
        raise CorruptImage(f"{label} is not a valid DICOM image: missing or bad "
                           f"{key}") from None
    if value <= 0:
        raise CorruptImage(f"{label} is not a valid DICOM image: {key} = {value}")
    return value


def _present(ds, key: str) -> bool:
    return key in ds and ds[key].value not in (None, "")


def _vec(label: str, ds, key: str, n: int, default) -> np.ndarray:
    if not _present(ds, key):
        if default is None:
            raise CorruptImage(f"{label}: DICOM slice has no {key}; cannot build the volume")
        return np.asarray(default, dtype=np.float64)
    try:
        vec = np.asarray([float(v) for v in ds[key].value], dtype=np.float64)
    except Exception:  # noqa: BLE001
        raise CorruptImage(f"{label}: DICOM {key} is not numeric") from None
    if vec.shape != (n,) or not np.all(np.isfinite(vec)):
        raise CorruptImage(f"{label}: DICOM {key} must have {n} finite numbers, got "
                           f"{plain(vec)}")
    if key == "PixelSpacing" and np.any(vec <= 0):
        raise CorruptImage(
            f"{label}: DICOM PixelSpacing must be positive, got {plain(vec)}"
        )
    return vec
