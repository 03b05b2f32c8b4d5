"""Mask and mask-delta wire format (``rle/1`` and ``rle-xor/1``).

The full specification lives in ``docs/mask-delta-format.md``; this module is
the reference implementation.  It depends on numpy only, so both the server
(which imports the encoders) and the client SDK (which imports the decoders)
can use it.

Conventions
-----------
* Masks are 3-D arrays indexed ``(z, y, x)`` with shape ``(Z, Y, X)``.  A 2-D
  image is a volume with ``Z == 1`` (pass ``mask[None]``).  Any dtype is
  accepted by the encoders; non-zero means "inside".  Decoders return
  ``bool`` arrays.
* Bounding boxes are half-open: ``(z0, y0, x0, z1, y1, x1)`` selects
  ``mask[z0:z1, y0:y1, x0:x1]``.
* ``data`` is base64 (RFC 4648, standard alphabet, padded) of the run-length
  encoding of the box contents flattened in C order (x fastest): run lengths
  alternate 0-run, 1-run, 0-run, ... starting with a (possibly empty) 0-run,
  each written as an unsigned LEB128 varint.  The runs cover the box exactly.

Everything here is vectorised numpy; there is no Python loop per voxel or per
run, so a 300x512x512 mask encodes/decodes in well under a second.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

import numpy as np

from medseg_protocol import ENCODING_DELTA, ENCODING_MASK, MAX_VOXELS

__all__ = [
    "ENCODING_DELTA",
    "ENCODING_MASK",
    "MAX_VOXELS",
    "apply_delta",
    "bbox_of",
    "decode_delta_region",
    "decode_mask",
    "encode_delta",
    "encode_delta_from_xor",
    "encode_mask",
    "rle_decode",
    "rle_encode",
]

# Decoders refuse messages whose ``shape`` has more voxels than MAX_VOXELS (a corrupt or
# hostile message must not make us allocate unbounded memory); 2**31 voxels = 2 GiB of bool,
# far above any CT/MR volume we serve (protocol/medseg_protocol/versions.json).

# A varint of at most 9 bytes carries 63 bits; anything longer is rejected.
_MAX_VARINT_BYTES = 9

BBox = tuple[int, int, int, int, int, int]


# --------------------------------------------------------------------------
# bounding boxes
# --------------------------------------------------------------------------


def _as_mask3d(mask: Any, name: str = "mask") -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 3:
        raise ValueError(
            f"{name} must be a 3-D (Z, Y, X) array, got shape {arr.shape}; "
            "for a 2-D image pass mask[None] (Z == 1)"
        )
    if arr.dtype != np.bool_:
        arr = arr != 0
    return arr


def bbox_of(mask: np.ndarray) -> BBox | None:
    """Half-open bounding box of the non-zero voxels of a (Z, Y, X) mask.

    Returns ``(z0, y0, x0, z1, y1, x1)`` such that every non-zero voxel lies in
    ``mask[z0:z1, y0:y1, x0:x1]`` and the box is minimal, or ``None`` when the
    mask has no non-zero voxel.
    """
    m = _as_mask3d(mask)
    zs = np.flatnonzero(m.any(axis=(1, 2)))
    if zs.size == 0:
        return None
    z0, z1 = int(zs[0]), int(zs[-1]) + 1
    sub = m[z0:z1]
    ys = np.flatnonzero(sub.any(axis=(0, 2)))
    y0, y1 = int(ys[0]), int(ys[-1]) + 1
    xs = np.flatnonzero(sub[:, y0:y1].any(axis=(0, 1)))
    x0, x1 = int(xs[0]), int(xs[-1]) + 1
    return (z0, y0, x0, z1, y1, x1)


# --------------------------------------------------------------------------
# run-length + varint layer
# --------------------------------------------------------------------------


def _varint_pack(values: np.ndarray) -> bytes:
    """Unsigned LEB128 encoding of a 1-D array of integers in [0, 2**63)."""
    v = np.asarray(values)
    if v.size == 0:
        return b""
    v = v.astype(np.int64, copy=False)
    if v.min() < 0:
        raise ValueError("varint values must be non-negative")
    if v.max() < 0x80:  # fast path: every value fits in one byte
        return v.astype(np.uint8).tobytes()
    # bytes per value: 1 + number of 7-bit thresholds it reaches
    nbytes = np.ones(v.shape, dtype=np.int64)
    idx = np.flatnonzero(v >= 0x80)
    for k in range(1, _MAX_VARINT_BYTES):
        nbytes[idx] += 1 if k == 1 else (v[idx] >= (1 << (7 * k)))
    starts = np.cumsum(nbytes) - nbytes
    out = np.empty(int(starts[-1] + nbytes[-1]), dtype=np.uint8)
    # byte 0 of every value (the only byte for most runs)
    low = (v & 0x7F).astype(np.uint8)
    low[idx] |= 0x80
    out[starts] = low
    # further bytes, only for the (usually few) multi-byte values
    rest = v[idx] >> 7
    pos = starts[idx]
    nb = nbytes[idx]
    k = 1
    while idx.size:
        byte = (rest & 0x7F).astype(np.uint8)
        byte[nb > k + 1] |= 0x80
        out[pos + k] = byte
        keep = nb > k + 1
        idx, rest, pos, nb = idx[keep], rest[keep] >> 7, pos[keep], nb[keep]
        k += 1
    return out.tobytes()


def _varint_unpack(data: bytes) -> np.ndarray:
    """Decode a concatenation of canonical unsigned LEB128 varints.

    Returns a uint64 array.  Raises ValueError on a truncated varint, one
    longer than 9 bytes, or a non-canonical (over-long) encoding.
    """
    b = np.frombuffer(data, dtype=np.uint8)
    if b.size == 0:
        return np.zeros(0, dtype=np.uint64)
    if b[-1] & 0x80:
        raise ValueError("malformed RLE data: truncated varint at end of stream")
    cont = b >= 0x80
    if not cont.any():  # fast path: every value is a single byte
        return b.astype(np.uint64)
    ends = np.flatnonzero(~cont)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if lengths.max() > _MAX_VARINT_BYTES:
        raise ValueError(f"malformed RLE data: varint longer than {_MAX_VARINT_BYTES} bytes")
    if np.any((lengths > 1) & (b[ends] == 0)):
        raise ValueError("malformed RLE data: non-canonical (over-long) varint")
    pos = np.arange(b.size, dtype=np.int64) - np.repeat(starts, lengths)
    parts = (b & 0x7F).astype(np.uint64) << (np.uint64(7) * pos.astype(np.uint64))
    return np.add.reduceat(parts, starts)


def _runs_of(flat: np.ndarray) -> np.ndarray:
    """Run lengths (0-run first) of a 1-D bool array, as int64."""
    n = flat.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.empty(change.size + 2, dtype=np.int64)
    bounds[0] = 0
    bounds[1:-1] = change
    bounds[-1] = n
    runs = np.diff(bounds)
    if flat[0]:
        runs = np.concatenate([np.zeros(1, dtype=np.int64), runs])
    return runs


def rle_encode(flat_bool: np.ndarray) -> bytes:
    """Run-length encode a 1-D boolean array (shape ``(N,)``).

    Output: varint run lengths alternating 0-run, 1-run, ... starting with a
    0-run (length 0 if ``flat_bool[0]`` is True).  All runs are written, so
    they sum to N; only the first run can have length 0.  An empty input
    encodes to ``b""``.  Non-bool input is treated as ``!= 0``.
    """
    flat = np.asarray(flat_bool)
    if flat.dtype != np.bool_:
        flat = flat != 0
    return _varint_pack(_runs_of(flat.ravel()))


def _checked_runs(data: bytes, size: int) -> np.ndarray:
    """Decode and validate the run lengths of an RLE stream for ``size`` voxels."""
    if size < 0:
        raise ValueError(f"size must be non-negative, got {size}")
    runs = _varint_unpack(data)
    if runs.size == 0:
        if size != 0:
            raise ValueError(f"malformed RLE data: no runs, expected {size} voxels")
        return runs.astype(np.int64)
    if np.any(runs > np.uint64(size)):
        raise ValueError(f"malformed RLE data: run longer than the box ({size} voxels)")
    # A float64 sum cannot wrap around, and is exact while below 2**53 (far
    # beyond MAX_VOXELS), so it rejects overlong streams before the exact sum.
    if float(runs.sum(dtype=np.float64)) > size:
        raise ValueError(f"malformed RLE data: runs exceed the box ({size} voxels)")
    total = int(runs.sum(dtype=np.uint64))
    if total != size:
        raise ValueError(f"malformed RLE data: runs sum to {total}, box has {size} voxels")
    if runs.size > 1 and np.any(runs[1:] == 0):
        raise ValueError("malformed RLE data: zero-length run after the first run")
    return runs.astype(np.int64)


def rle_decode(data: bytes, size: int) -> np.ndarray:
    """Decode an RLE stream produced by :func:`rle_encode` into bool ``(size,)``.

    Raises ValueError on malformed input: truncated/over-long varints, runs
    summing to anything other than ``size`` (checked before allocating), or a
    zero-length run other than the first.
    """
    runs = _checked_runs(bytes(data), int(size))
    if runs.size == 0:
        return np.zeros(0, dtype=bool)
    # Mark the voxel where each run after the first starts, then a running XOR
    # turns the toggle marks into the mask (runs are canonical: only the first
    # may be empty, so the marks are distinct and all < size).
    toggles = np.zeros(int(size), dtype=np.uint8)
    toggles[np.cumsum(runs[:-1])] = 1
    return np.bitwise_xor.accumulate(toggles).view(np.bool_)


# --------------------------------------------------------------------------
# message layer
# --------------------------------------------------------------------------


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _b64decode(s: Any) -> bytes:
    if not isinstance(s, str):
        # ValueError, not TypeError: a malformed message is a ValueError everywhere
        raise ValueError(f"'data' must be a base64 string, got {type(s).__name__}")  # noqa: TRY004
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"'data' is not valid base64: {exc}") from None


def _check_encoding(obj: Any, expected: str) -> None:
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")  # noqa: TRY004
    enc = obj.get("encoding")
    if enc != expected:
        known = (ENCODING_MASK, ENCODING_DELTA)
        if enc in known:
            raise ValueError(f"expected encoding {expected!r}, got {enc!r}")
        raise ValueError(
            f"unknown encoding {enc!r} (this codec supports {known[0]!r} and "
            f"{known[1]!r}; expected {expected!r})"
        )


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _parse_shape(obj: dict, max_voxels: int) -> tuple[int, int, int]:
    shape = obj.get("shape")
    if (
        not isinstance(shape, (list, tuple))
        or len(shape) != 3
        or not all(_is_int(s) and s >= 0 for s in shape)
    ):
        raise ValueError(f"'shape' must be [Z, Y, X] non-negative ints, got {shape!r}")
    z, y, x = (int(s) for s in shape)
    if z * y * x > max_voxels:
        raise ValueError(f"shape {[z, y, x]} exceeds the limit of {max_voxels} voxels")
    return (z, y, x)


def _parse_bbox(obj: dict, shape: tuple[int, int, int]) -> BBox | None:
    bbox = obj.get("bbox")
    if bbox is None:
        return None
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 6 or not all(_is_int(v) for v in bbox):
        raise ValueError(f"'bbox' must be null or 6 ints, got {bbox!r}")
    b = tuple(int(v) for v in bbox)
    for ax in range(3):
        if not (0 <= b[ax] < b[ax + 3] <= shape[ax]):
            raise ValueError(f"'bbox' {list(b)} is empty or outside shape {list(shape)}")
    return b  # type: ignore[return-value]


def _decode_box(obj: dict, expected: str, max_voxels: int):
    """Validate a message; return (shape, bbox, region-or-None)."""
    _check_encoding(obj, expected)
    shape = _parse_shape(obj, max_voxels)
    bbox = _parse_bbox(obj, shape)
    raw = _b64decode(obj.get("data"))
    if bbox is None:
        if raw:
            raise ValueError("'data' must be empty when 'bbox' is null")
        return shape, None, None
    z0, y0, x0, z1, y1, x1 = bbox
    box_shape = (z1 - z0, y1 - y0, x1 - x0)
    size = box_shape[0] * box_shape[1] * box_shape[2]
    region = rle_decode(raw, size).reshape(box_shape)
    return shape, bbox, region


def encode_mask(mask: np.ndarray) -> dict:
    """Encode a full (Z, Y, X) mask as an ``rle/1`` message (a JSON-able dict).

    ``{"encoding": "rle/1", "shape": [Z, Y, X], "bbox": [z0, y0, x0, z1, y1, x1]
    or None, "data": base64 RLE of mask[bbox] in C order ("" when empty)}``.
    """
    m = _as_mask3d(mask)
    bbox = bbox_of(m)
    if bbox is None:
        data = ""
    else:
        z0, y0, x0, z1, y1, x1 = bbox
        data = _b64encode(rle_encode(m[z0:z1, y0:y1, x0:x1].ravel()))
    return {
        "encoding": ENCODING_MASK,
        "shape": [int(s) for s in m.shape],
        "bbox": None if bbox is None else list(bbox),
        "data": data,
    }


def decode_mask(obj: dict, *, max_voxels: int = MAX_VOXELS) -> np.ndarray:
    """Decode an ``rle/1`` message into a new bool array of shape (Z, Y, X).

    Raises ValueError for an unknown/mismatched encoding, an invalid shape or
    bbox, bad base64, or malformed RLE data.
    """
    shape, bbox, region = _decode_box(obj, ENCODING_MASK, max_voxels)
    out = np.zeros(shape, dtype=bool)
    if bbox is not None:
        z0, y0, x0, z1, y1, x1 = bbox
        out[z0:z1, y0:y1, x0:x1] = region
    return out


def _delta_message(
    shape: tuple[int, ...],
    bbox: BBox | None,
    region: np.ndarray | None,
    from_revision: int | None,
    to_revision: int | None,
) -> dict:
    if bbox is None or region is None:
        data, changed = "", 0
    else:
        flat = region.ravel()
        changed = int(np.count_nonzero(flat))
        data = _b64encode(rle_encode(flat))
    return {
        "encoding": ENCODING_DELTA,
        "shape": [int(s) for s in shape],
        "bbox": None if bbox is None else [int(v) for v in bbox],
        "from_revision": None if from_revision is None else int(from_revision),
        "to_revision": None if to_revision is None else int(to_revision),
        "changed_voxels": changed,
        "data": data,
    }


def encode_delta(
    old: np.ndarray,
    new: np.ndarray,
    from_revision: int | None = None,
    to_revision: int | None = None,
) -> dict:
    """Encode the change from ``old`` to ``new`` (both (Z, Y, X)) as ``rle-xor/1``.

    ``bbox`` is the bounding box of ``old XOR new`` (None when identical),
    ``data`` the RLE of ``(old XOR new)[bbox]``, ``changed_voxels`` the number
    of voxels that differ.
    """
    o = _as_mask3d(old, "old")
    n = _as_mask3d(new, "new")
    if o.shape != n.shape:
        raise ValueError(f"old shape {o.shape} != new shape {n.shape}")
    xor = np.logical_xor(o, n)
    return encode_delta_from_xor(xor, (0, 0, 0), o.shape, from_revision, to_revision)


def encode_delta_from_xor(
    xor_region: np.ndarray,
    offset: Sequence[int],
    shape: Sequence[int],
    from_revision: int | None = None,
    to_revision: int | None = None,
) -> dict:
    """Encode a delta when the caller already has ``old XOR new`` for a sub-box.

    ``xor_region`` is (dz, dy, dx) and sits at ``offset`` = (z, y, x) inside a
    volume of ``shape`` = (Z, Y, X); voxels outside it are unchanged.  The
    emitted bbox is tightened to the true voxels of ``xor_region``.
    """
    x = _as_mask3d(xor_region, "xor_region")
    shp = tuple(int(s) for s in shape)
    off = tuple(int(v) for v in offset)
    if len(shp) != 3 or len(off) != 3:
        raise ValueError("shape and offset must both be (z, y, x) triples")
    for ax in range(3):
        if off[ax] < 0 or off[ax] + x.shape[ax] > shp[ax]:
            raise ValueError(f"xor_region of shape {x.shape} at offset {off} does not fit in {shp}")
    local = bbox_of(x)
    if local is None:
        return _delta_message(shp, None, None, from_revision, to_revision)
    z0, y0, x0, z1, y1, x1 = local
    region = x[z0:z1, y0:y1, x0:x1]
    bbox = (
        z0 + off[0],
        y0 + off[1],
        x0 + off[2],
        z1 + off[0],
        y1 + off[1],
        x1 + off[2],
    )
    return _delta_message(shp, bbox, region, from_revision, to_revision)


def decode_delta_region(
    delta: dict, *, max_voxels: int = MAX_VOXELS
) -> tuple[tuple[int, int, int], BBox | None, np.ndarray | None]:
    """Validate an ``rle-xor/1`` message; return ``(shape, bbox, xor_region)``.

    ``xor_region`` is the bool (z1-z0, y1-y0, x1-x0) XOR for ``bbox`` (None
    when the delta is empty).  ``changed_voxels``, when present, is checked.
    """
    shape, bbox, region = _decode_box(delta, ENCODING_DELTA, max_voxels)
    changed = delta.get("changed_voxels")
    if changed is not None:
        actual = 0 if region is None else int(np.count_nonzero(region))
        if not _is_int(changed) or int(changed) != actual:
            raise ValueError(
                f"'changed_voxels' is {changed!r} but the data changes {actual} voxels"
            )
    return shape, bbox, region


def apply_delta(old: np.ndarray, delta: dict, *, max_voxels: int = MAX_VOXELS) -> np.ndarray:
    """Apply an ``rle-xor/1`` delta to ``old`` (Z, Y, X); return a new bool array.

    ``new = old.copy(); new[bbox] ^= decoded``.  ``old`` is not modified.
    Raises ValueError if the encoding is not ``rle-xor/1``, the delta's shape
    differs from ``old.shape``, or the payload is malformed.
    """
    o = _as_mask3d(old, "old")
    shape, bbox, region = decode_delta_region(delta, max_voxels=max_voxels)
    if tuple(o.shape) != shape:
        raise ValueError(f"delta shape {list(shape)} does not match mask shape {list(o.shape)}")
    new = np.array(o, dtype=bool, copy=True)
    if bbox is not None:
        z0, y0, x0, z1, y1, x1 = bbox
        new[z0:z1, y0:y1, x0:x1] ^= region
    return new
