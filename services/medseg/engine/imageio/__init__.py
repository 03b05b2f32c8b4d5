"""Image I/O: uploaded bytes -> `Volume`, and masks -> NIfTI / NRRD / PNG bytes.

Pure functions (no FastAPI, no Redis). Every failure is a `MedsegError`: UnsupportedFormat
(415), CorruptImage (422) or ImageTooLarge (413), with a message naming the problem and the
file by its position ("file 3 of 20"): never by its name, which can carry patient data.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from medseg.engine.imageio._common import (
    GZIP_MAGIC,
    JPEG_MAGIC,
    NRRD_MAGIC,
    PNG_MAGIC,
    SUPPORTED,
    ZIP_MAGICS,
    ImageLimits,
    expand_zip,
    human,
    looks_like,
)
from medseg.engine.imageio.dicom import (
    is_dicom,
    is_image,
    is_slice_without_pixels,
    load_dicom_series,
    looks_like_raw_dicom,
    read_dataset,
)
from medseg.engine.imageio.nifti import load_nifti, nifti_kind
from medseg.engine.imageio.nrrd_io import load_nrrd
from medseg.engine.imageio.orient import reorient_to
from medseg.engine.imageio.raster import load_raster
from medseg.engine.imageio.writers import save_nifti, save_nrrd, save_png
from medseg.engine.volume import MAX_AXIS, Volume
from medseg.errors import CorruptImage, ImageTooLarge, MedsegError, UnsupportedFormat, plain

__all__ = [
    "ImageLimits",
    "load_image",
    "reorient_to",
    "save_nifti",
    "save_nrrd",
    "save_png",
    "sniff_format",
]

_EXT_FORMATS = (
    (".nii.gz", "NIfTI"),
    (".nii", "NIfTI"),
    (".gz", "NIfTI"),
    (".nrrd", "NRRD"),
    (".png", "PNG"),
    (".jpg", "JPEG"),
    (".jpeg", "JPEG"),
    (".dcm", "DICOM"),
    (".dicom", "DICOM"),
    (".ima", "DICOM"),
    (".zip", "zip archive"),
)


def sniff_format(content: bytes) -> str | None:
    """'nifti' | 'nrrd' | 'png' | 'jpeg' | 'dicom' | 'zip' from magic bytes, else None."""
    if content[:2] == GZIP_MAGIC or nifti_kind(content[:544]):
        return "nifti"
    if content[:7] == NRRD_MAGIC:
        return "nrrd"
    if content[:8] == PNG_MAGIC:
        return "png"
    if content[:3] == JPEG_MAGIC:
        return "jpeg"
    if content[:4] in ZIP_MAGICS:
        return "zip"
    if is_dicom(content) or looks_like_raw_dicom(content):
        return "dicom"
    return None


def _claimed(name: str) -> str | None:
    lower = name.lower()
    return next((fmt for ext, fmt in _EXT_FORMATS if lower.endswith(ext)), None)


DEFAULT_LIMITS = ImageLimits()


def load_image(files: list[tuple[str, bytes]], limits: ImageLimits = DEFAULT_LIMITS) -> Volume:
    """Load an uploaded image: one NIfTI / NRRD / PNG / JPEG / DICOM file, several DICOM files
    of one series, or one .zip holding any of these (typically a DICOM series).

    File names are used only to read the format a name claims; messages refer to a file by
    its position ("file 3 of 20"), never by its name, which can carry patient data. Voxels
    that are NaN or infinite are replaced (see `finite_voxels`) and reported in
    `Volume.warnings`."""
    try:
        return finite_voxels(check_geometry(_load(files, limits)))
    except MedsegError:
        raise
    except MemoryError:
        raise ImageTooLarge("the image does not fit in memory") from None
    except Exception as exc:  # noqa: BLE001 - last line of defence: no raw library errors
        raise CorruptImage("the upload could not be read as an image "
                           f"({type(exc).__name__})") from exc


def _label(index: int, count: int, where: str = "") -> str:
    """How messages name a file: by position, never by name."""
    if count == 1:
        return f"the file{where}" if where else "the uploaded file"
    return f"file {index + 1} of {count}{where}"


# An upload entry: (name, the label messages use, content, came from a zip)
Entry = tuple[str, str, bytes, bool]


def _load(files: list[tuple[str, bytes]], limits: ImageLimits) -> Volume:
    if not files:
        raise CorruptImage(f"no files were uploaded; expected one of: {SUPPORTED}")
    checked: list[tuple[str, bytes]] = []
    for item in files:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise CorruptImage("each upload must be a (filename, content) pair")
        name, content = str(item[0] or "upload"), item[1]
        if not isinstance(content, bytes | bytearray | memoryview):
            raise CorruptImage(f"{_label(len(checked), len(files))}: content must be bytes")
        checked.append((name, bytes(content)))
    total = sum(len(c) for _, c in checked)
    if total > limits.max_upload_bytes:
        raise ImageTooLarge(
            f"upload is too large: {human(total)} in {len(checked)} file(s) exceeds the limit of "
            f"{human(limits.max_upload_bytes)}"
        )
    entries: list[Entry] = []
    for index, (name, content) in enumerate(checked):
        label = _label(index, len(checked))
        if not content:
            raise CorruptImage(f"{label} is empty")
        if sniff_format(content) == "zip":
            zip_label = label if len(checked) > 1 else "the zip archive"
            members = [(m, c) for m, c in expand_zip(zip_label, content, limits) if c]
            if not members:
                raise CorruptImage(f"{zip_label} is an empty zip archive")
            where = " in " + ("the zip archive" if len(checked) == 1 else f"zip archive {label}")
            entries += [(m, _label(i, len(members), where), c, True)
                        for i, (m, c) in enumerate(members)]
        else:
            entries.append((name, label, content, False))
    if len(entries) == 1:
        name, label, content, _ = entries[0]
        fmt = sniff_format(content)
        if fmt in ("nifti", "nrrd", "png", "jpeg"):
            return _load_single(label, content, fmt, limits)
        if fmt == "zip":
            raise UnsupportedFormat(f"{label} is a zip inside a zip; upload a single zip")
        if fmt is None:
            _unknown(name, label, content)
    elif all(from_zip for *_, from_zip in entries):
        fmts = [sniff_format(c) for _, _, c, _ in entries]
        singles = [(i, f) for i, f in enumerate(fmts) if f in ("nifti", "nrrd", "png", "jpeg")]
        if len(singles) == 1 and "dicom" not in fmts:  # e.g. one .nii.gz plus a README
            index, single = singles[0]
            _, label, content, _ = entries[index]
            return _load_single(label, content, single, limits)
    return _load_dicom(entries, limits)


def _load_single(label: str, content: bytes, fmt: str, limits: ImageLimits) -> Volume:
    if fmt == "nifti":
        return load_nifti(label, content, limits)
    if fmt == "nrrd":
        return load_nrrd(label, content, limits)
    return load_raster(label, content, fmt, limits)


def _unknown(name: str, label: str, content: bytes):
    """Raise for content no reader recognises; the format its name claims (the name is not
    repeated) helps say what is wrong. Returns for a claimed DICOM (pydicom may read it)."""
    claimed = _claimed(name)
    if claimed == "NIfTI":
        raise CorruptImage(
            f"{label} is not a valid NIfTI: it is neither gzip-compressed nor has a NIfTI "
            f"header (it looks like {looks_like(content)})"
        )
    if claimed in ("NRRD", "PNG", "JPEG", "zip archive"):
        raise CorruptImage(
            f"{label} is not a valid {claimed}: its content does not start with the "
            f"{claimed} signature (it looks like {looks_like(content)})"
        )
    if claimed == "DICOM":
        return  # let pydicom have a go; it names the problem
    raise UnsupportedFormat(
        f"{label} is not in a supported format (it looks like {looks_like(content)}); "
        f"supported: {SUPPORTED}"
    )


def _load_dicom(entries: list[Entry], limits: ImageLimits) -> Volume:
    datasets = []
    skipped = 0
    for name, label, content, from_zip in entries:
        fmt = sniff_format(content)
        ds = read_dataset(label, content, limits) if fmt in ("dicom", None) else None
        if ds is None:
            if from_zip:
                skipped += 1
                continue
            if len(entries) == 1:
                _unknown(name, label, content)
                raise CorruptImage(f"{label} is not a valid DICOM file")
            kind = f"a {fmt.upper()} file" if fmt else "not a recognised image"
            raise UnsupportedFormat(
                f"{label} is {kind}: several files are only accepted as one DICOM series "
                f"(supported: {SUPPORTED})"
            )
        if is_image(ds):
            datasets.append((label, ds))
        elif is_slice_without_pixels(ds):
            # said now: dropped, it would leave a gap that reads as "non-uniform spacing"
            raise CorruptImage(f"{label} (a DICOM slice) has no pixel data; upload the "
                               "series again, with every slice complete")
    if not datasets:
        if skipped and skipped == len(entries):
            raise UnsupportedFormat(
                f"the zip archive holds no supported image ({len(entries)} file(s), none of them "
                f"DICOM, or several non-DICOM images); supported: {SUPPORTED}"
            )
        raise CorruptImage("no DICOM image instances found (only DICOMDIR or non-image objects)")
    vol = load_dicom_series(datasets, limits)
    if skipped:
        vol.extra["skipped_non_dicom_files"] = skipped
    return vol


# Voxel sizes a volume may have, in mm: from 1 nm (beyond any microscope's voxel) to 1 km.
# Outside them the mm <-> voxel arithmetic of the methods (a 60 mm margin is 60 / spacing
# voxels) overflows or loses every digit; such a size is a damaged header, not an image.
SPACING_MM = (1e-6, 1e6)


def check_geometry(vol: Volume) -> Volume:
    """ImageTooLarge for an axis longer than MAX_AXIS voxels (requests could not name its
    voxels); CorruptImage for a voxel size that is not finite or outside SPACING_MM."""
    if max(vol.shape) > MAX_AXIS:
        raise ImageTooLarge(f"the image is {' x '.join(map(str, vol.shape))} voxels (z, y, x): "
                            f"an axis longer than {MAX_AXIS} voxels is not supported")
    lo, hi = SPACING_MM
    if not all(math.isfinite(s) and lo <= s <= hi for s in vol.spacing):
        raise CorruptImage(f"the image's voxel size {plain(vol.spacing)} mm (z, y, x) is not "
                           f"plausible (each must lie between {plain(lo)} and {plain(hi)} mm): "
                           "its header is damaged")
    return vol


def finite_voxels(vol: Volume) -> Volume:
    """The volume with NaN / infinite voxels replaced, and a warning that says so.

    Why replace rather than refuse: NaN is how research pipelines (registration, resampling,
    SPM / FSL masks) mark "no data" outside the field of view, and every viewer opens such a
    file; refusing it would leave a clinician no way to segment the image. Why not keep them:
    one NaN makes a whole region of interest NaN (a click then marked the whole slice). So NaN
    and -inf become the lowest finite value (background: outside the field of view), +inf
    the highest (a saturated voxel), and the session reports how many were replaced.
    CorruptImage when no voxel is finite (nothing to segment)."""
    array = vol.array
    if array.dtype.kind not in "fc":
        return vol
    finite = np.isfinite(array)
    bad = int(array.size - np.count_nonzero(finite))
    if bad == 0:
        return vol
    if bad == array.size:
        raise CorruptImage("every voxel of the image is NaN or infinite: there is nothing to "
                           "segment")
    values = array[finite]
    lo, hi = values.min(), values.max()
    fixed = np.nan_to_num(array, nan=lo, neginf=lo, posinf=hi)
    warning = (f"{bad} of {array.size} voxels were NaN or infinite (often: outside the field "
               f"of view); they read as {plain(lo)} (NaN, -inf) or {plain(hi)} (+inf)")
    return dataclasses.replace(vol, array=fixed, warnings=[*vol.warnings, warning])
