"""Image I/O: uploaded bytes -> `Volume`, and masks -> NIfTI / NRRD / PNG bytes.

Pure functions (no FastAPI, no Redis). Every failure is a `MedsegError`: UnsupportedFormat
(415), CorruptImage (422) or ImageTooLarge (413), with a message naming the file and problem.
"""

from __future__ import annotations

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
)
from medseg.engine.imageio.dicom import (
    is_dicom,
    is_image,
    load_dicom_series,
    looks_like_raw_dicom,
    read_dataset,
)
from medseg.engine.imageio.nifti import load_nifti, nifti_kind
from medseg.engine.imageio.nrrd_io import load_nrrd
from medseg.engine.imageio.orient import reorient_to
from medseg.engine.imageio.raster import load_raster
from medseg.engine.imageio.writers import save_nifti, save_nrrd, save_png
from medseg.engine.volume import Volume
from medseg.errors import CorruptImage, ImageTooLarge, MedsegError, UnsupportedFormat

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
    of one series, or one .zip holding any of these (typically a DICOM series)."""
    try:
        return _load(files, limits)
    except MedsegError:
        raise
    except MemoryError:
        raise ImageTooLarge("the image does not fit in memory") from None
    except Exception as exc:  # noqa: BLE001 - last line of defence: no raw library errors
        raise CorruptImage(f"the upload could not be read as an image: "
                           f"{type(exc).__name__}: {exc}") from exc


def _load(files: list[tuple[str, bytes]], limits: ImageLimits) -> Volume:
    if not files:
        raise CorruptImage(f"no files were uploaded; expected one of: {SUPPORTED}")
    checked: list[tuple[str, bytes]] = []
    for item in files:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise CorruptImage("each upload must be a (filename, content) pair")
        name, content = str(item[0] or "upload"), item[1]
        if not isinstance(content, bytes | bytearray | memoryview):
            raise CorruptImage(f"file '{name}': content must be bytes")
        checked.append((name, bytes(content)))
    total = sum(len(c) for _, c in checked)
    if total > limits.max_upload_bytes:
        raise ImageTooLarge(
            f"upload is too large: {human(total)} in {len(checked)} file(s) exceeds the limit of "
            f"{human(limits.max_upload_bytes)}"
        )
    entries: list[tuple[str, bytes, bool]] = []  # (name, content, came from a zip)
    for name, content in checked:
        if not content:
            raise CorruptImage(f"file '{name}' is empty")
        if sniff_format(content) == "zip":
            members = expand_zip(name, content, limits)
            if not members:
                raise CorruptImage(f"file '{name}' is an empty zip archive")
            entries += [(f"{name}/{m}", c, True) for m, c in members if c]
        else:
            entries.append((name, content, False))
    if len(entries) == 1:
        name, content, _ = entries[0]
        fmt = sniff_format(content)
        if fmt in ("nifti", "nrrd", "png", "jpeg"):
            return _load_single(name, content, fmt, limits)
        if fmt == "zip":
            raise UnsupportedFormat(f"file '{name}' is a zip inside a zip; upload a single zip")
        if fmt is None:
            _unknown(name, content)
    elif all(from_zip for _, _, from_zip in entries):
        fmts = [sniff_format(c) for _, c, _ in entries]
        singles = [(i, f) for i, f in enumerate(fmts) if f in ("nifti", "nrrd", "png", "jpeg")]
        if len(singles) == 1 and "dicom" not in fmts:  # e.g. one .nii.gz plus a README
            index, single = singles[0]
            name, content, _ = entries[index]
            return _load_single(name, content, single, limits)
    return _load_dicom(entries, limits)


def _load_single(name: str, content: bytes, fmt: str, limits: ImageLimits) -> Volume:
    if fmt == "nifti":
        return load_nifti(name, content, limits)
    if fmt == "nrrd":
        return load_nrrd(name, content, limits)
    return load_raster(name, content, fmt, limits)


def _unknown(name: str, content: bytes):
    claimed = _claimed(name)
    if claimed == "NIfTI":
        raise CorruptImage(
            f"file '{name}' is not a valid NIfTI: it is neither gzip-compressed nor has a "
            f"NIfTI header (starts with {content[:16]!r})"
        )
    if claimed in ("NRRD", "PNG", "JPEG", "zip archive"):
        raise CorruptImage(
            f"file '{name}' is not a valid {claimed}: its content does not start with the "
            f"{claimed} signature (starts with {content[:16]!r})"
        )
    if claimed == "DICOM":
        return  # let pydicom have a go; it names the problem
    raise UnsupportedFormat(
        f"file '{name}' is not in a supported format (starts with {content[:16]!r}); "
        f"supported: {SUPPORTED}"
    )


def _load_dicom(entries: list[tuple[str, bytes, bool]], limits: ImageLimits) -> Volume:
    datasets = []
    skipped = 0
    for name, content, from_zip in entries:
        fmt = sniff_format(content)
        ds = read_dataset(name, content) if fmt in ("dicom", None) else None
        if ds is None:
            if from_zip:
                skipped += 1
                continue
            if len(entries) == 1:
                _unknown(name, content)
                raise CorruptImage(f"file '{name}' is not a valid DICOM file")
            kind = f"a {fmt.upper()} file" if fmt else "not a recognised image"
            raise UnsupportedFormat(
                f"file '{name}' is {kind}: several files are only accepted as one DICOM series "
                f"(supported: {SUPPORTED})"
            )
        if is_image(ds):
            datasets.append((name, ds))
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
