"""The DICOM source of an uploaded DICOM series, so DICOM SEG export, import and push work on
it as on a series pulled from a PACS.

A SEG references its source series and every instance by UID and copies the patient, study and
frame of reference from their headers. An upload keeps what a pull keeps (store/dicom_source.py:
the UIDs in slice order and each slice's header without pixel data), with no archive name.
A series whose files lack those UIDs (anonymisers often empty them) cannot be referenced: the
session then keeps the reason, and the SEG calls answer `no_dicom_source` naming what is
missing instead of "not opened from DICOM".
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from typing import Any

import pydicom

from medseg.engine.imageio.dicom import INSTANCES
from medseg.engine.volume import Volume
from medseg.store.dicom_source import DicomSource

# What a SEG must reference or copy from every source instance (highdicom refuses without)
REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID",
                 "FrameOfReferenceUID")


@dataclass
class UploadedSource:
    source: DicomSource | None  # None: the series cannot be referenced, `unavailable` says why
    headers: list[bytes]
    summary: dict[str, Any] | None  # the session record's `source`
    unavailable: str | None = None


def source_of(volume: Volume) -> UploadedSource | None:
    """The source of a volume loaded from uploaded DICOM files; None for any other upload."""
    instances: list[pydicom.Dataset] | None = volume.extra.get(INSTANCES)
    if volume.source_format != "dicom" or not instances:
        return None
    missing = missing_uids(instances)
    if missing:
        return UploadedSource(None, [], None, unavailable=(
            f"its DICOM files lack {missing}, which a DICOM SEG must reference (anonymisation "
            "often empties them); upload the series with its UIDs for DICOM SEG, or export "
            "nifti / nrrd"))
    first = instances[0]
    uids = [str(ds.SOPInstanceUID) for ds in instances]
    study, series = str(first.StudyInstanceUID), str(first.SeriesInstanceUID)
    source = DicomSource(
        pacs=None, study_instance_uid=study, series_instance_uid=series,
        frame_of_reference_uid=str(first.FrameOfReferenceUID),
        sop_class_uid=str(first.SOPClassUID), sop_instance_uids=uids,
        digest=hashlib.sha256("\0".join(["upload", study, series, *sorted(uids)]).encode())
        .hexdigest())
    headers = [header_bytes(ds) for ds in instances]
    summary = {"kind": "upload", "study_instance_uid": study, "series_instance_uid": series,
               "frame_of_reference_uid": source.frame_of_reference_uid,
               "instances": len(uids), **descriptions(headers[0])}
    return UploadedSource(source, headers, summary)


def missing_uids(instances: list[pydicom.Dataset]) -> str:
    """In words, the UIDs some instance lacks (empty counts as missing), or ''."""
    missing = [name for name in REQUIRED_UIDS
               if any(not str(ds.get(name, "") or "").strip() for ds in instances)]
    parts = list(missing)
    uids = [str(ds.get("SOPInstanceUID", "") or "") for ds in instances]
    if "SOPInstanceUID" not in missing and len(set(uids)) != len(uids):
        parts.append("a distinct SOPInstanceUID per slice")
    return ", ".join(parts)


# What tells sessions apart in a list, and nothing that identifies the patient.
_DESCRIBING = {"study_description": "StudyDescription", "series_description": "SeriesDescription",
               "study_date": "StudyDate", "series_date": "SeriesDate"}


def descriptions(header: bytes) -> dict[str, str]:
    """Study / series description and date of the series (from one instance's header), for
    the session record's `source`: only the ones the instance has."""
    try:
        ds = pydicom.dcmread(io.BytesIO(header), stop_before_pixels=True, force=True)
    except Exception:  # noqa: BLE001 - a header that cannot be read describes nothing
        return {}
    out = {}
    for key, keyword in _DESCRIBING.items():
        value = str(ds.get(keyword, "") or "").strip()
        if value:
            out[key] = value[:200]
    return out


def header_bytes(ds: pydicom.Dataset) -> bytes:
    """The instance without pixel data or private elements, as Part 10 bytes."""
    header = pydicom.Dataset(ds)
    header.file_meta = ds.file_meta
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in header:
            del header[keyword]
    header.remove_private_tags()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            header.save_as(buffer, enforce_file_format=True)
        except (ValueError, AttributeError):  # file meta incomplete: the dataset as it is
            buffer = io.BytesIO()
            header.save_as(buffer, enforce_file_format=False)
    return buffer.getvalue()
