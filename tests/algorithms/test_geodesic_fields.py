"""The fused raster scan (numba, `geodesic_fields`) against GeodisTK's (issue 13 item 3): each
field is GeodisTK's lamb=1 scan of the same seeds plus a path-length weight, to float32
rounding, in 2D and 3D, isotropic and anisotropic, one and two iterations; and the graph-cut
method's seed distances against the per-seed GeodisTK version they replaced."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medseg.algorithms.geodesic import (
    geodesic_distance_plus_length,
    geodesic_fields,
    warm_up,
)
from medseg.algorithms.resample import block_any, block_mean, upsample_linear2
from medseg.engine.graphcut_method import GraphCutParams, seed_distances

RTOL = 2e-5  # float32 rounding along a path of a few hundred steps (GeodisTK adds in double)


def _image(shape, seed):
    rng = np.random.default_rng(seed)
    image = ndimage.gaussian_filter(rng.random(shape), 1.0)
    edge = np.zeros(shape)
    edge[(slice(None),) * (len(shape) - 1) + (slice(shape[-1] // 2, None),)] = 0.8
    return (image + edge).astype(np.float32)  # noise and a sharp step: paths must go around


def _seeds(shape, rng, count):
    out = []
    for k in range(count):
        seeds = np.zeros(shape, dtype=bool)
        if k == 2:  # a whole face, as the ROI border seeds are
            seeds[(0,) * 1] = True
        else:
            for _ in range(1 + k * 3):
                seeds[tuple(int(rng.integers(n)) for n in shape)] = True
        out.append(seeds)
    return out


def _close(got, want):
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-6)


@pytest.mark.parametrize("shape,spacing", [
    ((17, 23, 19), (1.0, 1.0, 1.0)),
    ((9, 31, 28), (3.0, 0.8, 0.8)),
    ((1, 20, 25), (2.0, 1.5, 0.7)),  # a one-slice volume: only the in-plane neighbours
    ((40, 37), (0.8, 1.2)),  # 2D, anisotropic pixels
])
@pytest.mark.parametrize("iterations", [1, 2])
def test_each_field_is_geodistks_scan(shape, spacing, iterations):
    rng = np.random.default_rng(len(shape) * 10 + iterations)
    image = _image(shape, 7)
    seeds = _seeds(shape, rng, 3)
    weights = [0.005, 0.05, 1.0 / 30]
    fields = geodesic_fields(image, seeds, spacing, weights, iterations)
    assert fields.shape == (3, *shape)
    for field, seed, weight in zip(fields, seeds, weights):
        _close(field, geodesic_distance_plus_length(image, seed, spacing, weight, iterations))
        assert np.all(field[seed] == 0)


def test_one_iteration_is_not_two_and_fields_do_not_mix():
    """The kernel really scans (a second iteration lowers some distances on this image), and
    a field's seeds never leak into another field; a field without seeds stays infinite."""
    shape, spacing = (12, 30, 30), (2.0, 1.0, 1.0)
    image = _image(shape, 3)
    seed = np.zeros(shape, dtype=bool)
    seed[6, 29, 29] = True  # the far corner: one forward pass cannot reach around the step
    one = geodesic_fields(image, [seed], spacing, [0.01], 1)[0]
    two = geodesic_fields(image, [seed], spacing, [0.01], 2)[0]
    assert np.all(two <= one) and np.any(two < one)
    empty = np.zeros(shape, dtype=bool)
    alone = geodesic_fields(image, [seed], spacing, [0.01], 2)[0]
    mixed = geodesic_fields(image, [empty, seed, ~empty], spacing, [0.5, 0.01, 0.2], 2)
    assert np.all(np.isinf(mixed[0]))
    assert np.array_equal(mixed[1], alone)
    assert np.all(mixed[2] == 0)


def test_bad_input_is_refused():
    image = np.zeros((5, 5), np.float32)
    seed = np.ones((5, 5), bool)
    with pytest.raises(ValueError, match="length weights"):
        geodesic_fields(image, [seed], (1.0, 1.0), [0.0])
    with pytest.raises(ValueError, match="seeds shape"):
        geodesic_fields(image, [np.ones((4, 5), bool)], (1.0, 1.0), [0.1])
    with pytest.raises(ValueError, match="spacing"):
        geodesic_fields(image, [seed], (1.0, 1.0, 1.0), [0.1])
    warm_up()  # compiles or loads the cached kernel; must not fail


def _seed_distance_geodistk(g, seeds, spacing, weight, coarse, iterations=2):
    """The graph-cut method's seed distance as it was: one GeodisTK scan per seed set."""
    if coarse:
        spacing = [*spacing[:-2], *(2.0 * s for s in spacing[-2:])]
        dist = _seed_distance_geodistk(block_mean(g, 2), block_any(seeds, 2), spacing, weight,
                                       False, iterations=1)
        return upsample_linear2(dist, g.shape)
    step = float(np.mean(spacing))
    return geodesic_distance_plus_length(g, seeds, spacing, weight * step, iterations) / step


@pytest.mark.parametrize("coarse", [False, True])
def test_seed_distances_match_the_per_seed_geodistk_version(coarse):
    shape, spacing = (11, 34, 29), (3.0, 1.5, 1.5)
    rng = np.random.default_rng(5)
    g = _image(shape, 11)
    seeds = _seeds(shape, rng, 3)
    weights = [0.005, 0.005, 1.0 / 25.0]
    fused = seed_distances(g, seeds, spacing, weights, coarse)
    for got, seed, weight in zip(fused, seeds, weights):
        _close(got, _seed_distance_geodistk(g, seed, spacing, weight, coarse))
    single = seed_distances(g, seeds[:1], spacing, [GraphCutParams().euclid_weight], coarse)[0]
    assert np.array_equal(single, fused[0])
