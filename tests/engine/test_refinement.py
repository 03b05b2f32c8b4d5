"""The pieces of the refinement contract (engine/refinement.py) and the ROI growth of the
model-free method: exact, small cases that pin each rule."""

from __future__ import annotations

import numpy as np

from medseg.algorithms.metrics import dice
from medseg.engine.graphcut_method import METHOD as GRAPHCUT
from medseg.engine.method import SegmentContext
from medseg.engine.prompts import Box, Marks, Plane
from medseg.engine.refinement import (
    contradicted,
    depth_mm,
    grow,
    local_merge,
    mask_prior,
    object_scale_mm,
    open_faces,
    stored_in,
    within_reach,
)


def test_local_merge_keeps_only_the_clicked_components_and_their_sign():
    head = np.zeros((1, 12, 30), dtype=bool)
    head[0, 2:10, 2:8] = True  # a correct object far away
    head[0, 2:10, 14:20] = True  # the object the user works on
    new = np.zeros_like(head)
    new[0, 3:9, 3:7] = True  # the cut shrank the far object (must not happen) ...
    new[0, 2:10, 14:24] = True  # ... and grew the clicked one (x 20..23)
    new[0, 0, 28] = True  # an island nobody clicked
    fg = np.zeros_like(head)
    fg[0, 5, 22] = True
    new_fg, new_bg = contradicted(fg, np.zeros_like(head), head)
    assert new_fg.sum() == 1 and not new_bg.any()
    merged, region = local_merge(head, new, new_fg, new_bg, margin=0)
    grown = new & ~head & (np.arange(30) >= 20) & (np.arange(30) < 24)
    assert np.array_equal(merged, head | grown)  # no shrinking, no island
    assert np.array_equal(region, merged & ~head)
    # a background click removes only its own component of the removals
    bg = np.zeros_like(head)
    bg[0, 5, 16] = True
    _, new_bg = contradicted(np.zeros_like(head), bg, head)
    cut = head.copy()
    cut[0, 2:10, 14:17] = False  # the cut removed the clicked part ...
    cut[0, 2:4, 2:8] = False  # ... and part of the far object
    merged, region = local_merge(head, cut, np.zeros_like(head), new_bg, margin=0)
    assert np.array_equal(merged[0, :, :10], head[0, :, :10])  # far object bit for bit
    assert not merged[0, 2:10, 14:17].any() and merged[0, 2:10, 17:20].all()
    # a mark the head already agrees with asks for nothing: no change at all
    agree_fg, agree_bg = contradicted(head & (np.arange(30) == 5), ~head & (np.arange(30) == 25),
                                      head)
    assert not agree_fg.any() and not agree_bg.any()
    assert np.array_equal(local_merge(head, new, agree_fg, agree_bg)[0], head)


def test_local_merge_margin_takes_a_fragment_one_voxel_away():
    head = np.zeros((1, 5, 20), dtype=bool)
    new = np.zeros_like(head)
    new[0, 2, 2:8] = True
    new[0, 2, 9:12] = True  # split off by one voxel
    fg = np.zeros_like(head)
    fg[0, 2, 3] = True
    assert local_merge(head, new, fg, np.zeros_like(head), margin=0)[0].sum() == 6
    assert local_merge(head, new, fg, np.zeros_like(head), margin=2)[0].sum() == 9


def test_mask_prior_never_contradicts_the_head_and_keeps_confidence():
    head = np.array([True, True, False, False, True, False])
    prob = np.array([0.99, 0.2, 0.01, 0.7, 0.5, 0.5], dtype=np.float32)
    known = np.array([True, True, True, True, False, False])
    p0 = mask_prior(head, prob, known, margin=0.3, margin_bg=0.1)
    np.testing.assert_allclose(p0, [0.99, 0.8, 0.01, 0.4, 0.9, 0.1], rtol=1e-6)


def test_stored_in_pastes_only_the_overlap():
    stored = (Box((0, 2, 2), (0, 5, 5)), np.full((1, 4, 4), 0.7, dtype=np.float32))
    values, known = stored_in(Box((0, 4, 0), (0, 9, 3)), stored)
    assert known.sum() == 2 * 2 and np.all(values[known] == np.float32(0.7))
    assert known[0, 0, 2] and known[0, 1, 3] and not known[0, 2, 2]
    assert not stored_in(Box((0, 0, 0), (0, 9, 9)), None)[1].any()


def test_depth_is_the_distance_to_the_label_the_mark_asks_for():
    head = np.zeros((1, 20, 20), dtype=bool)
    head[0, :, :5] = True
    fg = np.zeros_like(head)
    fg[0, 10, 12] = True
    assert depth_mm(fg, np.zeros_like(head), head, (1.0, 1.0, 2.0)) == 16.0  # x 12 -> 4, 2 mm
    assert depth_mm(np.zeros_like(head), np.zeros_like(head), head, (1, 1, 1)) is None


def test_open_faces_and_grow_stay_inside_the_image():
    roi = Box((0, 10, 0), (0, 19, 9))
    region = np.zeros(roi.shape, dtype=bool)
    region[0, 0, 5] = region[0, 4, 0] = region[0, 5, 9] = True
    faces = open_faces(region, roi, (1, 40, 40), Plane(0, 0))
    assert faces == [(1, -1), (2, 1)]  # x = 0 is the image's face, z is the plane's axis
    assert grow(roi, faces, (5, 5, 5), (1, 40, 40)) == Box((0, 5, 0), (0, 19, 14))


def test_the_roi_grows_until_the_mask_no_longer_ends_at_its_border():
    """A first click on a disc far larger than a 10 mm ROI: without growth the mask is the ROI's
    square (straight edges); with growth the whole disc, its edge the disc's own."""
    yy, xx = np.ogrid[:160, :160]
    disc = (yy - 80) ** 2 + (xx - 80) ** 2 < 45**2
    rng = np.random.default_rng(0)
    image = (disc * 100.0 + rng.normal(0, 4, disc.shape)).astype(np.float32)[None]
    read = lambda box: image[tuple(slice(lo, hi + 1) for lo, hi in zip(box.lo, box.hi))]
    results = {}
    for max_grow in (0, 8):
        params = GRAPHCUT.parse_params({"margin_mm": 10.0, "margin_fraction": 0.0,
                                        "box_margin_mm": 6.0, "max_grow": max_grow})
        results[max_grow] = GRAPHCUT.run(
            read_image=read, read_mask=None, shape=image.shape, spacing=(1.0, 1.0, 1.0),
            marks=Marks(fg=np.array([[0, 80, 80]])), plane=Plane(0, 0), params=params,
            current_mask_bbox=None, context=SegmentContext(kind="click"))
    cropped, grown = results[0], results[8]
    assert cropped.roi.shape == (1, 21, 21) and cropped.mask.all()  # a 21 x 21 square
    assert grown.info["roi_grown"] >= 1 and grown.roi.shape[1] > 90
    mask = np.zeros(disc.shape, dtype=bool)
    mask[grown.roi.lo[1]:grown.roi.hi[1] + 1, grown.roi.lo[2]:grown.roi.hi[2] + 1] = grown.mask[0]
    assert dice(mask, disc) > 0.95
    assert not open_faces(grown.mask, grown.roi, image.shape, Plane(0, 0))


def test_within_reach_is_the_ball_of_the_marks_depth_around_them():
    new_fg = np.zeros((1, 21, 21), dtype=bool)
    new_fg[0, 10, 10] = True
    none = np.zeros_like(new_fg)
    assert within_reach(none, none, (3.0, 2.0, 2.0), 4.0, 1.5, 3.0) is None
    ball = within_reach(new_fg, none, (3.0, 2.0, 2.0), 4.0, 1.5, 3.0)  # 1.5 x 4 + 3 = 9 mm
    assert ball[0, 10, 10] and ball[0, 10, 14] and not ball[0, 10, 15]  # 8 mm in, 10 mm out
    assert ball.sum() == sum(1 for y in range(21) for x in range(21)
                             if 4 * ((y - 10) ** 2 + (x - 10) ** 2) <= 81)
    # local_merge keeps only the changes inside it
    head = np.zeros_like(new_fg)
    head[0, 10, 12:] = True
    new = np.ones_like(new_fg)  # a cut that took everything
    merged, region = local_merge(head, new, new_fg, none, 1, ball)
    assert np.array_equal(merged, head | ball) and np.array_equal(region, ball & ~head)


def test_object_scale_is_the_equivalent_radius_and_unbounded_without_an_object():
    disc = np.zeros((40, 40), dtype=bool)
    disc[np.hypot(*np.indices(disc.shape) - 20.0) <= 10] = True
    assert abs(object_scale_mm(disc, (2.0, 2.0)) - 20.0) < 0.5  # radius 10 voxels x 2 mm
    ball = np.zeros((30, 30, 30), dtype=bool)
    ball[np.sqrt(((np.indices(ball.shape) - 15.0) ** 2).sum(axis=0)) <= 8] = True
    assert abs(object_scale_mm(ball, (3.0, 3.0, 3.0)) - 24.0) < 0.5
    assert object_scale_mm(np.zeros((5, 5), dtype=bool), (1.0, 1.0)) == float("inf")
