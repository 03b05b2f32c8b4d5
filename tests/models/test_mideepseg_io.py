"""The MIDeepSeg input contract: relaxed box, resized z-scored crop, cue map, the way back."""

from __future__ import annotations

import numpy as np

from medseg.algorithms.resample import resize_linear
from medseg.models.mideepseg_io import (
    network_input,
    probability_in_crop,
    relaxed_box,
    to_grid,
)


def test_relaxed_box_covers_the_points_with_a_margin_and_stays_inside():
    points = np.array([[10, 20], [30, 60]])
    lo, hi = relaxed_box(points, (100, 64))
    assert lo.tolist() == [10 - 3 - 4, 20 - 5 - 4]  # ceil(0.1 * extent) + 4 voxels
    assert hi.tolist() == [30 + 3 + 4, 63]  # clipped to the image
    lo, hi = relaxed_box(np.array([[0, 5, 5], [0, 9, 9]]), (1, 20, 20))
    assert lo[0] == hi[0] == 0  # a single slice stays a single slice


def test_network_input_is_zscored_image_and_cue_with_points_on_the_grid():
    rng = np.random.default_rng(0)
    crop = rng.normal(100, 20, size=(90, 120)).astype(np.float32)
    points = np.array([[0, 0], [89, 119], [45, 60]])
    x = network_input(crop, points, (64, 64), "egd")
    assert x.shape == (2, 64, 64) and x.dtype == np.float32
    assert abs(x[0].mean()) < 1e-4 and abs(x[0].std() - 1) < 1e-3
    grid = to_grid(points, crop.shape, (64, 64))
    assert grid.tolist() == [[0, 0], [63, 63], [32, 32]]
    assert np.allclose(x[1][tuple(grid.T)], 1.0)  # EGD is 1 at the clicks


def test_probability_round_trip_keeps_a_smooth_blob():
    yy, xx = np.mgrid[:80, :100]
    blob = (((yy - 40) / 30.0) ** 2 + ((xx - 50) / 35.0) ** 2 < 1).astype(np.float32)
    small = resize_linear(blob, (64, 64))
    back = probability_in_crop(small, blob.shape) > 0.5
    assert (back == blob.astype(bool)).mean() > 0.98
