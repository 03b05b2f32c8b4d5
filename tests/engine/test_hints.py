"""Hints (engine/hints.py, issue 14 item 5): a mask with a known error gets its top hint on
that error; a mask that agrees with the image gets none; 2D and 3D."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from medseg.engine.hints import MAX_HINTS, HintParams, find_hints


def _disc(shape, centre, radius):
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius ** 2


def _phantom(shape=(1, 96, 96)):
    """A bright noisy disc (the object) on a dark noisy background, and its mask."""
    rng = np.random.default_rng(0)
    obj = _disc(shape[1:], (48, 48), 28)[None] if shape[0] == 1 else _disc(
        shape, tuple(n // 2 for n in shape), 14)
    image = np.where(obj, 200.0, 20.0) + rng.normal(0, 8, shape)
    return image.astype(np.float32), obj


def _organ_slice(totalseg, organ: str):
    labels = json.loads((totalseg / "labels.json").read_text())["ct_3mm_seg.nii.gz"]
    label = int(next(k for k, v in labels.items() if v == organ))
    image = np.asarray(nib.load(totalseg / "ct_3mm.nii.gz").dataobj, np.float32).transpose(2, 1, 0)
    seg = np.asarray(nib.load(totalseg / "ct_3mm_seg.nii.gz").dataobj).transpose(2, 1, 0) == label
    z = int(np.argmax(seg.sum(axis=(1, 2))))
    labelled, _ = ndimage.label(seg[z])
    largest = labelled == np.argmax(np.bincount(labelled.ravel())[1:]) + 1
    return image[z][None], largest[None], (3.0, 3.0, 3.0)


def test_correct_mask_gets_no_hint():
    image, obj = _phantom()
    result = find_hints(image, obj, (1.0, 1.0, 1.0), 3)
    assert result.hints == []


def test_cut_out_gets_the_top_hint_synthetic():
    image, obj = _phantom()
    cut = _disc(obj.shape[1:], (48, 22), 10)[None] & obj
    result = find_hints(image, obj & ~cut, (1.0, 1.0, 1.0), 3)
    top = result.hints[0]
    assert top.kind == "missing" and top.rank == 1
    assert cut[top.centre]
    box = tuple(slice(lo, hi + 1) for lo, hi in zip(top.lo, top.hi))
    assert cut[box].sum() >= 0.8 * cut.sum()  # the box holds the cut-out
    assert 0.5 * cut.sum() <= top.voxels <= 2.0 * cut.sum()  # the size is about right
    assert top.ml == pytest.approx(top.voxels / 1000.0)


def test_false_blob_is_an_extra_hint():
    image, obj = _phantom()
    blob = _disc(obj.shape[1:], (10, 85), 6)[None]
    result = find_hints(image, obj | blob, (1.0, 1.0, 1.0), 3)
    top = result.hints[0]
    assert top.kind == "extra" and blob[top.centre]


def test_cut_out_on_a_real_organ(totalseg):
    """ct_3mm spleen's largest slice with a disc bitten out of its edge: hint 1 lies on it."""
    image, organ, spacing = _organ_slice(totalseg, "spleen")
    edge = np.argwhere(organ[0] & ~ndimage.binary_erosion(organ[0]))
    centre = edge[len(edge) // 2]
    cut = _disc(organ.shape[1:], centre, 4)[None] & organ
    assert cut.sum() >= 20
    result = find_hints(image, organ & ~cut, spacing, 3)
    assert result.hints, "no hint for a bitten-out spleen"
    top = result.hints[0]
    region = np.zeros(organ.shape, bool)
    box = tuple(slice(lo, hi + 1) for lo, hi in zip(top.lo, top.hi))
    region[box] = True
    assert top.kind == "missing"
    assert (region & cut).sum() >= 0.5 * cut.sum()


def test_3d_cut_out():
    image, obj = _phantom((32, 40, 40))
    cut = _disc(obj.shape, (16, 20, 6), 7) & obj
    result = find_hints(image, obj & ~cut, (1.0, 1.0, 1.0), 3)
    top = result.hints[0]
    assert top.kind == "missing" and cut[top.centre]
    assert top.ml == pytest.approx(top.voxels / 1000.0)


def test_k_limits_and_ranking():
    image, obj = _phantom()
    cut = _disc(obj.shape[1:], (48, 22), 10)[None] & obj
    blob = _disc(obj.shape[1:], (10, 85), 6)[None]
    params = HintParams(relative_score=0.0)
    result = find_hints(image, (obj & ~cut) | blob, (1.0, 1.0, 1.0), 2, params)
    assert 1 <= len(result.hints) <= 2
    scores = [h.score for h in result.hints]
    assert scores == sorted(scores, reverse=True)
    assert [h.rank for h in result.hints] == list(range(1, len(scores) + 1))
    with pytest.raises(ValueError, match="k must lie"):
        find_hints(image, obj, (1.0, 1.0, 1.0), MAX_HINTS + 1)


def test_empty_mask_has_no_hints():
    image, obj = _phantom()
    assert find_hints(image, np.zeros_like(obj), (1.0, 1.0, 1.0), 3).hints == []


def test_enclosed_hole_is_a_missing_hint():
    image, obj = _phantom()
    hole = _disc(obj.shape[1:], (48, 48), 4)[None]
    top = find_hints(image, obj & ~hole, (1.0, 1.0, 1.0), 3).hints[0]
    assert top.kind == "missing" and hole[top.centre] and top.voxels == int(hole.sum())
