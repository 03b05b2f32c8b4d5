"""Cue encodings against their definitions (MIDeepSeg eq. 1-2 and the appendix's baselines)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medseg.algorithms.encodings import ENCODINGS, egd, encode, intensity_geodesic


def two_regions(shape=(40, 60)):
    """Left half 0, right half 1: a path into the right half crosses an edge of height 1."""
    image = np.zeros(shape, dtype=np.float32)
    image[:, shape[1] // 2:] = 1.0
    return image


def test_egd_is_one_at_clicks_and_exp_of_the_geodesic_distance():
    image = two_regions()
    seeds = np.zeros(image.shape, bool)
    seeds[20, 10] = seeds[5, 5] = True
    cue = egd(image, seeds)
    assert cue.dtype == np.float32 and cue.shape == image.shape
    assert np.allclose(cue[seeds], 1.0)
    np.testing.assert_allclose(cue, np.exp(-intensity_geodesic(image, seeds)), rtol=1e-6)
    # same region as the clicks: ~1 (no intensity change on the way); across the edge: e^-1
    assert cue[:, :30].min() > 0.99
    np.testing.assert_allclose(cue[:, 31:], np.exp(-1.0), rtol=1e-3)


def test_egd_decreases_with_geodesic_distance():
    rng = np.random.default_rng(0)
    image = ndimage.gaussian_filter(rng.normal(size=(50, 50)), 2).astype(np.float32)
    seeds = np.zeros(image.shape, bool)
    seeds[25, 25] = True
    distance = intensity_geodesic(image, seeds).ravel()
    cue = egd(image, seeds).ravel()
    order = np.argsort(distance)
    assert np.all(np.diff(cue[order]) <= 1e-7)  # monotone non-increasing in D_geo
    assert distance[order][-1] > distance[order][0]


def test_egd_takes_the_nearest_click_in_3d():
    image = np.zeros((8, 20, 20), np.float32)
    image[:, :, 10:] = 2.0
    seeds = np.zeros(image.shape, bool)
    seeds[4, 10, 3] = seeds[4, 10, 15] = True  # one click in each region
    assert egd(image, seeds).min() > 0.99  # every voxel has a click in its own region


@pytest.mark.parametrize("kind", ["euclidean", "geodesic"])
def test_truncated_distances_are_zero_at_clicks_and_saturate(kind):
    image = two_regions()
    seeds = np.zeros(image.shape, bool)
    seeds[20, 10] = True
    cue = encode(kind, image, seeds)
    assert cue[20, 10] == 0.0 and cue.max() == pytest.approx(1.0)
    assert np.all((cue >= 0) & (cue <= 1))


def test_euclidean_cue_follows_the_distance_transform():
    image = np.zeros((31, 31), np.float32)
    seeds = np.zeros(image.shape, bool)
    seeds[15, 15] = True
    cue = encode("euclidean", image, seeds)
    top = np.hypot(15, 15)  # farthest corner
    assert cue[15, 25] == pytest.approx(min(10 / top, 0.4) / 0.4, rel=1e-5)


def test_gaussian_cue_is_the_heatmap_of_the_nearest_click():
    image = np.zeros((40, 40), np.float32)
    seeds = np.zeros(image.shape, bool)
    seeds[10, 10] = seeds[30, 30] = True
    cue = encode("gaussian", image, seeds)
    assert cue[10, 10] == pytest.approx(1.0)
    assert cue[10, 19] == pytest.approx(np.exp(-81 / (2 * 81)), rel=1e-6)  # sigma = 9 voxels


def test_encode_rejects_unknown_kinds_and_empty_seeds():
    image = np.zeros((5, 5), np.float32)
    with pytest.raises(ValueError, match="unknown cue encoding"):
        encode("magic", image, np.ones((5, 5), bool))
    with pytest.raises(ValueError, match="at least one"):
        encode("egd", image, np.zeros((5, 5), bool))
    assert set(ENCODINGS) == {"egd", "geodesic", "euclidean", "gaussian"}
