"""Issue 14's editing algorithms: the paper's edit channels exactly, the three kinds of
simulated edits, the manual tools' geometry and the monotone adjustment."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medseg.algorithms.editing import (
    MARK_DILATION,
    Edits,
    adjust,
    adjustment_k,
    boundary_order,
    closed_region,
    core_voxel,
    edit_channels,
    longest_path,
    simulate_brush,
    simulate_edits,
    simulate_selection,
    stroke_footprint,
)


def disc(shape, centre, radius):
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2


def test_edit_channels_encode_exactly_as_the_paper():
    edits = Edits(select_add=np.array([[10, 10]]), select_remove=np.array([[30, 30]]),
                  brush_add=np.array([[5, 20], [5, 21], [5, 22]]),
                  brush_remove=np.zeros((0, 2), np.int64), k=-0.3)
    channels = edit_channels(edits, (40, 40))
    assert channels.shape == (3, 40, 40) and channels.dtype == np.float32
    selection, brush, adjustment = channels
    # a two-voxel dilation (cross-shaped steps): the diamond |dy| + |dx| <= 2 around the click
    yy, xx = np.mgrid[:40, :40]
    diamond_add = np.abs(yy - 10) + np.abs(xx - 10) <= MARK_DILATION
    diamond_remove = np.abs(yy - 30) + np.abs(xx - 30) <= MARK_DILATION
    assert MARK_DILATION == 2
    assert np.array_equal(selection == 1, diamond_add)
    assert np.array_equal(selection == -1, diamond_remove)
    assert set(np.unique(selection)) == {-1.0, 0.0, 1.0}
    stroke = np.zeros((40, 40), bool)
    stroke[5, 20:23] = True
    expected = ndimage.binary_dilation(stroke, ndimage.generate_binary_structure(2, 1), 2)
    assert np.array_equal(brush == 1, expected) and not (brush == -1).any()
    assert np.all(adjustment == np.float32(-0.3))


def test_remove_wins_where_add_and_remove_marks_meet():
    edits = Edits(select_add=np.array([[10, 10]]), select_remove=np.array([[10, 12]]))
    selection = edit_channels(edits, (20, 20))[0]
    assert selection[10, 12] == -1 and selection[10, 11] == -1 and selection[10, 9] == 1


def test_selection_clicks_the_core_of_each_large_error_component():
    gt = disc((80, 80), (40, 40), 20)
    auto = gt & ~disc((80, 80), (40, 58), 8)  # a bite: under-segmentation
    auto |= disc((80, 80), (10, 10), 5)  # a false blob: over-segmentation
    auto |= disc((80, 80), (70, 70), 1)  # a tiny false blob: too small to click
    add, remove = simulate_selection(auto, gt, min_voxels=20)
    assert len(add) == 1 and len(remove) == 1
    assert (gt & ~auto)[tuple(add[0])] and (auto & ~gt)[tuple(remove[0])]
    # the core of a disc is its centre
    assert np.abs(remove[0] - [10, 10]).max() <= 1
    assert core_voxel(disc((30, 30), (15, 15), 9)).tolist() == [15, 15]


def test_brush_is_the_longest_shortest_path_inside_the_largest_2d_error():
    gt = np.zeros((5, 60, 60), bool)
    gt[:, 10:50, 10:50] = True
    auto = gt.copy()
    auto[1, 10:50, 10:14] = False  # a 40 x 4 strip missed on slice 1
    auto[3, 20:24, 20:24] = False  # a smaller miss on slice 3
    stroke, sign = simulate_brush(auto, gt)
    assert sign == 1 and set(stroke[:, 0]) == {1}
    error = gt[1] & ~auto[1]
    assert all(error[y, x] for _, y, x in stroke)  # inside the error region
    ends = stroke[[0, -1], 1:]
    assert abs(int(ends[0, 0]) - int(ends[1, 0])) == 39  # from one end of the strip to the other
    steps = np.abs(np.diff(stroke[:, 1:], axis=0)).max(axis=1)
    assert np.all(steps == 1)  # a connected path
    assert len(longest_path(np.ones((1, 1), bool))) == 1


def test_adjustment_k_is_over_minus_under_over_reference_truncated():
    gt = np.zeros((10, 10), bool)
    gt[2:8, 2:8] = True  # 36
    auto = gt.copy()
    auto[2:8, 8:10] = True  # 12 over
    auto[2, 2:5] = False  # 3 under
    assert adjustment_k(auto, gt, limit=None) == pytest.approx((12 - 3) / 36)
    big = np.ones((10, 10), bool)
    assert adjustment_k(big, gt) == 0.5 and adjustment_k(np.zeros_like(gt), gt) == -0.5


def test_simulated_edits_produce_the_three_kinds():
    gt = disc((80, 80), (40, 40), 20)
    auto = gt & ~disc((80, 80), (40, 58), 8)
    edits = simulate_edits(auto, gt, ["select", "brush", "adjust"])
    assert edits.kinds() == {"select", "brush", "adjust"}
    assert len(edits.select_add) == 1 and len(edits.brush_add) >= 5 and edits.k < 0
    assert simulate_edits(auto, gt, ["brush"]).kinds() == {"brush"}
    assert simulate_edits(gt, gt, ["select", "brush", "adjust"]).kinds() == set()


def test_stroke_footprint_is_a_disc_of_the_radius_in_mm():
    centre = np.zeros((41, 41), bool)
    centre[20, 20] = True
    footprint = stroke_footprint(centre, (0.5, 2.0), 4.0)
    # 4 mm: 8 voxels along y (0.5 mm), 2 along x (2 mm)
    rows, cols = np.nonzero(footprint)
    assert rows.min() == 12 and rows.max() == 28 and cols.min() == 18 and cols.max() == 22
    ball = np.zeros((9, 9, 9), bool)
    ball[4, 4, 4] = True
    assert stroke_footprint(ball, (1, 1, 1), 2.0).sum() == 33  # voxels of a radius-2 ball


def test_closed_region_floods_only_closed_background():
    ring = disc((40, 40), (20, 20), 10) & ~disc((40, 40), (20, 20), 6)
    inside = closed_region(ring, (20, 20))
    assert inside is not None and np.array_equal(inside, disc((40, 40), (20, 20), 6))
    assert closed_region(ring, (1, 1)) is None  # the outside reaches the slice's edge
    assert closed_region(ring, (20, 11)) is None  # on the mask
    leaky = ring.copy()
    leaky[20, 26:31] = False  # a gap in the ring: no longer closed
    assert closed_region(leaky, (20, 20)) is None


def test_adjustment_is_monotone_in_the_amount_and_zero_keeps_the_mask():
    rng = np.random.default_rng(0)
    image = ndimage.gaussian_filter(rng.normal(size=(60, 60)), 2) + disc((60, 60), (30, 30), 15)
    head = disc((60, 60), (30, 32), 12)
    order = boundary_order(image, head, (1.0, 1.0))
    amounts = np.linspace(-1.2, 3.0, 43)
    masks = [adjust(order, head, a) for a in amounts]
    assert np.array_equal(adjust(order, head, 0.0), head)
    for smaller, larger in zip(masks, masks[1:]):
        assert not (smaller & ~larger).any()  # nested: a larger amount never loses a voxel
    assert masks[0].sum() == 0
    assert adjust(order, head, 0.2).sum() == round(head.sum() * 1.2)
