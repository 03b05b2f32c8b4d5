"""graph_cut adds its n-links as arrays (`_add_grid_edges`, PyMaxflow `add_edges`) instead
of one `add_grid_edges` call per axis: the same edges, capacities and insertion order, so the
same graph. Checked against the `add_grid_edges` build it replaced, on real PyMaxflow: the
same maximum flow to the last bit and the same segments, 2D and 3D, anisotropic, with hard
constraints, and on ties (a constant probability). The n-link capacities and t-links are
built in place, without padded or temporary copies (issue 13 item 3, branch click2dfast):
the same float64 values, bit for bit, as the straightforward versions
(tests/reference_click2d.py), on random and real inputs."""

from __future__ import annotations

import maxflow
import numpy as np
import pytest

from medseg.algorithms.graphcut import (
    _add_grid_edges,
    _constrained_unaries,
    _pair_capacities,
    pairwise_weights,
)
from medseg.algorithms.normalize import normalize_percentiles
from tests import reference_click2d as reference


def _reference_graph(prob, image, spacing, hard_fg, hard_bg, lamb, sigma, grid_build: bool):
    """graph_cut's graph, its n-links by `add_grid_edges` (the build before) or the new one;
    returns (flow, segments)."""
    cost_fg, cost_bg = _constrained_unaries(prob, hard_fg, hard_bg)
    graph = maxflow.Graph[float](prob.size, prob.size * prob.ndim)
    nodes = graph.add_grid_nodes(prob.shape)
    if grid_build:
        for offset, weights in pairwise_weights(image, spacing, sigma):
            structure = np.zeros((3,) * prob.ndim)
            structure[tuple(1 + o for o in offset)] = 1.0
            graph.add_grid_edges(nodes, weights=lamb * weights, structure=structure,
                                 symmetric=True)
    else:
        _add_grid_edges(graph, nodes, image, spacing, lamb, sigma)
    graph.add_grid_tedges(nodes, np.ascontiguousarray(cost_bg), np.ascontiguousarray(cost_fg))
    flow = graph.maxflow()
    return flow, graph.get_grid_segments(nodes)


@pytest.mark.parametrize("shape, spacing", [((40, 37), (0.8, 1.1)),
                                            ((9, 31, 28), (3.0, 0.8, 0.8)),
                                            ((1, 20, 25), (1.0, 1.0, 1.0))])
@pytest.mark.parametrize("seed", range(4))
def test_the_array_build_is_add_grid_edges_graph(shape, spacing, seed):
    rng = np.random.default_rng(seed)
    image = rng.random(shape)
    prob = np.full(shape, 0.5) if seed == 3 else rng.random(shape)  # seed 3: all ties
    hard_fg = rng.random(shape) > 0.97
    hard_bg = (rng.random(shape) > 0.97) & ~hard_fg
    lamb = 2.0 + seed
    before = _reference_graph(prob, image, spacing, hard_fg, hard_bg, lamb, 0.1, True)
    after = _reference_graph(prob, image, spacing, hard_fg, hard_bg, lamb, 0.1, False)
    assert after[0] == before[0]  # the same float flow: the same graph, augmented alike
    assert np.array_equal(after[1], before[1])


def _real_slices(totalseg):
    """Normalised ROIs of the shared CT (a float32 slice, as a 2D click cuts it, and a
    3D block), with their spacings."""
    import nibabel as nib

    image = nib.load(totalseg / "ct_3mm.nii.gz")
    volume = np.asarray(image.dataobj).transpose(2, 1, 0)  # int16 (z, y, x)
    sz, sy, sx = (float(s) for s in image.header.get_zooms()[::-1])
    return [(normalize_percentiles(volume[15]), (sy, sx)),
            (normalize_percentiles(volume[20, 10:90, 30:110]), (sy, sx)),
            (normalize_percentiles(volume[8:20, 20:70, 40:100]), (sz, sy, sx))]


def _random_images(rng):
    for trial in range(40):
        ndim = 2 + trial % 2
        shape = tuple(int(n) for n in rng.integers(1, 30, size=ndim))
        dtype = np.float32 if trial % 3 else np.float64
        image = rng.random(shape).astype(dtype)
        if trial % 5 == 0:  # steps and a flat part: weights of exactly 1 / d and tiny ones
            image = np.round(image * 3).astype(dtype) / 3
        spacing = tuple(float(s) for s in rng.uniform(0.3, 5.0, size=ndim))
        yield image, spacing


@pytest.mark.parametrize("lamb, sigma", [(2.0, 0.1), (0.7, 0.05), (4.0, 0.3), (0.0, 0.1), (3, 1)])
def test_pair_capacities_are_the_padded_weights_bit_for_bit(lamb, sigma, totalseg):
    rng = np.random.default_rng(21)
    cases = [*_random_images(rng), *_real_slices(totalseg)]
    for image, spacing in cases:
        want = reference.pair_capacities(image, spacing, lamb, sigma)
        for axis in range(image.ndim):
            got = _pair_capacities(image, spacing, lamb, sigma, axis)
            assert got.dtype == np.float64 and got.shape == want[axis].shape
            assert np.array_equal(got, want[axis]), (image.shape, axis)


def test_constrained_unaries_are_np_where_s_bit_for_bit(totalseg):
    """In place on the call's own copies: the same costs as the np.where version, hard_fg
    winning where both are set, and the caller's probability left as it was."""
    rng = np.random.default_rng(22)
    probs = [rng.random(tuple(int(n) for n in rng.integers(1, 25, size=2 + t % 2)))
             for t in range(30)]
    probs += [np.clip(image * 1.3 - 0.1, 0, 1) for image, _ in _real_slices(totalseg)]
    for trial, prob in enumerate(probs):
        prob = prob.astype(np.float64 if trial % 2 else np.float32)
        prob.reshape(-1)[:: 7] = (0.0, 1.0, 1e-5, 1 - 1e-6, 0.5)[trial % 5]  # at the clip
        kept = prob.copy()
        hard_fg = rng.random(prob.shape) > 0.9 if trial % 3 else None
        hard_bg = rng.random(prob.shape) > 0.9 if trial % 4 else None  # overlaps hard_fg
        got = _constrained_unaries(prob, hard_fg, hard_bg)
        want = reference.constrained_unaries(prob, hard_fg, hard_bg)
        for g, w in zip(got, want):
            assert g.dtype == np.float64 and np.array_equal(g, w), trial
        assert np.array_equal(prob, kept), "the caller's probability was written to"
    with pytest.raises(ValueError, match="hard_bg shape"):
        _constrained_unaries(np.zeros((3, 4)), None, np.zeros((4, 3), bool))


@pytest.mark.parametrize("seed", range(3))
def test_the_trimmed_build_is_the_reference_graph_on_real_slices(seed, totalseg):
    """The whole graph (n-links and t-links) from the trimmed build and from the reference
    one: the same maximum flow to the last bit and the same segments."""
    rng = np.random.default_rng(30 + seed)
    image, spacing = _real_slices(totalseg)[seed]
    prob = np.clip(1.2 * image + rng.normal(0, 0.2, image.shape) - 0.2, 0, 1)
    hard_fg = rng.random(image.shape) > 0.995
    hard_bg = (rng.random(image.shape) > 0.995) & ~hard_fg
    results = []
    for build, unaries in ((_add_grid_edges, _constrained_unaries),
                           (reference.add_grid_edges, reference.constrained_unaries)):
        cost_fg, cost_bg = unaries(prob, hard_fg, hard_bg)
        graph = maxflow.Graph[float](prob.size, prob.size * prob.ndim)
        nodes = graph.add_grid_nodes(prob.shape)
        build(graph, nodes, image, spacing, 2.0, 0.1)
        graph.add_grid_tedges(nodes, cost_bg, cost_fg)
        results.append((graph.maxflow(), graph.get_grid_segments(nodes)))
    assert results[0][0] == results[1][0]
    assert np.array_equal(results[0][1], results[1][1])
