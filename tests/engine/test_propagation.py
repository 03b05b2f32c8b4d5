"""Slice-by-slice propagation on real organs (ct_3mm), model-free predictor, no server."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from medseg import builtin
from medseg.algorithms.metrics import dice
from medseg.engine.prompts import Box
from medseg.engine.propagation import (
    PropagationParams,
    bounds,
    propagate,
    split_params,
)
from medseg.errors import InvalidPrompt, UnknownName

PREDICTORS = builtin.build().predictors


@pytest.fixture(scope="module")
def ct(totalseg):
    image = nib.load(totalseg / "ct_3mm.nii.gz")
    seg = nib.load(totalseg / "ct_3mm_seg.nii.gz")
    labels = json.loads((totalseg / "labels.json").read_text())["ct_3mm_seg.nii.gz"]
    ids = {v: int(k) for k, v in labels.items()}
    return (np.asarray(image.dataobj, np.float32).transpose(2, 1, 0),
            np.asarray(seg.dataobj).transpose(2, 1, 0), (3.0, 3.0, 3.0), ids)


def run(image, spacing, mask, start, locked=(), axis=0, **overrides):
    """Propagate `mask`'s slice `start` into a copy of `mask`; returns (mask, results)."""
    spec = PREDICTORS.get("graphcut-seeds")
    params, own = split_params(spec, overrides)
    take = lambda a, i: np.take(a, i, axis=axis)
    sp2 = tuple(s for i, s in enumerate(spacing) if i != axis)
    predictor = spec.build(own, take(image, start), take(mask, start), sp2)

    def read_image(box: Box):
        return image[tuple(slice(lo, hi + 1) for lo, hi in zip(box.lo, box.hi))]

    out = mask.copy()
    results = list(propagate(read_image, image.shape, spacing, axis, start, take(mask, start),
                             predictor, params, locked))
    for r in results:
        index = [slice(None)] * 3
        index[axis] = r.index
        out[tuple(index)] = r.mask
    return out, results


def test_stops_where_the_organ_ends(ct):
    image, labels, spacing, ids = ct
    kidney = labels == ids["kidney_left"]
    zs = np.nonzero(kidney.any(axis=(1, 2)))[0]  # 0..22 of 30 slices
    assert zs.max() < image.shape[0] - 5
    start = int((zs.min() + zs.max()) // 2)
    seed = np.zeros_like(kidney)
    seed[start] = kidney[start]
    out, results = run(image, spacing, seed, start)
    predicted = np.nonzero(out.any(axis=(1, 2)))[0]
    assert abs(int(predicted.max()) - int(zs.max())) <= 1  # ended with the organ
    ends = [r for r in results if r.end == "vanished"]
    assert len(ends) == 1 and ends[0].direction == 1 and not ends[0].mask.any()
    assert all(not r.mask.any() for r in results if r.cleared)
    assert dice(out, kidney) > 0.85
    assert next(r.index for r in results if r.direction == 1) == start + 1  # slice after slice


def test_never_changes_a_locked_slice_and_stops_there(ct):
    image, labels, spacing, ids = ct
    liver = labels == ids["liver"]
    start, locked = 14, {9, 20}
    seed = np.zeros_like(liver)
    seed[start], seed[9] = liver[start], liver[12]  # a locked slice with some other content
    out, results = run(image, spacing, seed, start, locked)
    assert sorted(r.index for r in results) == list(range(10, 14)) + list(range(15, 20))
    assert np.array_equal(out[9], seed[9]) and not out[20].any()
    assert out[21:].sum() == 0 and out[:9].sum() == 0


def test_repropagation_after_a_correction_changes_only_between_locked_slices(ct):
    image, labels, spacing, ids = ct
    spleen = labels == ids["spleen"]
    seed = np.zeros_like(spleen)
    seed[14] = spleen[14]
    first, _ = run(image, spacing, seed, 14)
    # correct slice 20 with the reference and re-propagate from it; 14 and 26 are locked
    corrected = first.copy()
    corrected[20] = spleen[20]
    second, results = run(image, spacing, corrected, 20, locked={14, 20, 26})
    changed = np.nonzero((second != first).any(axis=(1, 2)))[0]
    assert set(changed) <= set(range(15, 26)) and 20 in changed
    assert {r.index for r in results} == set(range(15, 20)) | set(range(21, 26))
    assert np.array_equal(second[20], spleen[20]) and dice(second, spleen) > 0.85


def test_other_axes_and_bad_input(ct):
    image, labels, spacing, ids = ct
    kidney = labels == ids["kidney_left"]
    xs = np.nonzero(kidney.any(axis=(0, 1)))[0]
    start = int((xs.min() + xs.max()) // 2)
    seed = np.zeros_like(kidney)
    seed[:, :, start] = kidney[:, :, start]
    out, results = run(image, spacing, seed, start, axis=2, max_slices=3)
    assert sorted(r.index for r in results) == [start - 3, start - 2, start - 1,
                                                start + 1, start + 2, start + 3]
    assert out[:, :, start + 4:].sum() == 0
    assert dice(out[:, :, start - 3:start + 4], kidney[:, :, start - 3:start + 4]) > 0.7
    with pytest.raises(InvalidPrompt, match="empty"):
        run(image, spacing, np.zeros_like(kidney), 3)
    with pytest.raises(InvalidPrompt, match="unknown parameter"):
        split_params(PREDICTORS.get("graphcut-seeds"), {"nope": 1})
    with pytest.raises(UnknownName, match="unknown propagation method 'nope'; available"):
        PREDICTORS.get("nope")
    assert bounds(30, 14, 1, {20}, 0) == 5 and bounds(30, 14, -1, (), 3) == 3
    with pytest.raises(ValueError):
        PropagationParams(min_area_ratio=2)


def test_flags_point_at_suspicious_slices(ct):
    image, labels, spacing, ids = ct
    liver = labels == ids["liver"]
    seed = np.zeros_like(liver)
    seed[14] = liver[14]
    _, results = run(image, spacing, seed, 14, flag_area_change=0.0, flag_confidence=1.01)
    assert all("area_jump" in r.flags and "low_confidence" in r.flags
               for r in results if not r.cleared and r.end is None)
    _, quiet = run(image, spacing, seed, 14, flag_area_change=100.0, flag_confidence=0.0,
                   flag_centroid_mm=1000.0)
    assert all(not r.flags for r in quiet)
    assert all(0.0 <= r.confidence <= 1.0 for r in results)


def test_an_unknown_parameter_lists_every_name_the_propagation_takes():
    """The generic names (max_slices, ...) with the predictor's own; a predictor without own
    parameters listed none at all ("known: ")."""
    for name in PREDICTORS.names():
        spec = PREDICTORS.get(name)
        with pytest.raises(InvalidPrompt) as caught:
            split_params(spec, {"bogus": 3})
        known = caught.value.message.split("known: ")[1].split(", ")
        assert {"max_slices", "min_area_mm2", "clear_beyond_end"} <= set(known), name
        assert set(spec.defaults()) <= set(known), name
