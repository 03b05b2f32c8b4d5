"""Property and edge-case tests for the rle/1 and rle-xor/1 mask wire format."""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from medseg_protocol.codec import (
    ENCODING_DELTA,
    ENCODING_MASK,
    _varint_pack,
    _varint_unpack,
    apply_delta,
    bbox_of,
    decode_delta_region,
    decode_mask,
    encode_delta,
    encode_delta_from_xor,
    encode_mask,
    rle_decode,
    rle_encode,
)

# ---------------------------------------------------------------- strategies


@st.composite
def shapes(draw, two_d: bool | None = None):
    if two_d is None:
        two_d = draw(st.booleans())
    z = 1 if two_d else draw(st.integers(1, 12))
    return (z, draw(st.integers(1, 12)), draw(st.integers(1, 12)))


@st.composite
def masks(draw, shape=None):
    if shape is None:
        shape = draw(shapes())
    kind = draw(st.sampled_from(["random", "empty", "full", "box", "sparse"]))
    n = int(np.prod(shape))
    if kind == "empty":
        return np.zeros(shape, bool)
    if kind == "full":
        return np.ones(shape, bool)
    if kind == "box":
        m = np.zeros(shape, bool)
        lo = [draw(st.integers(0, s - 1)) for s in shape]
        hi = [draw(st.integers(a + 1, s)) for a, s in zip(lo, shape)]
        m[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
        return m
    if kind == "sparse":
        idx = draw(st.lists(st.integers(0, n - 1), max_size=5))
        m = np.zeros(n, bool)
        m[idx] = True
        return m.reshape(shape)
    bits = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return np.array(bits, bool).reshape(shape)


@st.composite
def mask_pairs(draw):
    shape = draw(shapes())
    return draw(masks(shape)), draw(masks(shape))


def _json_roundtrip(obj):
    return json.loads(json.dumps(obj))


def _ref_bbox(m):
    nz = np.argwhere(m)
    if nz.size == 0:
        return None
    return tuple(int(v) for v in (*nz.min(0), *(nz.max(0) + 1)))


# ---------------------------------------------------------------- RLE layer


@given(st.lists(st.booleans(), max_size=300))
@example([])
@example([True])
@example([False])
def test_rle_roundtrip(bits):
    flat = np.array(bits, dtype=bool)
    data = rle_encode(flat)
    out = rle_decode(data, flat.size)
    assert out.dtype == np.bool_ and out.shape == (flat.size,)
    np.testing.assert_array_equal(out, flat)


@given(st.lists(st.integers(0, 2**63 - 1), max_size=50))
@example([0, 127, 128, 16383, 16384, 2**35, 2**63 - 1])
def test_varint_roundtrip(values):
    v = np.array(values, dtype=np.uint64)
    packed = _varint_pack(v)
    # reference LEB128
    ref = bytearray()
    for x in values:
        while True:
            b = x & 0x7F
            x >>= 7
            ref.append(b | (0x80 if x else 0))
            if not x:
                break
    assert packed == bytes(ref)
    np.testing.assert_array_equal(_varint_unpack(packed), v)


def test_rle_known_bytes():
    assert rle_encode(np.array([1, 1, 0, 1], bool)) == bytes([0, 2, 1, 1])
    assert rle_encode(np.array([0, 0, 0], bool)) == bytes([3])
    assert rle_encode(np.zeros(200, bool)) == bytes([0xC8, 0x01])


@pytest.mark.parametrize(
    "data,size,match",
    [
        (b"\x80", 5, "truncated"),  # truncated varint
        (b"\x03\x81", 5, "truncated"),  # truncated varint after a good one
        (b"\x03\x03", 5, "exceed|run longer"),  # runs sum past the size
        (b"\xff\xff\xff\xff\x0f", 5, "run longer"),  # a single huge run
        (b"\x02\x02", 5, "sum to 4"),  # runs short of the size
        (b"", 5, "no runs"),  # nothing at all
        (b"\x02\x00\x03", 5, "zero-length"),  # non-canonical zero run
        (b"\x82\x00\x03", 5, "over-long"),  # non-canonical varint
        (b"\x80" * 10 + b"\x01", 5, "longer than 9"),
    ],
)
def test_rle_decode_rejects(data, size, match):
    with pytest.raises(ValueError, match=match):
        rle_decode(data, size)


def test_rle_decode_does_not_allocate_for_huge_runs():
    # a stream claiming 2**62 voxels for a 10-voxel box is rejected up front
    data = _varint_pack(np.array([0, 2**62], dtype=np.uint64))
    with pytest.raises(ValueError):
        rle_decode(data, 10)


# ---------------------------------------------------------------- masks


@settings(max_examples=300, deadline=None)
@given(masks())
def test_mask_roundtrip(mask):
    msg = _json_roundtrip(encode_mask(mask))
    assert msg["encoding"] == ENCODING_MASK
    assert msg["shape"] == list(mask.shape)
    ref = _ref_bbox(mask)
    assert bbox_of(mask) == ref
    assert msg["bbox"] == (None if ref is None else list(ref))
    if ref is None:
        assert msg["data"] == ""
    out = decode_mask(msg)
    assert out.dtype == np.bool_ and out.shape == mask.shape
    np.testing.assert_array_equal(out, mask)


@settings(max_examples=100, deadline=None)
@given(masks(shape=(1, 7, 9)))
def test_mask_roundtrip_2d(mask):
    np.testing.assert_array_equal(decode_mask(_json_roundtrip(encode_mask(mask))), mask)


@pytest.mark.parametrize("shape", [(1, 5, 7), (4, 5, 6), (1, 1, 1)])
def test_empty_and_full(shape):
    empty = encode_mask(np.zeros(shape, bool))
    assert empty["bbox"] is None and empty["data"] == ""
    assert not decode_mask(empty).any()
    full = encode_mask(np.ones(shape, bool))
    assert full["bbox"] == [0, 0, 0, *shape]
    assert base64.b64decode(full["data"]) == _varint_pack(np.array([0, np.prod(shape)]))
    assert decode_mask(full).all()


@pytest.mark.parametrize("shape", [(1, 5, 7), (4, 5, 6)])
def test_one_voxel_at_each_corner(shape):
    Z, Y, X = shape
    for z in {0, Z - 1}:
        for y in (0, Y - 1):
            for x in (0, X - 1):
                m = np.zeros(shape, bool)
                m[z, y, x] = True
                msg = encode_mask(m)
                assert msg["bbox"] == [z, y, x, z + 1, y + 1, x + 1]
                assert base64.b64decode(msg["data"]) == b"\x00\x01"
                np.testing.assert_array_equal(decode_mask(msg), m)


def test_encode_accepts_non_bool():
    labels = np.zeros((2, 3, 4), np.uint8)
    labels[1, 2, 3] = 7
    np.testing.assert_array_equal(decode_mask(encode_mask(labels)), labels != 0)


def test_encode_rejects_2d_array():
    with pytest.raises(ValueError, match="mask\\[None\\]"):
        encode_mask(np.zeros((4, 4), bool))


# ---------------------------------------------------------------- deltas


@settings(max_examples=300, deadline=None)
@given(mask_pairs(), st.none() | st.integers(0, 10**6))
def test_delta_roundtrip(pair, rev):
    old, new = pair
    old_copy = old.copy()
    to_rev = None if rev is None else rev + 1
    d = _json_roundtrip(encode_delta(old, new, from_revision=rev, to_revision=to_rev))
    assert d["encoding"] == ENCODING_DELTA
    assert d["from_revision"] == rev and d["to_revision"] == to_rev
    xor = old ^ new
    assert d["changed_voxels"] == int(xor.sum())
    ref = _ref_bbox(xor)
    assert d["bbox"] == (None if ref is None else list(ref))
    out = apply_delta(old, d)
    np.testing.assert_array_equal(old, old_copy)  # not mutated
    assert out.dtype == np.bool_
    np.testing.assert_array_equal(out, new)
    # applying the same delta again undoes it (XOR)
    np.testing.assert_array_equal(apply_delta(out, d), old)


@settings(max_examples=200, deadline=None)
@given(mask_pairs(), st.data())
def test_delta_from_xor_matches_full(pair, data):
    old, new = pair
    shape = old.shape
    xor = old ^ new
    ref = _ref_bbox(xor)
    # any sub-box that contains all changed voxels
    if ref is None:
        lo = [data.draw(st.integers(0, s)) for s in shape]
        hi = [data.draw(st.integers(a, s)) for a, s in zip(lo, shape)]
    else:
        lo = [data.draw(st.integers(0, ref[a])) for a in range(3)]
        hi = [data.draw(st.integers(ref[a + 3], shape[a])) for a in range(3)]
    region = xor[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    d = encode_delta_from_xor(region, tuple(lo), shape, 1, 2)
    assert d == encode_delta(old, new, 1, 2)
    np.testing.assert_array_equal(apply_delta(old, d), new)


def test_identical_old_new():
    m = np.random.default_rng(0).random((3, 4, 5)) < 0.5
    d = encode_delta(m, m.copy(), 5, 6)
    assert d["bbox"] is None and d["changed_voxels"] == 0 and d["data"] == ""
    np.testing.assert_array_equal(apply_delta(m, d), m)


def test_empty_to_full():
    shape = (3, 4, 5)
    d = encode_delta(np.zeros(shape, bool), np.ones(shape, bool))
    assert d["bbox"] == [0, 0, 0, 3, 4, 5]
    assert d["changed_voxels"] == 60
    assert d["from_revision"] is None and d["to_revision"] is None
    assert apply_delta(np.zeros(shape, bool), d).all()


def test_decode_delta_region():
    old = np.zeros((2, 3, 4), bool)
    new = old.copy()
    new[1, 1:3, 2] = True
    shape, bbox, region = decode_delta_region(encode_delta(old, new))
    assert shape == (2, 3, 4) and bbox == (1, 1, 2, 2, 3, 3)
    assert region.shape == (1, 2, 1) and region.all()


# ---------------------------------------------------------------- validation


def _msg():
    m = np.zeros((1, 2, 2), bool)
    m[0, 0, 1] = True
    return encode_mask(m)


@pytest.mark.parametrize(
    "patch,match",
    [
        ({"encoding": "rle/2"}, "unknown encoding 'rle/2'"),
        ({"encoding": None}, "unknown encoding None"),
        ({"encoding": ENCODING_DELTA}, "expected encoding"),
        ({"shape": [1, 2]}, "shape"),
        ({"shape": [1, -2, 2]}, "shape"),
        ({"shape": [4096, 4096, 4096]}, "exceeds"),
        ({"bbox": [0, 0, 0, 1, 2, 3]}, "outside shape"),
        ({"bbox": [0, 1, 0, 1, 1, 2]}, "empty"),
        ({"bbox": [0, 0, 0]}, "bbox"),
        ({"bbox": None}, "must be empty"),
        ({"data": "@@@"}, "base64"),
        ({"data": 12}, "base64"),
        ({"data": base64.b64encode(b"\x00\x09").decode()}, "exceed|run longer"),
    ],
)
def test_decode_mask_rejects(patch, match):
    with pytest.raises(ValueError, match=match):
        decode_mask({**_msg(), **patch})


def test_apply_delta_rejects():
    old = np.zeros((1, 2, 2), bool)
    new = old.copy()
    new[0, 1, 1] = True
    d = encode_delta(old, new)
    with pytest.raises(ValueError, match="does not match"):
        apply_delta(np.zeros((1, 2, 3), bool), d)
    with pytest.raises(ValueError, match="expected encoding 'rle-xor/1'"):
        apply_delta(old, encode_mask(new))
    with pytest.raises(ValueError, match="unknown encoding 'rle-xor/9'"):
        apply_delta(old, {**d, "encoding": "rle-xor/9"})
    with pytest.raises(ValueError, match="changed_voxels"):
        apply_delta(old, {**d, "changed_voxels": 3})
    with pytest.raises(ValueError, match="does not fit"):
        encode_delta_from_xor(np.ones((1, 2, 2), bool), (0, 1, 0), (1, 2, 2))
    with pytest.raises(ValueError, match="old shape"):
        encode_delta(old, np.zeros((1, 2, 3), bool))


# ---------------------------------------------------------------- large volume


def _sphere(shape=(300, 512, 512), radius=120):
    Z, Y, X = shape
    z, y, x = np.ogrid[:Z, :Y, :X]
    return ((z - Z // 2) ** 2 + (y - Y // 2) ** 2 + (x - X // 2) ** 2) < radius**2


def test_large_sphere_roundtrip():
    mask = _sphere()
    t0 = time.perf_counter()
    msg = encode_mask(mask)
    t1 = time.perf_counter()
    out = decode_mask(msg)
    t2 = time.perf_counter()
    np.testing.assert_array_equal(out, mask)

    new = mask.copy()
    new[100:200, 200:300, 50:400] ^= True
    t3 = time.perf_counter()
    d = encode_delta(mask, new, 1, 2)
    t4 = time.perf_counter()
    applied = apply_delta(mask, d)
    t5 = time.perf_counter()
    np.testing.assert_array_equal(applied, new)
    print(
        f"\n300x512x512 sphere: rle/1 {len(msg['data'])} b64 chars, "
        f"encode {1e3 * (t1 - t0):.1f} ms, decode {1e3 * (t2 - t1):.1f} ms; "
        f"rle-xor/1 {len(d['data'])} chars, encode {1e3 * (t4 - t3):.1f} ms, "
        f"apply {1e3 * (t5 - t4):.1f} ms"
    )


def test_large_noise_roundtrip():
    # worst case for RLE: many short runs (~40M runs)
    rng = np.random.default_rng(42)
    mask = rng.random((300, 512, 512), dtype=np.float32) < 0.5
    mask[0, 0, 0] = mask[-1, -1, -1] = True  # full bbox
    t0 = time.perf_counter()
    msg = encode_mask(mask)
    t1 = time.perf_counter()
    out = decode_mask(msg)
    t2 = time.perf_counter()
    np.testing.assert_array_equal(out, mask)
    print(f"\n300x512x512 noise: encode {1e3 * (t1 - t0):.0f} ms, decode {1e3 * (t2 - t1):.0f} ms")
