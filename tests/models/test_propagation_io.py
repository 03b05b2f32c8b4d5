"""The propagation network's input contract: square-in-mm crop around the prior, robust
z-score, [image, prior] channels, and the probability pasted back onto the slice."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.models.propagation_io import (
    INPUT_SIZE,
    crop_around,
    network_input,
    normalise,
    probability_on_slice,
    target_on_grid,
)


def disc(shape, centre, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_crop_is_a_square_in_mm_around_the_grown_box():
    prior = np.zeros((200, 200), dtype=bool)
    prior[90:110, 80:120] = True  # 20 x 40 voxels
    crop = crop_around(prior, (1.0, 1.0))
    side = int(np.ceil(40 * 1.5 + 16))
    assert crop.shape == (side, side)
    centre = np.array(crop.lo) + (np.array(crop.shape) - 1) / 2
    assert np.abs(centre - [99.5, 99.5]).max() <= 0.5
    anisotropic = crop_around(prior, (2.0, 1.0))  # rows are 2 mm: half as many of them
    assert abs(anisotropic.shape[1] - 2 * anisotropic.shape[0]) <= 1
    tiny = np.zeros((50, 50), dtype=bool)
    tiny[25, 25] = True
    assert crop_around(tiny, (3.0, 3.0)).shape == (11, 11)  # MIN_SIDE_MM = 32 mm


def test_empty_prior_or_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="non-empty prior"):
        crop_around(np.zeros((10, 10), dtype=bool), (1.0, 1.0))
    with pytest.raises(ValueError, match="same 2D shape"):
        network_input(np.zeros((10, 10), np.float32), np.ones((10, 11), bool), (1.0, 1.0))


def test_input_is_normalised_image_and_prior_for_ct_and_mr_alike():
    rng = np.random.default_rng(0)
    shape = (120, 140)
    organ = disc(shape, (60, 70), 20)
    prior = disc(shape, (61, 69), 18)
    ct = np.where(organ, 60.0, 20.0) + rng.normal(0, 10, shape)
    ct[:, :10] = -1000.0  # air at the edge of the crop must not squash the contrast
    mr = 7.5 * ct + 300.0
    x_ct, crop = network_input(ct.astype(np.float32), prior, (1.5, 1.5))
    x_mr, _ = network_input(mr.astype(np.float32), prior, (1.5, 1.5))
    assert x_ct.shape == (2, *INPUT_SIZE) and x_ct.dtype == np.float32
    assert np.allclose(x_ct, x_mr, atol=1e-4)  # linear intensity changes are removed
    assert abs(x_ct[0].mean()) < 1e-3 and abs(x_ct[0].std() - 1) < 1e-3
    assert x_ct[1].min() >= 0 and x_ct[1].max() <= 1
    inside = target_on_grid(organ, crop)
    assert x_ct[0][inside].mean() - x_ct[0][~inside].mean() > 1.0  # contrast kept
    assert (x_ct[1] > 0.5).sum() == pytest.approx(inside.sum(), rel=0.25)


def test_normalise_clips_outliers():
    image = np.random.default_rng(0).normal(0, 1, (50, 50)).astype(np.float32)
    image[0, :3] = 1e6  # three voxels of metal
    out = normalise(image)
    assert out.max() < 5 and abs(out.std() - 1) < 1e-3


def test_probability_goes_back_to_the_slice_and_is_zero_outside_the_crop():
    shape = (64, 80)
    organ = disc(shape, (8, 10), 6)  # near the corner: the crop reaches past the slice
    crop = crop_around(organ, (1.0, 1.0))
    assert min(crop.lo) < 0
    prob = probability_on_slice(target_on_grid(organ, crop).astype(np.float32), crop, shape)
    assert prob.shape == shape and prob.dtype == np.float32
    assert ((prob > 0.5) == organ).mean() > 0.99
    far = probability_on_slice(np.ones(INPUT_SIZE, np.float32), crop, shape)
    assert far[40:, 50:].max() == 0.0 and far[organ].min() == 1.0
