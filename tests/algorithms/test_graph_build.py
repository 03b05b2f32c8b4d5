"""graph_cut adds its n-links as arrays (`_add_grid_edges`, PyMaxflow `add_edges`) instead
of one `add_grid_edges` call per axis: the same edges, capacities and insertion order, so the
same graph. Checked against the `add_grid_edges` build it replaced, on real PyMaxflow: the
same maximum flow to the last bit and the same segments, 2D and 3D, anisotropic, with hard
constraints, and on ties (a constant probability)."""

from __future__ import annotations

import maxflow
import numpy as np
import pytest

from medseg.algorithms.graphcut import (
    _add_grid_edges,
    _constrained_unaries,
    pairwise_weights,
)


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
