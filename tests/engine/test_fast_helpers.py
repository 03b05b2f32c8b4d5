"""The hot helpers of a refinement click, made faster (issue 13 item 3), give what the plain
versions gave: checked against brute-force references on random masks."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medseg.algorithms.normalize import _integer_percentiles, normalize_percentiles
from medseg.algorithms.resample import block_any, block_mean, upsample_linear2
from medseg.engine.refinement import _touching, depth_mm, heard_box


def _depth_reference(new_fg, new_bg, head, spacing):
    """The whole-array version: distance to every boundary voxel of the asked-for label."""
    sp = np.asarray(spacing, dtype=float)
    best = None
    for marks, target in ((new_fg, head), (new_bg, ~head)):
        points = np.argwhere(marks)
        if len(points) == 0 or not target.any():
            continue
        edge = np.argwhere(target & ~ndimage.binary_erosion(target, border_value=0))
        for p in points:
            d = float(np.sqrt((((edge - p) * sp) ** 2).sum(axis=1)).min())
            best = d if best is None else max(best, d)
    return best


def test_depth_equals_the_whole_array_boundary_scan():
    rng = np.random.default_rng(3)
    checked = 0
    for trial in range(60):
        shape = tuple(int(n) for n in rng.integers(1, 40, size=3))
        # blobs of several sizes, so marks sit from 1 voxel to most of the array deep
        noise = ndimage.gaussian_filter(rng.normal(size=shape), rng.uniform(0.5, 4))
        head = noise > rng.uniform(-0.05, 0.1)
        if trial % 10 == 0:
            head[:] = trial % 20 == 0  # all or nothing: one kind of mark has no target
        spacing = tuple(float(s) for s in rng.uniform(0.4, 5.0, size=3))
        new_fg = (rng.uniform(size=shape) < 0.01) & ~head
        new_bg = (rng.uniform(size=shape) < 0.01) & head
        got = depth_mm(new_fg, new_bg, head, spacing, limit=10_000)
        want = _depth_reference(new_fg, new_bg, head, spacing)
        assert got == want, (trial, got, want)
        checked += want is not None
    assert checked > 40  # most trials had marks with something to measure


def test_heard_box_is_the_bounding_box_grown_by_the_margin():
    rng = np.random.default_rng(4)
    for _ in range(30):
        shape = tuple(int(n) for n in rng.integers(1, 30, size=3))
        heard = rng.uniform(size=shape) < rng.choice([0.0, 0.001, 0.05])
        margin = int(rng.integers(0, 4))
        box = heard_box(heard, margin)
        nz = np.argwhere(heard)
        if len(nz) == 0:
            assert box is None
            continue
        lo = np.maximum(nz.min(axis=0) - margin - 1, 0)
        hi = np.minimum(nz.max(axis=0) + margin + 2, shape)
        assert box == tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def test_block_any_is_block_mean_above_zero():
    rng = np.random.default_rng(5)
    for _ in range(20):
        shape = tuple(int(n) for n in rng.integers(1, 12, size=int(rng.integers(2, 4))))
        a = rng.uniform(size=shape) < rng.choice([0.01, 0.2, 0.7])
        assert np.array_equal(block_any(a, 2), block_mean(a, 2) > 0)


def test_integer_percentiles_are_numpys_bit_for_bit():
    """normalize_percentiles takes a stored image's integers through a histogram: the same
    percentiles as np.percentile of their float32 copy, to the last bit."""
    rng = np.random.default_rng(6)
    for trial in range(400):
        dtype = [np.int16, np.uint16, np.uint8, np.int8][trial % 4]
        info = np.iinfo(dtype)
        lo = int(rng.integers(info.min, info.max))
        values = rng.integers(lo, int(rng.integers(lo, info.max)) + 1,
                              size=int(rng.integers(1, 2000))).astype(dtype)
        q = [1.0, 99.0] if trial % 2 else [float(v) for v in rng.uniform(0, 100, 2)]
        want = np.percentile(values.astype(np.float32), q)
        got = _integer_percentiles(values, q)
        assert got.dtype == want.dtype and np.array_equal(got, want), (dtype, q)
        image = values.reshape(1, 1, -1)
        assert np.array_equal(normalize_percentiles(image),
                              normalize_percentiles(image.astype(np.float32)))


def _upsample_reference(a, shape):
    """The earlier upsample_linear2: shifted copies by np.take, halves stacked."""
    out = np.asarray(a, dtype=np.float32)
    for axis in (-2, -1):
        n = out.shape[axis]
        prev = np.concatenate([np.take(out, [0], axis=axis), np.take(out, range(n - 1), axis=axis)],
                              axis=axis)
        nxt = np.concatenate([np.take(out, range(1, n), axis=axis), np.take(out, [-1], axis=axis)],
                             axis=axis)
        even, odd = 0.75 * out + 0.25 * prev, 0.75 * out + 0.25 * nxt
        k = axis % out.ndim
        out = np.stack([even, odd], axis=axis).reshape(*out.shape[:k], -1, *out.shape[k + 1:])
    return np.ascontiguousarray(out[tuple(slice(0, n) for n in shape)])


def test_upsample_linear2_is_the_stacked_version_bit_for_bit():
    rng = np.random.default_rng(7)
    for trial in range(100):
        coarse = tuple(int(n) for n in rng.integers(1, 9, size=2 + trial % 2))
        a = rng.normal(size=coarse).astype(np.float32)
        shape = coarse[:-2] + tuple(2 * c - int(rng.integers(0, 2)) for c in coarse[-2:])
        got = upsample_linear2(a, shape)
        assert got.shape == shape and got.flags.c_contiguous
        assert np.array_equal(got, _upsample_reference(a, shape))


def _touching_reference(change, marks, margin):
    """`_touching` on the whole array (before it worked on the change's bounding box)."""
    if not (change & marks).any():
        return np.zeros(change.shape, dtype=bool)
    structure = ndimage.generate_binary_structure(change.ndim, change.ndim)
    labels, _ = ndimage.label(change, structure)
    hit = np.unique(labels[marks & change])
    region = np.isin(labels, hit[hit > 0])
    if margin > 0:
        near = ndimage.binary_dilation(region, structure, iterations=margin) & change
        hit = np.unique(labels[near])
        region = np.isin(labels, hit[hit > 0])
    return region


def test_touching_in_the_change_box_is_the_whole_array_version():
    """local_merge's components: labelled inside the change's bounding box only, the same
    region as over the whole window (sparse and dense changes, marks on and off them, up to
    margin 3, 2D and 3D)."""
    rng = np.random.default_rng(11)
    for trial in range(200):
        shape = tuple(int(n) for n in rng.integers(3, 24, size=2 + trial % 2))
        change = ndimage.binary_opening(rng.random(shape) < rng.uniform(0.05, 0.6)) \
            if trial % 3 else rng.random(shape) < 0.1
        box = tuple(slice(int(a), int(a) + int(rng.integers(1, 6))) for a in
                    (rng.integers(0, n) for n in shape))
        change[tuple(slice(None, s.start) for s in box)] = False  # off-centre changes too
        marks = rng.random(shape) < 0.02
        margin = int(trial % 4)
        assert np.array_equal(_touching(change, marks, margin),
                              _touching_reference(change, marks, margin)), trial
