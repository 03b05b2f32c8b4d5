"""The hot helpers of a refinement click, made faster (issue 13 item 3), give what the plain
versions gave: checked against brute-force references on random masks, and (branch
click2dfast) against the straightforward versions of tests/reference_click2d.py on random and
real inputs, down to whole 2D click sequences."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medseg.algorithms.indices import argwhere, nonzero
from medseg.algorithms.normalize import _integer_percentiles, normalize_percentiles
from medseg.algorithms.resample import block_any, block_mean, upsample_linear2
from medseg.engine.refinement import _touching, depth_mm, heard_box, smoothed_in, unlike_part
from tests import reference_click2d as reference


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


# -- issue 13 item 3, branch click2dfast: a 2D click's helpers without whole-ROI passes ------

def test_argwhere_and_nonzero_from_flat_indices_are_numpys():
    rng = np.random.default_rng(12)
    for trial in range(200):
        shape = tuple(int(n) for n in rng.integers(0, 9, size=int(rng.integers(1, 4))))
        a = rng.random(shape) < rng.choice([0.0, 0.01, 0.3, 1.0])
        if trial % 3 == 0 and a.ndim > 1:
            a = a[..., ::2]  # a strided view, as a crop of a bigger array is
        if trial % 7 == 0:
            a = a.astype(np.int16) * 3  # nonzero values, not only True
        got, want = argwhere(a), np.argwhere(a)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want), trial
        for g, w in zip(nonzero(a), np.nonzero(a), strict=True):
            assert g.dtype == w.dtype and np.array_equal(g, w), trial


def _object_with_unlike_inclusions(rng, shape):
    """(norm, head, new_bg): an object of one tissue with inclusions of another inside it
    (the head holds both, plus a leak of noise), background marks on inclusions or on the
    object itself, anywhere up to the array's edges."""
    norm = rng.normal(0.3, 0.05, shape).astype(np.float32)
    blobs = ndimage.gaussian_filter(rng.normal(size=shape), rng.uniform(1, 4))
    obj = blobs > rng.uniform(-0.3, 0.2)
    inclusion = obj & (ndimage.gaussian_filter(rng.normal(size=shape), 1.5) > 0.25)
    norm[obj] += 0.3
    norm[inclusion] -= rng.choice([0.45, 0.25, 0.05])  # unlike, half-like, like the object
    head = obj | (rng.random(shape) < 0.02)
    pool = inclusion if inclusion.any() and rng.random() < 0.7 else head
    new_bg = pool & (rng.random(shape) < rng.choice([0.002, 0.02, 0.2]))
    return norm, head, new_bg


def test_smoothing_a_box_is_the_whole_array_s_smoothing_bit_for_bit():
    """smoothed_in: the Gaussian of the box grown by the filter's reach, cut to the box, equals
    the whole array's Gaussian there to the last bit (boxes inside, at the edges, tiny,
    whole; widths from a fraction of a voxel to wider than the array)."""
    rng = np.random.default_rng(16)
    for trial in range(300):
        ndim = 2 + trial % 2
        shape = tuple(int(n) for n in rng.integers(1, 60 if ndim == 2 else 20, size=ndim))
        image = rng.normal(size=shape).astype(np.float32 if trial % 3 else np.float64)
        widths = [float(w) for w in rng.choice([0.3, 0.9, 1.875, 2.5, 7.0, 40.0], size=ndim)]
        lo = [int(rng.integers(0, n)) for n in shape]
        box = tuple(slice(a, int(rng.integers(a + 1, n + 1))) for a, n in zip(lo, shape))
        got = smoothed_in(image, box, widths)
        want = ndimage.gaussian_filter(image, widths)[box]
        assert got.dtype == want.dtype and np.array_equal(got, want), (trial, shape, box)


def test_unlike_part_on_the_head_box_is_the_whole_array_version():
    """unlike_part smooths and labels only the bounding box of head and marks (grown by the
    Gaussian's reach): the same part, bit for bit, as on the whole array; smoothing widths
    from none to wider than the array, objects up to the array's edges."""
    rng = np.random.default_rng(13)
    found = 0
    for trial in range(300):
        ndim = 2 if trial % 4 else 3
        shape = tuple(int(n) for n in rng.integers(4, 70 if ndim == 2 else 24, size=ndim))
        norm, head, new_bg = _object_with_unlike_inclusions(rng, shape)
        if trial % 5 == 0:  # a small object far from the edges: a box much smaller than norm
            small = np.zeros(shape, dtype=bool)
            small[tuple(slice(n // 3, n // 3 + max(n // 4, 1)) for n in shape)] = True
            head &= small
            new_bg &= small
        if trial % 6 == 1:  # a mark off the head too (the engine's are on it, the helper's
            new_bg[tuple(int(rng.integers(0, n)) for n in shape)] = True  # need not be)
        spacing = tuple(float(s) for s in rng.uniform(0.4, 3.5, size=ndim))
        smooth_mm = float(rng.choice([0.0, 0.5, 1.5, 4.0, 60.0]))
        spread = float(rng.choice([0.0, 1.0, 3.0]))
        got = unlike_part(norm, head, new_bg, spacing, smooth_mm, spread)
        want = reference.unlike_part(norm, head, new_bg, spacing, smooth_mm, spread)
        assert (got is None) == (want is None), trial
        if want is not None:
            assert got.shape == want.shape and np.array_equal(got, want), trial
            found += 1
    assert found > 80  # about a third of the trials had an unlike part to compare


def test_unlike_part_on_real_slices_is_the_whole_array_version(totalseg):
    """On the shared CT's slices: a leaked liver (the head grown into its neighbours) with
    background marks on the leak, and on the liver itself."""
    import nibabel as nib

    image = nib.load(totalseg / "ct_3mm.nii.gz")
    volume = np.asarray(image.dataobj).transpose(2, 1, 0)
    labels = np.asarray(nib.load(totalseg / "ct_3mm_seg.nii.gz").dataobj).transpose(2, 1, 0)
    spacing = tuple(float(s) for s in image.header.get_zooms()[::-1][1:])
    rng = np.random.default_rng(14)
    found = 0
    for z in range(6, volume.shape[0], 3):
        liver = labels[z] == 5
        if liver.sum() < 50:
            continue
        norm = normalize_percentiles(volume[z])
        for grow in (2, 5, 9):
            head = ndimage.binary_dilation(liver, iterations=grow)
            for pool in (head & ~liver, liver):
                new_bg = pool & (rng.random(pool.shape) < 0.01)
                got = unlike_part(norm, head, new_bg, spacing, 1.5, 1.0)
                want = reference.unlike_part(norm, head, new_bg, spacing, 1.5, 1.0)
                assert (got is None) == (want is None), (z, grow)
                if want is not None:
                    assert np.array_equal(got, want), (z, grow)
                    found += 1
    assert found > 10


def test_normalize_in_place_is_the_version_with_temporaries(totalseg):
    """Integers are normalised in place on their float32 copy: the same float32 values as
    (data - lo) / (hi - lo) clipped, C-contiguous, and the caller's image left as it was."""
    import nibabel as nib

    rng = np.random.default_rng(15)
    images = [np.asarray(nib.load(totalseg / "ct_3mm.nii.gz").dataobj)[:, :, k] for k in (5, 15)]
    for trial in range(300):
        dtype = [np.int16, np.uint16, np.uint8, np.int8, np.int32, np.int64, np.bool_,
                 np.float32, np.float64][trial % 9]
        shape = tuple(int(n) for n in rng.integers(1, 40, size=int(rng.integers(1, 4))))
        if dtype is np.bool_:
            values = rng.random(shape) < 0.5
        elif np.dtype(dtype).kind == "f":
            values = rng.normal(0, 300, shape).astype(dtype)
        else:
            info = np.iinfo(dtype)
            lo = int(rng.integers(max(info.min, -2**40), min(info.max, 2**40)))
            hi = int(rng.integers(lo, min(info.max, 2**40) + 1))
            values = rng.integers(lo, hi + 1, size=shape).astype(dtype)
        if trial % 10 == 0:
            values = values.T  # not C-contiguous
        images.append(values)
    for values in images:
        kept = values.copy()
        got = normalize_percentiles(values)
        want = reference.normalize_percentiles(values)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        assert np.array_equal(got, want), values.dtype
        assert np.array_equal(values, kept)


def _two_d_sequences(totalseg):
    """(name, int16 slice as (1, Y, X), reference mask, spacing, start box or None) on the
    shared CT: organs' largest slices."""
    import nibabel as nib

    image = nib.load(totalseg / "ct_3mm.nii.gz")
    volume = np.asarray(image.dataobj).transpose(2, 1, 0)
    labels = np.asarray(nib.load(totalseg / "ct_3mm_seg.nii.gz").dataobj).transpose(2, 1, 0)
    spacing = tuple(float(s) for s in image.header.get_zooms()[::-1])
    for organ, label, box in (("liver", 5, False), ("spleen", 1, False),
                              ("kidney_left", 3, True), ("stomach", 6, False),
                              ("pancreas", 7, True)):
        z = int(np.argmax((labels == label).sum(axis=(1, 2))))
        yield (organ, volume[z:z + 1], labels[z:z + 1] == label, spacing, box)


def _sequence(image, truth, spacing, box_start, clicks, reference_path):
    """Robot clicks on one slice; each click run by the trimmed engine and, within
    `reference_path`, by the reference one, from the same head and marks. Returns the pairs
    of results, click by click (the sequence follows the trimmed one's masks)."""
    from medseg.engine.graphcut_method import GraphCutParams, segment
    from medseg.engine.method import SegmentContext
    from medseg.engine.prompts import Box, Marks, Plane
    from tests.robot import robot_click

    plane = Plane(0, 0)
    mask = np.zeros(truth.shape, dtype=bool)
    fg: list[list[int]] = []
    bg: list[list[int]] = []
    boxes: list[Box] = []
    stored = None
    if box_start:
        nz = np.nonzero(truth)
        boxes = [Box((0, int(nz[1].min()) - 2, int(nz[2].min()) - 2),
                     (0, int(nz[1].max()) + 2, int(nz[2].max()) + 2))]
    pairs = []
    for step in range(clicks):
        kind = "box" if boxes and step == 0 else "click"
        if kind == "click":
            point, foreground = robot_click(mask, truth)
            (fg if foreground else bg).append(list(point))
        marks = Marks(np.array(fg, dtype=np.int64).reshape(-1, 3),
                      np.array(bg, dtype=np.int64).reshape(-1, 3), list(boxes))
        nz = np.nonzero(mask)
        bbox = Box(tuple(int(a.min()) for a in nz), tuple(int(a.max()) for a in nz)) \
            if mask.any() else None
        context = SegmentContext(kind=kind, head_probability=lambda kept=stored: kept)

        def run(head=mask, marks=marks, bbox=bbox, context=context):
            def read(box, source):
                return source[tuple(slice(lo, hi + 1) for lo, hi in zip(box.lo, box.hi))].copy()
            return segment(lambda b: read(b, image), lambda b: read(b, head), image.shape,
                           spacing, marks, plane, GraphCutParams(), bbox, context)

        new = run()
        with reference_path():
            old = run()
        pairs.append((new, old))
        # the service stores the probability as float16
        stored = (new.roi, np.asarray(new.probability, np.float16).astype(np.float32))
        mask = mask.copy()
        mask[tuple(slice(lo, hi + 1) for lo, hi in zip(new.roi.lo, new.roi.hi))] = new.mask
        if np.array_equal(mask, truth):
            break
    return pairs


def test_a_sequence_of_2d_clicks_gives_the_reference_path_s_masks(totalseg, monkeypatch):
    """End to end: robot clicks (first clicks, 2D box starts, foreground and background
    refinement clicks) on five organs' slices of the shared int16 CT, each click run by the
    engine as it is and by the reference path (the straightforward helpers put back,
    tests/reference_click2d.py): the same ROI, mask and probability, bit for bit."""
    unlike = refined = 0
    for organ, image, truth, spacing, box in _two_d_sequences(totalseg):
        for step, (new, old) in enumerate(_sequence(image, truth, spacing, box, 8,
                                                    lambda: reference.reference_path(
                                                        monkeypatch))):
            assert new.roi == old.roi, (organ, step)
            assert np.array_equal(new.mask, old.mask), (organ, step)
            assert np.array_equal(new.probability, old.probability), (organ, step)
            assert new.info == old.info, (organ, step)
            refined += bool(new.info.get("refined"))
            unlike += "unlike_mm" in new.info
    assert refined >= 20 and unlike >= 3  # refinements, some of them on an unlike part


def test_the_latency_benchmark_s_2d_clicks_give_the_reference_path_s_masks(monkeypatch):
    """The benchmark's own two clicks (medseg_bench.click2d: the first click on a 512x512
    slice and the background refinement click), trimmed and reference: the same results."""
    from medseg_bench.click2d import clicks

    cases = clicks()
    for name, call in cases.items():
        new = call()
        with reference.reference_path(monkeypatch):
            old = call()
        assert new.roi == old.roi and np.array_equal(new.mask, old.mask), name
        assert np.array_equal(new.probability, old.probability), name
        assert new.info == old.info, name
    assert "unlike_mm" in new.info  # the refinement click measured its unlike part
