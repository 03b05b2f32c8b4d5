"""Creating sessions from uploads, and exporting masks in the input's geometry."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import numpy as np

from medseg.engine import imageio
from medseg.engine.prompts import Plane
from medseg.errors import InvalidPrompt, UnsupportedExportFormat
from medseg.store import Store, quotas
from medseg.store.chunks import full_box
from medseg.store.dicom_source import DicomSourceStore
from medseg.store.records import RevisionRecord, SessionMeta
from medseg.usecases import uploaded_dicom

EXPORT_FORMATS = {
    "nifti": ("application/gzip", ".nii.gz"),
    "nrrd": ("application/octet-stream", ".nrrd"),
    "png": ("image/png", ".png"),
}


@dataclass
class ExportFile:
    content: bytes
    media_type: str
    filename: str


def create_session(store: Store, files: list[tuple[str, bytes]], tenant: str,
                   limits: imageio.ImageLimits, name: str | None = None) -> SessionMeta:
    # the tenant's quotas first: counting is one round trip, decoding can take seconds
    quotas.check_new_session(store.sessions.redis, store.quotas, tenant,
                             sum(len(content) for _, content in files))
    volume = imageio.load_image(files, limits)
    uploaded = uploaded_dicom.source_of(volume)
    if uploaded is None:
        return store.sessions.create(volume, tenant, name)
    return store.sessions.create(volume, tenant, name, source=uploaded.summary,
                                 also=lambda pipe, keys: _keep_dicom(store, pipe, keys, uploaded))


def _keep_dicom(store: Store, pipe, keys, uploaded: uploaded_dicom.UploadedSource) -> None:
    """Queue an uploaded series' DICOM source (or why it has none) into the MULTI that makes
    the session visible."""
    dicom = DicomSourceStore(store.sessions)
    if uploaded.source is None:
        dicom.write_unavailable(pipe, keys, uploaded.unavailable or "")
    else:
        dicom.write(pipe, keys, uploaded.source, uploaded.headers)


def label_map(store: Store, meta: SessionMeta) -> np.ndarray:
    """uint16 (Z, Y, X): each voxel the label of at most one segment. Where segments overlap,
    the segment created later wins, so the export never holds two labels at a voxel."""
    labels = np.zeros(meta.shape, dtype=np.uint16)
    for segment in store.segments.list(meta):
        _, head = store.segments.head(meta, segment.id)
        labels[store.segments.read_mask(meta, head, full_box(meta.shape))] = segment.label
    return labels


def encode_file(array: np.ndarray, meta: SessionMeta, fmt: str, stem: str) -> ExportFile:
    if fmt not in EXPORT_FORMATS:
        raise UnsupportedExportFormat(f"unknown export format {fmt!r}; use one of "
                                      f"{sorted(EXPORT_FORMATS)}")
    media_type, suffix = EXPORT_FORMATS[fmt]
    affine = np.asarray(meta.affine)
    if fmt == "nifti":
        content = imageio.save_nifti(array, affine)
    elif fmt == "nrrd":
        content = imageio.save_nrrd(array, affine)
    else:
        if meta.shape[0] != 1:
            raise UnsupportedExportFormat(
                f"PNG export is for 2D images only, and this image is a volume of "
                f"{meta.shape[0]} slices: use nifti or nrrd")
        content = imageio.save_png(array[0])
    return ExportFile(content, media_type, stem + suffix)


def export_label_map(store: Store, meta: SessionMeta, fmt: str) -> ExportFile:
    return encode_file(label_map(store, meta), meta, fmt, f"{meta.id}-labels")


def export_segment_masks(store: Store, meta: SessionMeta, fmt: str) -> ExportFile:
    """One binary mask file per segment (overlaps kept), zipped."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for segment in store.segments.list(meta):
            _, head = store.segments.head(meta, segment.id)
            file = export_mask(store, meta, head, fmt, f"segment-{segment.id}-{segment.label}")
            archive.writestr(_zip_entry(file.filename), file.content)
    return ExportFile(buffer.getvalue(), "application/zip", f"{meta.id}-segments.zip")


ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _zip_entry(filename: str) -> zipfile.ZipInfo:
    """A zip member stamped with a fixed time (zip's earliest, 1980-01-01), not the time of the
    export: two exports of the same revisions are the same bytes."""
    entry = zipfile.ZipInfo(filename, date_time=ZIP_EPOCH)
    entry.external_attr = 0o644 << 16
    return entry


def export_mask(store: Store, meta: SessionMeta, record: RevisionRecord, fmt: str,
                stem: str) -> ExportFile:
    mask = store.segments.read_mask(meta, record, full_box(meta.shape)).astype(np.uint8)
    return encode_file(mask, meta, fmt, stem)


# Typed arrays a browser can view without conversion; anything else is sent as float32.
WIRE_DTYPES = {"int8", "uint8", "int16", "uint16", "int32", "uint32", "float32", "float64"}


def read_slice(store: Store, meta: SessionMeta, axis: int, index: int) -> np.ndarray:
    """One plane of the image, 2D and little-endian: axis 0 -> (Y, X), 1 -> (Z, X), 2 -> (Z, Y).

    Reads only the chunks the plane touches. Dtypes without a browser typed array (bool,
    int64, float16, ...) come back as float32."""
    if not 0 <= index < meta.shape[axis]:
        raise InvalidPrompt(f"slice index {index} is outside 0..{meta.shape[axis] - 1} on axis "
                            f"{'zyx'[axis]}")
    plane = store.sessions.read_image(meta, Plane(axis, index).whole(meta.shape)).squeeze(axis)
    dtype = plane.dtype if plane.dtype.name in WIRE_DTYPES else np.dtype(np.float32)
    return np.ascontiguousarray(plane, dtype=dtype.newbyteorder("<"))
