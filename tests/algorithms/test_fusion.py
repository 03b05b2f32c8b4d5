"""Information fusion (eq. 3-7) and IF-GC (eq. 8-11) of MIDeepSeg's refinement."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from medseg.algorithms.encodings import intensity_geodesic
from medseg.algorithms.fusion import click_distances, fuse, if_gc, plain_gc


def test_fusion_weights_follow_eq_7_on_hand_made_inputs():
    prob = np.array([0.2, 0.9, 0.5, 0.7], dtype=np.float32)
    d_fg = np.array([0.0, 3.0, 1.0, 50.0])
    d_bg = np.array([4.0, 0.0, 1.0, 60.0])
    alpha = np.exp(-np.minimum(d_fg, d_bg))
    e_fg = np.exp(-d_fg) / (np.exp(-d_fg) + np.exp(-d_bg))
    expected = (1 - alpha) * prob + alpha * e_fg
    got = fuse(prob, d_fg, d_bg)
    assert np.allclose(got, expected, atol=1e-6)
    assert np.isclose(got[0], e_fg[0]) and e_fg[0] > 0.98  # on a fg click: alpha = 1, R = E^f
    assert np.isclose(got[1], e_fg[1]) and e_fg[1] < 0.05  # on a bg click: R = E^f ~ 0
    assert np.isclose(got[2], 0.5)  # equidistant: E^f = 0.5 whatever P says
    assert np.isclose(got[3], prob[3], atol=1e-6)  # far from every click: the CNN is kept
    # R^b = (1 - alpha) P^b + alpha E^b is 1 - R^f (eq. 4, 6)
    e_bg = np.exp(-d_bg) / (np.exp(-d_fg) + np.exp(-d_bg))
    assert np.allclose((1 - alpha) * (1 - prob) + alpha * e_bg, 1 - got, atol=1e-6)


def test_click_distances_use_the_egd_geodesic_and_a_constant_for_an_empty_side():
    image = np.random.default_rng(0).normal(size=(20, 30)).astype(np.float32)
    fg = np.zeros(image.shape, bool)
    fg[5, 5] = True
    d_fg, d_bg = click_distances(image, fg, np.zeros_like(fg), absent=7.0)
    assert np.array_equal(d_fg, intensity_geodesic(image, fg)) and d_fg[5, 5] == 0
    assert np.all(d_bg == 7.0)


def test_length_weight_adds_path_length_so_fusion_stays_local():
    image = np.zeros((1, 40), np.float32)
    image[0, 20:] = 3.0  # one edge of 3 z units
    fg = np.zeros(image.shape, bool)
    fg[0, 0] = True
    d_plain, _ = click_distances(image, fg, np.zeros_like(fg))
    d_local, _ = click_distances(image, fg, np.zeros_like(fg), length_weight=0.05)
    assert (
        d_plain[0, 19] < 1e-3 and abs(d_plain[0, 39] - 3.0) < 1e-3
    )  # eq. 2 alone: 0 until the edge
    assert np.allclose(d_local[0], d_plain[0] + 0.05 * np.arange(40), atol=1e-3)


def _clicks(shape, data):
    n = data.draw(st.integers(1, 6))
    coords = [tuple(data.draw(st.integers(0, s - 1)) for s in shape) for _ in range(n)]
    labels = [data.draw(st.booleans()) for _ in range(n)]
    fg, bg = np.zeros(shape, bool), np.zeros(shape, bool)
    for c, is_fg in zip(coords, labels):  # the newest label of a voxel wins, as in merge_marks
        fg[c], bg[c] = is_fg, not is_fg
    return fg, bg


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    dims=st.sampled_from([2, 3]),
    seed=st.integers(0, 2**31 - 1),
    lamb=st.sampled_from([0.0, 5.0, 50.0]),
)
def test_if_gc_and_plain_gc_keep_every_click_label(data, dims, seed, lamb):
    rng = np.random.default_rng(seed)
    shape = (12, 14) if dims == 2 else (5, 9, 10)
    prob = rng.random(shape).astype(np.float32)
    image = rng.normal(size=shape).astype(np.float32)
    norm = (image - image.min()) / np.ptp(image)
    fg, bg = _clicks(shape, data)
    spacing = [2.5, 0.7, 0.7][-dims:]
    mask, fused = if_gc(prob, image, norm, spacing, fg, bg, lamb=lamb)
    assert mask[fg].all() and not mask[bg].any()
    assert fused.shape == shape and 0 <= fused.min() and fused.max() <= 1
    plain = plain_gc(prob, norm, spacing, fg, bg, lamb=lamb)
    assert plain[fg].all() and not plain[bg].any()


def test_if_gc_extends_the_object_to_a_missed_region_that_plain_gc_keeps_out():
    """A two-part bright object; the CNN found only the left part. One fg click on the right
    part: IF raises the probability of the whole geodesically-near right part; plain GC can
    only add the clicked voxel."""
    image = np.zeros((40, 60), np.float32)
    image[10:30, 5:25] = 1
    image[10:30, 35:55] = 1
    image += np.random.default_rng(1).normal(0, 0.02, image.shape).astype(np.float32)
    z = (image - image.mean()) / image.std()
    prob = np.full(image.shape, 0.1, np.float32)
    prob[10:30, 5:25] = 0.9
    fg = np.zeros(image.shape, bool)
    fg[20, 45] = True
    truth = image > 0.5
    mask, _ = if_gc(prob, z, image, [1.0, 1.0], fg, np.zeros_like(fg), length_weight=0.01)
    plain = plain_gc(prob, image, [1.0, 1.0], fg, np.zeros_like(fg))
    dice = lambda a: 2 * (a & truth).sum() / (a.sum() + truth.sum())
    assert dice(mask) > 0.95 and dice(plain) < 0.7


def test_coarse_distances_approximate_the_fine_ones():
    rng = np.random.default_rng(3)
    image = np.zeros((60, 80), np.float32)
    image[15:45, 20:60] = 2.0
    # little noise: a fine scan sums noise steps that the 2x block mean averages away
    image += rng.normal(0, 0.01, image.shape).astype(np.float32)
    fg = np.zeros(image.shape, bool)
    fg[30, 40] = True
    bg = np.zeros(image.shape, bool)
    bg[5, 5] = True
    fine = click_distances(image, fg, bg, length_weight=0.1)
    coarse = click_distances(image, fg, bg, length_weight=0.1, coarse=True)
    for f, c in zip(fine, coarse):
        assert c.shape == f.shape and np.median(np.abs(c - f) / (1 + f)) < 0.1
    inside = image > 1
    assert (fuse(np.full(image.shape, 0.5), *coarse)[inside] > 0.5).mean() > 0.95
