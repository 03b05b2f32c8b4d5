"""The straightforward versions of the helpers a 2D click runs, as they were before they were
trimmed (docs/benchmarks.md, "2D click: the engine's compute (issue 13 item 3, branch
click2dfast)"): the references the trimmed ones are compared with bit for bit
(tests/algorithms/test_graph_build.py, tests/engine/test_fast_helpers.py), and `reference_path`
puts them all back in place for an end-to-end comparison of whole clicks."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from scipy import ndimage

from medseg.algorithms import graphcut
from medseg.algorithms.normalize import _integer_percentiles, median_spread
from medseg.engine import graphcut_method, refinement


def unlike_part(norm, head, new_bg, spacing, smooth_mm, spread):
    """refinement.unlike_part on the whole array (smoothing, labelling and all)."""
    if not head.any() or not new_bg.any():
        return None
    widths = [smooth_mm / s for s in spacing]
    smooth = ndimage.gaussian_filter(norm, widths) if smooth_mm > 0 else norm
    median, robust = median_spread(smooth[head])
    clicked = float(smooth[new_bg].mean())
    if abs(clicked - median) <= spread * robust:
        return None
    like = (head & (np.abs(smooth - clicked) < np.abs(smooth - median))) | new_bg
    labels, _ = ndimage.label(like, ndimage.generate_binary_structure(like.ndim, like.ndim))
    hit = np.unique(labels[new_bg])
    return np.isin(labels, hit[hit > 0])


def normalize_percentiles(image, low=1.0, high=99.0):
    """normalize.normalize_percentiles with its temporaries: (data - lo) / (hi - lo), then
    a finiteness check and a clipped copy."""
    raw = np.asarray(image)
    data = np.asarray(raw, dtype=np.float32)
    if data.size == 0:
        return np.ascontiguousarray(data)
    if raw.dtype.kind in "iu" and raw.dtype.itemsize <= 2:
        lo, hi = _integer_percentiles(raw, [low, high])
    else:
        lo, hi = np.percentile(data, [low, high])
    if not np.isfinite(lo) or not np.isfinite(hi) or hi - lo <= 1e-12:
        return np.zeros(data.shape, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        out = (data - np.float32(lo)) / np.float32(hi - lo)
    if not np.isfinite(out).all():
        out = (data.astype(np.float64) - float(lo)) / (float(hi) - float(lo))
    return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32)


def unary_costs(fg_prob):
    """(-log p, -log(1 - p)) of the clipped probability, one temporary per operation."""
    p = np.clip(np.asarray(fg_prob, dtype=np.float64), graphcut.P_CLIP, 1.0 - graphcut.P_CLIP)
    return -np.log(p), -np.log1p(-p)


def constrained_unaries(fg_prob, hard_fg, hard_bg):
    """unary_costs with the hard constraints written by np.where (hard_fg wins)."""
    cost_fg, cost_bg = unary_costs(fg_prob)
    for hard, name in ((hard_fg, "hard_fg"), (hard_bg, "hard_bg")):
        if hard is not None and np.shape(hard) != fg_prob.shape:
            raise ValueError(f"{name} shape {np.shape(hard)} differs from {fg_prob.shape}")
    if hard_bg is not None:
        cost_fg = np.where(hard_bg, graphcut.HARD, cost_fg)
        cost_bg = np.where(hard_bg, 0.0, cost_bg)
    if hard_fg is not None:
        cost_bg = np.where(hard_fg, graphcut.HARD, cost_bg)
        cost_fg = np.where(hard_fg, 0.0, cost_fg)
    return cost_fg, cost_bg


def pair_capacities(image_norm, spacing, lamb, sigma):
    """Per axis, the n-link capacities of the forward pairs in C order: lamb x
    `pairwise_weights`' padded weights, the padding cut off again, x the structure's 1.0."""
    out = []
    for axis, (_, weights) in enumerate(graphcut.pairwise_weights(image_norm, spacing, sigma)):
        lo = tuple(slice(None, -1) if a == axis else slice(None) for a in range(weights.ndim))
        out.append(np.ascontiguousarray((lamb * weights)[lo]).reshape(-1) * 1.0)
    return out


def add_grid_edges(graph, nodes, image_norm, spacing, lamb, sigma):
    """graphcut._add_grid_edges from `pair_capacities`."""
    for axis, capacity in enumerate(pair_capacities(image_norm, spacing, lamb, sigma)):
        lo = tuple(slice(None, -1) if a == axis else slice(None) for a in range(nodes.ndim))
        hi = tuple(slice(1, None) if a == axis else slice(None) for a in range(nodes.ndim))
        graph.add_edges(nodes[lo].reshape(-1), nodes[hi].reshape(-1), capacity, capacity)


@contextmanager
def reference_path(monkeypatch: pytest.MonkeyPatch):
    """Within: the engine runs the reference versions above (and NumPy's own argwhere and
    nonzero) wherever a click calls the trimmed ones."""
    with monkeypatch.context() as patch:
        patch.setattr(refinement, "unlike_part", unlike_part)
        patch.setattr(refinement, "argwhere", np.argwhere)
        patch.setattr(graphcut_method, "argwhere", np.argwhere)
        patch.setattr(graphcut_method, "nonzero", np.nonzero)
        patch.setattr(graphcut_method, "normalize_percentiles", normalize_percentiles)
        patch.setattr(graphcut, "unary_costs", unary_costs)
        patch.setattr(graphcut, "_constrained_unaries", constrained_unaries)
        patch.setattr(graphcut, "_add_grid_edges", add_grid_edges)
        yield
