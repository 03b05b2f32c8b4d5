"""Interior margin points as the paper simulates them (sec. 2.1)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medseg.models.mideepseg_io import relaxed_box
from medseg_train.simulate import boundary, interior_margin_points
from medseg_train.synthetic import synthetic_case


def object_masks(dims: int, count: int = 12):
    rng = np.random.default_rng(7)
    shape = (1, 96, 96) if dims == 2 else (24, 64, 64)
    while count:
        case = synthetic_case(rng, shape)
        for value in np.unique(case.labels)[1:]:
            labels, _ = ndimage.label(case.labels == value)
            mask = labels == 1
            if mask.sum() >= 100:
                yield mask[0] if dims == 2 else mask
                count -= 1
                if not count:
                    return


@pytest.mark.parametrize("dims", [2, 3])
def test_points_lie_inside_near_the_boundary_and_their_box_covers_the_object(dims):
    for k, mask in enumerate(object_masks(dims)):
        rng = np.random.default_rng(k)
        points = interior_margin_points(mask, rng)
        low, high = (3, 9) if dims == 2 else (5, 11)  # extremes + 0..5 extra points
        assert low <= len(points) <= high
        assert mask[tuple(points.T)].all()  # interior
        depth = ndimage.distance_transform_edt(mask)[tuple(points.T)]
        extent = np.ptp(np.argwhere(mask), axis=0).max() + 1
        assert depth.max() <= 2.0 + 0.04 * extent + 2.0  # near the margin, not deep inside
        lo, hi = relaxed_box(points, mask.shape)
        coords = np.argwhere(mask)
        assert (coords >= lo).all() and (coords <= hi).all()


def test_points_are_deterministic_and_extras_can_be_switched_off():
    mask = next(object_masks(2, 1))
    a = interior_margin_points(mask, np.random.default_rng(3), extra=(0, 0))
    b = interior_margin_points(mask, np.random.default_rng(3), extra=(0, 0))
    assert np.array_equal(a, b) and len(a) in (3, 4)


def test_boundary_is_the_inner_rim():
    mask = np.zeros((9, 9), bool)
    mask[2:7, 2:7] = True
    rim = boundary(mask)
    assert rim.sum() == 16 and not rim[4, 4]
