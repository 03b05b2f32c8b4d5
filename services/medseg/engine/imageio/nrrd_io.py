"""NRRD (.nrrd, attached header) reading from bytes."""

from __future__ import annotations

import bz2
import io

import nrrd
import numpy as np

from medseg.engine.imageio._common import (
    ImageLimits,
    check_affine,
    check_voxels,
    detail,
    gunzip_bounded,
    human,
    spacing_from_affine,
)
from medseg.engine.volume import Volume
from medseg.errors import CorruptImage, ImageTooLarge, UnsupportedFormat

# sign flips that take a space's axes to RAS+
_SPACES = {
    "right-anterior-superior": (1, 1, 1),
    "ras": (1, 1, 1),
    "left-anterior-superior": (-1, 1, 1),
    "las": (-1, 1, 1),
    "left-posterior-superior": (-1, -1, 1),
    "lps": (-1, -1, 1),
    "scanner-xyz": (1, 1, 1),
    "3d-right-handed": (1, 1, 1),
}


def load_nrrd(label: str, content: bytes, limits: ImageLimits) -> Volume:
    fh = io.BytesIO(content)
    try:
        header = nrrd.read_header(fh)
    except Exception as exc:  # noqa: BLE001 - NRRDError, ValueError, ...
        raise CorruptImage(f"{label} is not a valid NRRD: bad header ({detail(exc)})") from exc
    if header.get("datafile", header.get("data file")) is not None:
        raise UnsupportedFormat(
            f"{label} is a detached NRRD header (.nhdr); upload a single .nrrd file"
        )
    try:
        sizes = [int(s) for s in header["sizes"]]
        encoding = str(header.get("encoding", "raw")).lower()
        dim = int(header["dimension"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptImage(f"{label} is not a valid NRRD: missing field {detail(exc)}") from exc
    if dim != len(sizes) or dim < 2:
        raise UnsupportedFormat(f"{label}: NRRD of sizes {sizes} is not supported")
    check_voxels(label, tuple(sizes), limits, "(NRRD axis order, fastest first)")
    data = _read_data(label, header, fh, encoding, sizes, limits)  # (..., z, y, x) C order
    spatial = _spatial_axes(label, header, sizes)
    data = _squeeze_nonspatial(label, data, sizes, spatial)
    if data.ndim == 2:
        data = data[None]
    affine = check_affine(label, _affine(label, header, len(spatial)), "NRRD")
    space = str(header.get("space", "")).lower()
    return Volume(
        array=np.ascontiguousarray(data),
        spacing=spacing_from_affine(affine),
        affine=affine,
        modality=str(header.get("modality", "unknown")),
        source_format="nrrd",
        extra={"space": space or None, "encoding": encoding, "type": str(header.get("type"))},
    )


def _read_data(label, header, fh, encoding, sizes, limits) -> np.ndarray:
    try:
        dtype = nrrd.reader._determine_datatype(header)
    except Exception as exc:  # noqa: BLE001
        raise CorruptImage(f"{label} is not a valid NRRD: bad type ({detail(exc)})") from exc
    nbytes = int(np.prod(sizes, dtype=np.int64)) * dtype.itemsize
    if nbytes > limits.max_uncompressed_bytes:
        raise ImageTooLarge(
            f"{label} is too large: its data is {human(nbytes)}, more than the limit of "
            f"{human(limits.max_uncompressed_bytes)}"
        )
    hdr = dict(header)
    if encoding in ("gzip", "gz", "bzip2", "bz2"):
        for _ in range(int(hdr.pop("lineskip", hdr.pop("line skip", 0)) or 0)):
            fh.readline()
        payload = fh.read()
        limits.check_expansion(label, len(payload), nbytes, "its NRRD header")
        bound = min(limits.max_uncompressed_bytes, nbytes + (1 << 16))
        if encoding in ("gzip", "gz"):
            raw = gunzip_bounded(label, payload, bound, "NRRD")
        else:
            raw = _bunzip_bounded(label, payload, bound)
        skip = int(hdr.pop("byteskip", hdr.pop("byte skip", 0)) or 0)
        raw = raw[-nbytes:] if skip == -1 else raw[skip:]
        hdr["encoding"] = "raw"
        fh = io.BytesIO(raw)
    elif encoding not in ("raw", "ascii", "text", "txt"):
        raise UnsupportedFormat(f"{label}: NRRD encoding '{encoding}' is not supported")
    try:
        return nrrd.read_data(hdr, fh, index_order="C")
    except Exception as exc:  # noqa: BLE001
        raise CorruptImage(f"{label} is not a valid NRRD: {detail(exc)}") from exc


def _bunzip_bounded(label: str, payload: bytes, bound: int) -> bytes:
    dec = bz2.BZ2Decompressor()
    out = bytearray()
    try:
        pos = 0
        while not dec.eof:
            chunk = b""
            if dec.needs_input:
                if pos >= len(payload):
                    break
                chunk = payload[pos : pos + (1 << 20)]
                pos += 1 << 20
            out += dec.decompress(chunk, max_length=1 << 20)
            if len(out) > bound:
                raise ImageTooLarge(
                    f"{label} is too large: bzip2 data decompresses to more than "
                    f"{human(bound)} (possible decompression bomb)"
                )
    except (OSError, ValueError, EOFError) as exc:
        raise CorruptImage(f"{label} is not a valid NRRD: corrupt bzip2 data "
                           f"({detail(exc)})") from exc
    if not dec.eof:
        raise CorruptImage(f"{label} is not a valid NRRD: bzip2 data is truncated")
    return bytes(out)


def _spatial_axes(label: str, header, sizes: list[int]) -> list[int]:
    """Indices (NRRD order, fastest first) of the axes that have a space direction."""
    dirs = header.get("space directions")
    if dirs is None:
        return list(range(min(3, len(sizes))))
    spatial = [i for i, row in enumerate(dirs) if row is not None and np.all(np.isfinite(row))]
    if not 2 <= len(spatial) <= 3:
        raise UnsupportedFormat(f"{label}: NRRD with {len(spatial)} spatial axes")
    return spatial


def _squeeze_nonspatial(label, data: np.ndarray, sizes, spatial) -> np.ndarray:
    nonspatial = [i for i in range(len(sizes)) if i not in spatial]
    if any(sizes[i] != 1 for i in nonspatial):
        raise UnsupportedFormat(
            f"{label}: NRRD with non-spatial axes of sizes "
            f"{[sizes[i] for i in nonspatial]} (vector, color or time data) is not supported"
        )
    # NRRD axis i (fastest first) is numpy axis ndim-1-i in C order
    return data.reshape(tuple(sizes[i] for i in reversed(spatial)))


def _affine(label: str, header, nspatial: int) -> np.ndarray:
    affine = np.eye(4)
    dirs = header.get("space directions")
    if dirs is None:
        spacings = header.get("spacings")
        for i in range(nspatial):
            if spacings is not None and i < len(spacings) and np.isfinite(spacings[i]):
                affine[i, i] = float(spacings[i])
        return affine
    rows = [
        np.asarray(r, dtype=np.float64) for r in dirs if r is not None and np.all(np.isfinite(r))
    ]
    sdim = len(rows[0])
    if sdim not in (2, 3) or any(len(r) != sdim for r in rows):
        raise CorruptImage(f"{label} is not a valid NRRD: inconsistent space directions")
    for i, row in enumerate(rows):
        affine[:sdim, i] = row
    origin = header.get("space origin")
    if origin is not None:
        affine[: len(origin), 3] = np.asarray(origin, dtype=np.float64)
    space = str(header.get("space", "")).lower()
    space = space.removesuffix("-time")
    if space:
        if space not in _SPACES:
            raise UnsupportedFormat(f"{label}: NRRD space '{space}' is not supported")
        affine = np.diag([*_SPACES[space], 1.0]) @ affine
    return affine
