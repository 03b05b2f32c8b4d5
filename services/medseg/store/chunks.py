"""The chunk grid that images and masks are stored in, and the bytes of one chunk.

A volume (Z, Y, X) is cut into chunks of `CHUNK_SHAPE` voxels (edge chunks are smaller), so
that reading a region (a 2D slice, an ROI around a click) decodes only the chunks it touches.
Chunk keys are "cz.cy.cx" chunk-grid indices. Pure NumPy + zstd: no Redis here.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Iterator

import numpy as np
import zstandard

from medseg.engine.prompts import Box

# 8 slices x 64 x 64: an axial 2D ROI touches one slab of chunks, a 512x512 slice 64 chunks of
# 64 KiB (int16); small enough that an ROI read stays proportional to the object.
CHUNK_SHAPE = (8, 64, 64)

# zstandard (de)compressor objects must not be used by two threads at once (the API serves
# requests from a thread pool: concurrent reads corrupted each other), so one pair per thread.
_codecs = threading.local()


def _zstd() -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
    pair = getattr(_codecs, "pair", None)
    if pair is None:
        pair = _codecs.pair = (zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor())
    return pair


def chunk_key(index: tuple[int, int, int]) -> str:
    return ".".join(str(i) for i in index)


def parse_chunk_key(key: str | bytes) -> tuple[int, int, int]:
    if isinstance(key, bytes):
        key = key.decode()
    z, y, x = (int(p) for p in key.split("."))
    return z, y, x


def grid_shape(shape: tuple[int, int, int], chunk=CHUNK_SHAPE) -> tuple[int, int, int]:
    return tuple(-(-s // c) for s, c in zip(shape, chunk))


def chunk_box(index: tuple[int, int, int], shape, chunk=CHUNK_SHAPE) -> tuple[slice, slice, slice]:
    """Slices of the full volume covered by chunk `index`."""
    return tuple(
        slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(index, chunk, shape)
    )  # type: ignore[return-value]


def chunks_in(box: Box, chunk=CHUNK_SHAPE) -> Iterator[tuple[int, int, int]]:
    """Chunk indices overlapping the inclusive voxel box."""
    ranges = [range(lo // c, hi // c + 1) for lo, hi, c in zip(box.lo, box.hi, chunk)]
    return itertools.product(*ranges)  # type: ignore[return-value]


def all_chunks(shape, chunk=CHUNK_SHAPE) -> Iterator[tuple[int, int, int]]:
    return itertools.product(*(range(g) for g in grid_shape(shape, chunk)))  # type: ignore[return-value]


def full_box(shape) -> Box:
    return Box((0, 0, 0), tuple(s - 1 for s in shape))


def covering_box(indices, shape, chunk=CHUNK_SHAPE) -> Box:
    """Inclusive voxel box covering the given chunk indices (chunk-aligned, clipped to shape)."""
    idx = np.asarray(list(indices)).reshape(-1, 3)
    lo = idx.min(axis=0) * np.asarray(chunk)
    hi = np.minimum((idx.max(axis=0) + 1) * np.asarray(chunk), shape) - 1
    return Box(tuple(int(v) for v in lo), tuple(int(v) for v in hi))


def box_slices(box: Box) -> tuple[slice, slice, slice]:
    return tuple(slice(lo, hi + 1) for lo, hi in zip(box.lo, box.hi))  # type: ignore[return-value]


def box_shape(box: Box) -> tuple[int, int, int]:
    return tuple(hi - lo + 1 for lo, hi in zip(box.lo, box.hi))  # type: ignore[return-value]


def overlap(box: Box, index, shape, chunk=CHUNK_SHAPE):
    """(slices into the chunk, slices into the box array) where chunk `index` meets `box`."""
    cs = chunk_box(index, shape, chunk)
    in_chunk, in_box = [], []
    for s, lo, hi in zip(cs, box.lo, box.hi):
        a, b = max(s.start, lo), min(s.stop, hi + 1)
        in_chunk.append(slice(a - s.start, b - s.start))
        in_box.append(slice(a - lo, b - lo))
    return tuple(in_chunk), tuple(in_box)


def encode_mask_chunk(block: np.ndarray) -> tuple[str, bytes]:
    """(content digest, compressed bytes). Identical chunks share one stored blob."""
    packed = np.packbits(block.astype(bool, copy=False).ravel()).tobytes()
    return hashlib.blake2b(packed, digest_size=16).hexdigest(), _zstd()[0].compress(packed)


def decode_mask_bits(data: bytes) -> np.ndarray:
    """Flat bool bits of a stored mask chunk, padded to a whole byte; the caller knows the shape."""
    return np.unpackbits(np.frombuffer(_zstd()[1].decompress(data), dtype=np.uint8)).astype(bool)


def encode_array(array: np.ndarray) -> bytes:
    """Raw C-order bytes, zstd-compressed (image chunks, probability maps)."""
    return _zstd()[0].compress(np.ascontiguousarray(array).tobytes())


def decode_array(data: bytes, shape, dtype) -> np.ndarray:
    return np.frombuffer(_zstd()[1].decompress(data), dtype=dtype).reshape(shape)
