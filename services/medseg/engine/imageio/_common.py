"""Shared helpers for image I/O: limits, bounded decompression, zip expansion, affine maths."""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from medseg.errors import CorruptImage, ImageTooLarge, UnsupportedFormat

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
NRRD_MAGIC = b"NRRD000"

SUPPORTED = (
    "NIfTI (.nii, .nii.gz), NRRD (.nrrd), DICOM (one or more files, or one .zip of a series), "
    "PNG, JPEG"
)

_OUT_CHUNK = 16 << 20  # max bytes produced per decompress call
_IN_CHUNK = 1 << 20
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class ImageLimits:
    """What an upload may cost. The decode budget of a compressed file (`budget`) is what keeps
    a small file from costing gigabytes: it may decode to `max_expansion_ratio` times its size,
    or `expansion_allowance` bytes if that is more, never more than `max_uncompressed_bytes`.
    Medical images compress 2-10 times (CT, MR with noise); 100 times is a file of zeros, and
    the allowance (128 MiB: a 512 x 512 x 256 CT of int16) covers small images that compress
    well (a synthetic phantom, a label-like image)."""

    max_upload_bytes: int = 1 << 30  # total compressed bytes of all files
    max_voxels: int = 512 * 512 * 1024
    max_uncompressed_bytes: int = 4 << 30  # guard against zip/gzip bombs
    max_expansion_ratio: int = 100
    expansion_allowance: int = 128 << 20

    def budget(self, compressed: int) -> int:
        """The most bytes a compressed file (or archive) of `compressed` bytes may decode to."""
        return min(self.max_uncompressed_bytes,
                   max(self.expansion_allowance, self.max_expansion_ratio * compressed))

    def check_expansion(self, label: str, compressed: int, decoded: int, what: str) -> None:
        """ImageTooLarge, before anything is decompressed, when what a header declares
        (`decoded` bytes) is more than the budget of the `compressed` bytes that carry it."""
        budget = self.budget(compressed)
        if decoded > budget:
            raise ImageTooLarge(
                f"{label} is too large: {what} declares {human(decoded)} of data in a "
                f"{human(compressed)} file, more than the {human(budget)} such a file may decode "
                f"to (at most {self.max_expansion_ratio} times its size, or "
                f"{human(self.expansion_allowance)}): possible decompression bomb"
            )


_OBJECT_REPR = re.compile(r"<[^<>]*? at 0x[0-9a-fA-F]+>")
_NUMPY_REPR = re.compile(r"np\.[a-z_]+\d*\(([^()]*)\)")
_DETAIL_CHARS = 160


def detail(exc: BaseException) -> str:
    """A library's words about a bad file, fit for a message: one line, no object reprs
    (`<_io.BytesIO object at 0x...>` reads "the file"), no NumPy reprs, at most 160
    characters. Only for libraries that cannot quote patient data or file names (nibabel,
    pynrrd, Pillow, zlib); zip members and DICOM elements are described in our own words."""
    text = _OBJECT_REPR.sub("the file", " ".join(str(exc).split()))
    text = _NUMPY_REPR.sub(r"\1", text)
    if len(text) > _DETAIL_CHARS:
        text = text[:_DETAIL_CHARS].rstrip() + "..."
    return text or type(exc).__name__


def looks_like(content: bytes) -> str:
    """What a file that is no supported image seems to be, in words (its bytes are never
    echoed: they can be patient data)."""
    head = content[:512]
    if head.startswith(b"%PDF"):
        return "a PDF document"
    if head[:4] in (b"GIF8", b"II*\x00", b"MM\x00*") or head[:2] == b"BM":
        return "an image format that is not supported (GIF, TIFF or BMP)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data of an unknown format"
    return "text" if all(c.isprintable() or c.isspace() for c in text) else "unknown data"


def human(n: float) -> str:
    """Byte count for messages: '1.5 MiB'."""
    n = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{int(n)} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def check_voxels(label: str, shape: tuple[int, ...], limits: ImageLimits, axes: str = "") -> None:
    """ImageTooLarge naming the shape (in `axes` order, e.g. '(z, y, x)') and the limit."""
    n = int(np.prod([int(s) for s in shape], dtype=np.int64))
    if n > limits.max_voxels:
        dims = " x ".join(str(int(s)) for s in shape) + (f" {axes}" if axes else "")
        raise ImageTooLarge(
            f"{label} is too large: {dims} = {n} voxels exceeds the limit of "
            f"{limits.max_voxels} voxels"
        )


def gunzip_bounded(
    label: str,
    data: bytes,
    limit: int,
    what: str = "NIfTI",
    peek: Callable[[bytes], int | None] | None = None,
    peek_bytes: int = 544,
) -> bytes:
    """Gunzip `data`, raising ImageTooLarge as soon as more than `limit` bytes come out.

    `peek(head)` is called once with the first `peek_bytes` decompressed bytes (fewer if the
    stream is shorter); it may raise, or return a tighter byte bound for the whole output
    (e.g. the size the file's own header declares).
    """
    dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = bytearray()
    pos = 0
    tail = b""
    bound = limit
    bound_reason = f"the limit of {human(limit)}"
    peeked = peek is None
    try:
        while not dec.eof:
            if tail:
                chunk = tail
            elif pos < len(data):
                chunk = data[pos : pos + _IN_CHUNK]
                pos += _IN_CHUNK
            else:
                break
            want = peek_bytes - len(out) if not peeked else _OUT_CHUNK
            want = max(1, min(want, bound - len(out) + 1))
            out += dec.decompress(chunk, want)
            tail = dec.unconsumed_tail
            if len(out) > bound:
                raise ImageTooLarge(
                    f"{label} is too large: gzip stream decompresses to more than "
                    f"{bound_reason} (possible gzip bomb)"
                )
            if not peeked and (len(out) >= peek_bytes or dec.eof):
                peeked = True
                declared = peek(bytes(out))  # type: ignore[misc]
                if declared is not None and declared > bound:
                    # a valid file decodes to what its header declares: refuse it now
                    raise ImageTooLarge(
                        f"{label} is too large: its {what} header declares {human(declared)} "
                        f"of data, more than {bound_reason} (possible gzip bomb)"
                    )
                if declared is not None and declared < bound:
                    bound = declared
                    bound_reason = f"the {human(declared)} its {what} header declares"
    except zlib.error as exc:
        raise CorruptImage(f"{label} is not a valid {what}: corrupt gzip stream "
                           f"({detail(exc)})") from exc
    if not dec.eof:
        raise CorruptImage(f"{label} is not a valid {what}: gzip stream is truncated")
    if not peeked:
        peek(bytes(out))  # type: ignore[misc]
    return bytes(out)


def expand_zip(label: str, data: bytes, limits: ImageLimits) -> list[tuple[str, bytes]]:
    """Members of a zip archive (files only, no macOS/hidden junk), with bomb protection."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        # zipfile's words quote member names (which can carry patient data): not repeated
        raise CorruptImage(f"{label} is not a valid zip archive") from exc
    out: list[tuple[str, bytes]] = []
    total = 0
    budget = limits.budget(len(data))
    with zf:
        infos = [i for i in zf.infolist() if not _zip_junk(i)]
        declared = sum(i.file_size for i in infos)
        if declared > limits.max_uncompressed_bytes:
            raise ImageTooLarge(
                f"{label} is too large: zip members declare {human(declared)} uncompressed, "
                f"more than the limit of {human(limits.max_uncompressed_bytes)} "
                "(possible zip bomb)"
            )
        limits.check_expansion(label, len(data), declared, "its table of contents")
        for number, info in enumerate(infos, start=1):
            member = f"its file {number} of {len(infos)}"  # names can carry patient data
            if info.flag_bits & 0x1:
                raise UnsupportedFormat(
                    f"{label} is encrypted ({member} is); encrypted zip archives are not "
                    "supported"
                )
            buf = bytearray()
            try:
                with zf.open(info) as fh:
                    while True:
                        piece = fh.read(_IN_CHUNK)
                        if not piece:
                            break
                        buf += piece
                        total += len(piece)
                        if total > budget:  # members that decode to more than declared
                            raise ImageTooLarge(
                                f"{label} is too large: zip content decompresses to more "
                                f"than the {human(budget)} an archive of its size may hold "
                                "(possible zip bomb)"
                            )
            except NotImplementedError as exc:
                raise UnsupportedFormat(
                    f"{label}: {member} uses an unsupported zip compression method "
                    f"(method {info.compress_type})"
                ) from exc
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError) as exc:
                raise CorruptImage(
                    f"{label} is not a valid zip archive: {member} cannot be read (damaged "
                    "or truncated)"
                ) from exc
            out.append((info.filename, bytes(buf)))
    return out


def _zip_junk(info: zipfile.ZipInfo) -> bool:
    if info.is_dir():
        return True
    parts = info.filename.replace("\\", "/").split("/")
    return parts[0] == "__MACOSX" or parts[-1].startswith(".") or parts[-1] == "Thumbs.db"


def spacing_from_affine(affine: np.ndarray) -> tuple[float, float, float]:
    """(sz, sy, sx) from the column norms of a voxel(i=x, j=y, k=z) -> mm affine."""
    norms = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    return (float(norms[2]), float(norms[1]), float(norms[0]))


def check_affine(label: str, affine: np.ndarray, what: str) -> np.ndarray:
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise CorruptImage(f"{label} is not a valid {what}: non-finite voxel-to-world matrix")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise CorruptImage(
            f"{label} is not a valid {what}: degenerate voxel-to-world matrix "
            "(zero voxel size or collinear axes)"
        )
    return affine
