"""Geodesic distance and graph cut against their definitions (BIFSeg eq. 2)."""

from __future__ import annotations

import itertools

import GeodisTK
import numpy as np
import pytest
from scipy import ndimage

from medseg.algorithms.geodesic import geodesic_distance
from medseg.algorithms.graphcut import P_CLIP, _band_cut, banded_graph_cut, graph_cut
from medseg.algorithms.normalize import normalize_percentiles
from medseg.algorithms.resample import block_mean, upsample_linear2, upsample_nearest


def euclidean(shape, seed, spacing):
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grids, seed, spacing)))


def on_neighbour_lines(shape, seed):
    """Voxels reached from `seed` by repeating one neighbour step (axes and diagonals): there a
    raster scan (a chamfer distance over the 8/26 neighbours) is exactly Euclidean."""
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    offsets = [np.abs(g - c) for g, c in zip(grids, seed)]
    largest = np.maximum.reduce(offsets)
    return np.logical_and.reduce([(o == 0) | (o == largest) for o in offsets])


def assert_euclidean(dist, shape, seed, spacing, max_over):
    """Exact on the neighbour lines, never below Euclidean, at most `max_over` above elsewhere."""
    truth = euclidean(shape, seed, spacing)
    exact = on_neighbour_lines(shape, seed)
    np.testing.assert_allclose(dist[exact], truth[exact], rtol=1e-5, atol=1e-4)
    assert np.all(dist >= truth - 1e-4)
    assert np.all(dist <= truth * (1 + max_over) + 1e-4)


@pytest.mark.parametrize("spacing, max_over", [((1.0, 1.0), 0.09), ((0.7, 0.7), 0.09),
                                               ((2.0, 0.5), 0.3)])
@pytest.mark.parametrize("lamb", [0.0, 1.0])
def test_geodesic_2d_constant_image_is_euclidean(spacing, max_over, lamb):
    image = np.full((41, 37), 5.0, dtype=np.float32)
    seeds = np.zeros(image.shape, dtype=bool)
    seeds[20, 18] = True
    dist = geodesic_distance(image, seeds, spacing, lamb=lamb)
    assert dist.dtype == np.float32 and dist.shape == image.shape
    if lamb == 1.0:  # GeodisTK's lamb=1 step cost is mm x (|dI| + 1e-5)
        dist = dist / 1e-5
    assert_euclidean(dist, image.shape, (20, 18), spacing, max_over)


def test_geodesic_2d_matches_geodistk_2d_routine():
    rng = np.random.default_rng(1)
    image = rng.random((30, 40)).astype(np.float32)
    seeds = np.zeros(image.shape, dtype=bool)
    seeds[3, 5] = seeds[20, 30] = True
    ours = geodesic_distance(image, seeds, (1.0, 1.0), lamb=1.0)
    theirs = GeodisTK.geodesic2d_raster_scan(image, seeds.astype(np.uint8), 1.0, 2)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_geodesic_3d_constant_image_is_euclidean_anisotropic():
    shape, spacing = (9, 21, 19), (3.0, 1.0, 0.8)
    image = np.zeros(shape, dtype=np.float32)
    seeds = np.zeros(shape, dtype=bool)
    seeds[4, 10, 9] = True
    # anisotropic 3D needs more raster passes than the default 2 to converge fully
    dist = geodesic_distance(image, seeds, spacing, lamb=0.0, iterations=4)
    assert dist.dtype == np.float32 and dist.shape == shape
    # 26-neighbour chamfer on a 3 : 1 : 0.8 grid: exact on the lines, <= 35 % over in between
    assert_euclidean(dist, shape, (4, 10, 9), spacing, 0.35)
    np.testing.assert_allclose(dist[:, 10, 9], np.abs(np.arange(9) - 4) * 3.0, rtol=1e-5)


def test_geodesic_lamb1_counts_intensity_change():
    image = np.zeros((5, 10), dtype=np.float32)
    image[:, 5:] = 1.0
    seeds = np.zeros(image.shape, dtype=bool)
    seeds[2, 0] = True
    dist = geodesic_distance(image, seeds, (2.0, 2.0), lamb=1.0)
    assert dist[2, 4] < 1e-3 and dist[2, 5] == pytest.approx(2.0, rel=1e-3)  # mm x |dI|


def test_geodesic_validates_inputs():
    with pytest.raises(ValueError):
        geodesic_distance(np.zeros((4, 4)), np.zeros((4, 5), bool), (1, 1))
    with pytest.raises(ValueError):
        geodesic_distance(np.zeros((4, 4)), np.zeros((4, 4), bool), (1, 1))  # no seed
    with pytest.raises(ValueError):
        geodesic_distance(np.zeros((4, 4)), np.ones((4, 4), bool), (1, 1, 1))


def energy(labels, prob, image, spacing, lamb, sigma):
    """BIFSeg eq. 2 energy of a labelling, written out edge by edge."""
    p = np.clip(prob, P_CLIP, 1 - P_CLIP)
    e = np.where(labels, -np.log(p), -np.log(1 - p)).sum()
    for index in np.ndindex(labels.shape):
        for axis in range(labels.ndim):
            other = list(index)
            other[axis] += 1
            if other[axis] >= labels.shape[axis] or labels[index] == labels[tuple(other)]:
                continue
            diff = image[index] - image[tuple(other)]
            e += lamb * np.exp(-diff ** 2 / (2 * sigma ** 2)) / spacing[axis]
    return e


@pytest.mark.parametrize("seed", range(6))
def test_graph_cut_is_brute_force_minimum_of_eq2(seed):
    rng = np.random.default_rng(seed)
    prob = rng.random((2, 3)).astype(np.float32)
    image = rng.random((2, 3)).astype(np.float32) * 0.3
    spacing, lamb, sigma = (2.0, 0.5), float(rng.uniform(0.2, 2.0)), 0.1
    result = graph_cut(prob, image, spacing, lamb=lamb, sigma=sigma)
    best = min(energy(np.array(bits, bool).reshape(2, 3), prob, image, spacing, lamb, sigma)
               for bits in itertools.product([0, 1], repeat=6))
    assert energy(result, prob, image, spacing, lamb, sigma) == pytest.approx(best, rel=1e-6)


@pytest.mark.parametrize("shape", [(30, 40), (6, 20, 25)])
def test_graph_cut_lamb0_is_threshold(shape):
    rng = np.random.default_rng(2)
    prob = rng.random(shape).astype(np.float32)
    image = rng.random(shape).astype(np.float32)
    result = graph_cut(prob, image, (1.0,) * len(shape), lamb=0.0)
    np.testing.assert_array_equal(result, prob > 0.5)


@pytest.mark.parametrize("shape", [(30, 40), (6, 20, 25)])
def test_graph_cut_respects_hard_constraints(shape):
    rng = np.random.default_rng(3)
    prob = rng.random(shape).astype(np.float32)
    image = rng.random(shape).astype(np.float32)
    hard_fg = rng.random(shape) < 0.05
    hard_bg = (rng.random(shape) < 0.05) & ~hard_fg
    prob[hard_fg] = 1e-6  # the unary says the opposite of the constraint
    prob[hard_bg] = 1 - 1e-6
    for lamb in (0.0, 1.0, 50.0):
        result = graph_cut(prob, image, (1.0,) * len(shape), hard_fg, hard_bg, lamb=lamb)
        assert result[hard_fg].all() and not result[hard_bg].any()


def test_graph_cut_validates_shapes():
    with pytest.raises(ValueError):
        graph_cut(np.zeros((3, 3)), np.zeros((3, 4)), (1, 1))
    with pytest.raises(ValueError):
        graph_cut(np.zeros((3, 3)), np.zeros((3, 3)), (1, 1), hard_fg=np.zeros((2, 2), bool))


def test_normalize_percentiles_range_and_constant():
    rng = np.random.default_rng(4)
    image = rng.normal(100.0, 50.0, (50, 50))
    norm = normalize_percentiles(image)
    assert norm.dtype == np.float32 and norm.min() == 0.0 and norm.max() == 1.0
    assert np.mean(norm == 0) == pytest.approx(0.01, abs=0.005)
    assert not normalize_percentiles(np.full((4, 4), 7.0)).any()


def test_two_regions_with_noise_from_one_click_each():
    """Geodesic unary from one fg and one bg click, then graph cut: Dice > 0.95."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:80, :100]
    truth = (yy - 40) ** 2 / 25 ** 2 + (xx - 45) ** 2 / 30 ** 2 < 1
    image = np.where(truth, 0.7, 0.3) + rng.normal(0, 0.05, truth.shape)
    norm = normalize_percentiles(image)
    # smoothed for the distances, as the engine does: along a raw noisy path the geodesic
    # distance sums the noise and would rival the one real edge
    smooth = ndimage.gaussian_filter(norm, 1.5)
    seed_fg = np.zeros(truth.shape, bool)
    seed_bg = np.zeros(truth.shape, bool)
    seed_fg[40, 45] = seed_bg[5, 5] = True
    d_fg = geodesic_distance(smooth, seed_fg, (1.0, 1.0), lamb=1.0)
    d_bg = geodesic_distance(smooth, seed_bg, (1.0, 1.0), lamb=1.0)
    prob = d_bg / (d_fg + d_bg)
    mask = graph_cut(prob, norm, (1.0, 1.0), seed_fg, seed_bg, lamb=2.0, sigma=0.1)
    dice = 2 * (mask & truth).sum() / (mask.sum() + truth.sum())
    assert dice > 0.95, dice


def test_banded_graph_cut_matches_graph_cut_on_a_noisy_blob():
    rng = np.random.default_rng(3)
    z, y, x = np.ogrid[:12, :60, :64]
    blob = ((z - 6) / 5.0) ** 2 + ((y - 30) / 18.0) ** 2 + ((x - 31) / 20.0) ** 2 < 1
    image = (blob * 0.6 + rng.normal(0, 0.1, blob.shape)).astype(np.float32)
    prob = np.clip(np.where(blob, 0.7, 0.3) + rng.normal(0, 0.2, blob.shape), 0, 1)
    hard_fg = np.zeros(blob.shape, dtype=bool)
    hard_fg[6, 30, 31] = True
    full = graph_cut(prob, image, (1.5, 0.8, 0.8), hard_fg, None, 2.0, 0.1)
    banded = banded_graph_cut(prob, image, (1.5, 0.8, 0.8), hard_fg, None, 2.0, 0.1)
    assert banded.shape == full.shape and banded[6, 30, 31]
    assert (banded != full).mean() < 0.002


def test_band_cut_with_everything_free_is_graph_cut():
    rng = np.random.default_rng(4)
    prob, image = rng.random((4, 9, 10)), rng.random((4, 9, 10))
    labels = rng.random(prob.shape) > 0.5
    everything = np.ones(prob.shape, dtype=bool)
    free = _band_cut(prob, image, (1.5, 0.8, 0.8), None, None, 2.0, 0.1, labels, everything)
    np.testing.assert_array_equal(free.reshape(prob.shape),
                                  graph_cut(prob, image, (1.5, 0.8, 0.8), lamb=2.0))


def test_block_mean_and_linear_upsampling_round_trip_a_ramp():
    ramp = np.add.outer(np.arange(10.0), 2 * np.arange(12.0))[None].astype(np.float32)
    coarse = block_mean(ramp, 2)
    assert coarse.shape == (1, 5, 6) and coarse[0, 0, 0] == pytest.approx(ramp[0, :2, :2].mean())
    back = upsample_linear2(coarse, ramp.shape)
    np.testing.assert_allclose(back[:, 1:-1, 1:-1], ramp[:, 1:-1, 1:-1], atol=1e-5)  # clamped edges
    assert upsample_nearest(coarse, 2, (1, 9, 11)).shape == (1, 9, 11)
