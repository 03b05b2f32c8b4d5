"""Binary graph cut (PyMaxflow) with the BIFSeg pairwise term, 2D or 3D, fully vectorised.

Energy minimised (BIFSeg, Wang et al. 2018, eq. 2):
    E(y) = sum_i phi_i(y_i)
           + lamb * sum_{(i,j) in N} [y_i != y_j] exp(-(X_i - X_j)^2 / (2 sigma^2)) / d_ij
with phi_i(fg) = -log p_i, phi_i(bg) = -log(1 - p_i), p clipped to [1e-4, 1 - 1e-4], N the
4-neighbourhood (2D) or 6-neighbourhood (3D) and d_ij the neighbour distance in mm. Dividing by
d_ij in mm keeps lamb's meaning across resolutions (unary ~ area / s^2, pairwise ~ (length / s)
/ s), so one default serves 0.98 mm and 3 mm grids alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import maxflow
import numpy as np
from scipy import ndimage

from medseg.algorithms.resample import block_any, block_mean, upsample_nearest

P_CLIP = 1e-4
HARD = 1e9  # "infinite" t-link: far above any finite energy a grid of this size can reach


def unary_costs(fg_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cost of labelling foreground, cost of labelling background) = (-log p, -log(1 - p))."""
    # the same operations as -log(clip(p)), -log1p(-clip(p)) in float64, on two buffers
    # instead of five temporaries (docs/benchmarks.md, "2D click: the engine's compute")
    p = np.array(fg_prob, dtype=np.float64)  # a copy: written below
    np.clip(p, P_CLIP, 1.0 - P_CLIP, out=p)
    cost_bg = np.negative(p)
    np.log1p(cost_bg, out=cost_bg)
    np.negative(cost_bg, out=cost_bg)
    np.log(p, out=p)
    return np.negative(p, out=p), cost_bg


def pairwise_weights(image_norm: np.ndarray, spacing: Sequence[float], sigma: float):
    """Yield (offset, weights) per forward neighbour direction (one per axis).

    weights[i] = exp(-(X_i - X_{i+offset})^2 / (2 sigma^2)) / d (d = spacing along the axis, mm);
    the last plane along the axis has no such neighbour and gets 0 (PyMaxflow skips it anyway).
    """
    image = np.asarray(image_norm, dtype=np.float64)
    for axis in range(image.ndim):
        diff = np.diff(image, axis=axis)
        w = np.exp(-(diff * diff) / (2.0 * sigma * sigma)) / float(spacing[axis])
        pad = [(0, 0)] * image.ndim
        pad[axis] = (0, 1)
        offset = tuple(1 if a == axis else 0 for a in range(image.ndim))
        yield offset, np.pad(w, pad)


def _add_grid_edges(graph, nodes: np.ndarray, image_norm: np.ndarray, spacing, lamb: float,
                    sigma: float) -> None:
    """The pairwise n-links of every forward neighbour pair, as PyMaxflow's
    `add_grid_edges(nodes, lamb * weights, structure with one 1 at offset, symmetric=True)`
    adds them, per axis: the same edges, capacities and insertion order, so the same graph
    and cut. Why: `add_grid_edges` walks each node's multi-index and structure in C++,
    `add_edges` takes the pairs as arrays: a 151x151 2D cut 1.37 -> 1.15 ms; on a 3D grid BK's
    own arc writes dominate (810 K edges: 41-48 -> 37-47 ms; docs/benchmarks.md, "3D first
    click")."""
    ndim = nodes.ndim
    image = np.asarray(image_norm)
    for axis in range(ndim):
        lo = tuple(slice(None, -1) if a == axis else slice(None) for a in range(ndim))
        hi = tuple(slice(1, None) if a == axis else slice(None) for a in range(ndim))
        capacity = _pair_capacities(image, spacing, lamb, sigma, axis)
        graph.add_edges(nodes[lo].reshape(-1), nodes[hi].reshape(-1), capacity, capacity)


def _pair_capacities(image: np.ndarray, spacing, lamb: float, sigma: float,
                     axis: int) -> np.ndarray:
    """The n-link capacities of the forward pairs along `axis`, flat in C order: lamb x
    `pairwise_weights`' weights without its padded last plane, each operation as there (np.diff's
    a[1:] - a[:-1] of the float64 image, -(d d) / (2 sigma^2), exp, / d_ij, x lamb; the x 1.0 of
    add_grid_edges' structure changes no bit), in place on one float64 buffer: no float64 copy
    of the image, no padded weights and no sliced copy of them (docs/benchmarks.md, "2D click:
    the engine's compute")."""
    lo = tuple(slice(None, -1) if a == axis else slice(None) for a in range(image.ndim))
    hi = tuple(slice(1, None) if a == axis else slice(None) for a in range(image.ndim))
    capacity = np.subtract(image[hi], image[lo], dtype=np.float64)
    np.multiply(capacity, capacity, out=capacity)
    np.negative(capacity, out=capacity)
    np.divide(capacity, 2.0 * sigma * sigma, out=capacity)
    np.exp(capacity, out=capacity)
    np.divide(capacity, float(spacing[axis]), out=capacity)
    np.multiply(lamb, capacity, out=capacity)
    return capacity.reshape(-1)


def _check_inputs(fg_prob: np.ndarray, image_norm: np.ndarray, spacing, lamb, sigma) -> None:
    if fg_prob.ndim not in (2, 3) or image_norm.shape != fg_prob.shape:
        raise ValueError(f"fg_prob {fg_prob.shape} and image_norm {image_norm.shape} must be "
                         "equal 2D or 3D shapes")
    if len(spacing) != fg_prob.ndim:
        raise ValueError(f"spacing needs {fg_prob.ndim} values, got {list(spacing)}")
    if not (np.isfinite(lamb) and np.isfinite(sigma)) or lamb < 0 or sigma <= 0:
        raise ValueError(f"need finite lamb >= 0 and sigma > 0, got lamb={lamb}, sigma={sigma}")
    # PyMaxflow never finishes on a NaN capacity (and holds the GIL meanwhile): a NaN that
    # slipped through upstream must fail here, loudly, rather than freeze the process
    if not (np.isfinite(fg_prob).all() and np.isfinite(image_norm).all()):
        raise ValueError("fg_prob and image_norm must be finite (NaN or infinity found)")


def _constrained_unaries(fg_prob: np.ndarray, hard_fg, hard_bg) -> tuple[np.ndarray, np.ndarray]:
    """unary_costs with hard constraints as HARD t-links (hard_fg wins where both are set)."""
    cost_fg, cost_bg = unary_costs(fg_prob)
    for hard, name in ((hard_fg, "hard_fg"), (hard_bg, "hard_bg")):
        if hard is not None and np.shape(hard) != fg_prob.shape:
            raise ValueError(f"{name} shape {np.shape(hard)} differs from {fg_prob.shape}")
    # in place (the costs are this call's own arrays), as np.where(hard, value, cost) wrote them
    if hard_bg is not None:
        where = np.asarray(hard_bg, dtype=bool)
        np.copyto(cost_fg, HARD, where=where)
        np.copyto(cost_bg, 0.0, where=where)
    if hard_fg is not None:
        where = np.asarray(hard_fg, dtype=bool)
        np.copyto(cost_bg, HARD, where=where)
        np.copyto(cost_fg, 0.0, where=where)
    return cost_fg, cost_bg


def graph_cut(fg_prob: np.ndarray, image_norm: np.ndarray, spacing: Sequence[float],
              hard_fg: np.ndarray | None = None, hard_bg: np.ndarray | None = None,
              lamb: float = 1.0, sigma: float = 0.1) -> np.ndarray:
    """Minimum-energy binary labelling (see module doc). Returns bool, True = foreground.

    fg_prob: float (Y, X) or (Z, Y, X), foreground probability per voxel.
    image_norm: float, same shape, intensities normalised to about [0, 1].
    spacing: mm per axis, same order as the array axes.
    hard_fg / hard_bg: optional bool masks forced to foreground / background (hard_fg wins
    where both are set).
    lamb: weight of the pairwise term (>= 0); sigma: intensity scale of eq. 2.
    """
    fg_prob = np.asarray(fg_prob)
    _check_inputs(fg_prob, np.asarray(image_norm), spacing, lamb, sigma)
    cost_fg, cost_bg = _constrained_unaries(fg_prob, hard_fg, hard_bg)
    graph = _graph(fg_prob.size, fg_prob.size * fg_prob.ndim if lamb > 0 else 0)
    nodes = graph.add_grid_nodes(fg_prob.shape)
    if lamb > 0:
        _add_grid_edges(graph, nodes, image_norm, spacing, lamb, sigma)
    # source side = foreground: cutting the source link (cost_bg) labels a node background
    graph.add_grid_tedges(nodes, np.ascontiguousarray(cost_bg), np.ascontiguousarray(cost_fg))
    graph.maxflow()
    return ~graph.get_grid_segments(nodes)


def _graph(nodes: int, edges: int):
    """An empty graph with room for `nodes` nodes and `edges` edges: without the estimate
    BK's arrays start small and are reallocated (copied) as they fill, a quarter of the
    construction time of a 3D cut. The same graph either way."""
    return maxflow.Graph[float](max(nodes, 1), max(edges, 1))


def _block_any(a: np.ndarray | None, factor: int) -> np.ndarray | None:
    return None if a is None else block_any(a, factor)


def _boundary_band(mask: np.ndarray, width: int) -> np.ndarray:
    """Voxels within `width` steps (6/4-neighbourhood) of a label change of `mask`."""
    edge = np.zeros(mask.shape, dtype=bool)
    for axis in range(mask.ndim):
        lo = [slice(None)] * mask.ndim
        hi = [slice(None)] * mask.ndim
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        change = mask[tuple(lo)] != mask[tuple(hi)]
        edge[tuple(lo)] |= change
        edge[tuple(hi)] |= change
    return ndimage.binary_dilation(edge, iterations=width) if width > 0 and edge.any() else edge


def banded_graph_cut(fg_prob: np.ndarray, image_norm: np.ndarray, spacing: Sequence[float],
                     hard_fg: np.ndarray | None = None, hard_bg: np.ndarray | None = None,
                     lamb: float = 1.0, sigma: float = 0.1, factor: int = 2,
                     band: int = 2) -> np.ndarray:
    """Coarse-to-fine approximation of `graph_cut` (banded graph cut, Lombaert et al. 2005).

    Why: BK maxflow time grows faster than the voxel count and dominates a 3D click (1 s on
    81 x 151 x 151). The cut is first solved with the last two axes (in-plane) reduced `factor`
    times, then re-solved at full resolution only on the voxels within `band` coarse voxels of
    the coarse boundary; the rest keeps its coarse label, which enters the band's graph as
    pairwise terms folded into the t-links (exact given those labels). Arguments and result as
    `graph_cut`; `factor` >= 2, `band` >= 1 coarse voxels.
    """
    fg_prob = np.asarray(fg_prob)
    _check_inputs(fg_prob, np.asarray(image_norm), spacing, lamb, sigma)
    coarse_spacing = [*spacing[:-2], *(float(s) * factor for s in spacing[-2:])]
    coarse_fg = _block_any(hard_fg, factor)
    coarse_bg = _block_any(hard_bg, factor)
    if coarse_fg is not None and coarse_bg is not None:
        coarse_bg &= ~coarse_fg
    coarse = graph_cut(block_mean(fg_prob, factor), block_mean(image_norm, factor),
                       coarse_spacing, coarse_fg, coarse_bg, lamb, sigma)
    labels = upsample_nearest(coarse, factor, fg_prob.shape)
    in_band = upsample_nearest(_boundary_band(coarse, band), factor, fg_prob.shape)
    if in_band.any():
        labels[in_band] = _band_cut(fg_prob, image_norm, spacing, hard_fg, hard_bg, lamb, sigma,
                                    labels, in_band)
    return labels


def _band_cut(fg_prob, image_norm, spacing, hard_fg, hard_bg, lamb, sigma,
              labels: np.ndarray, in_band: np.ndarray) -> np.ndarray:
    """Optimal labels of the `in_band` voxels (in C order) with every other voxel fixed to
    `labels`: band-band neighbours get n-links, a band voxel next to a fixed one pays the
    pairwise weight in the t-link of the label that differs from the fixed one."""
    band, fixed_fg = in_band.reshape(-1), labels.reshape(-1)
    # the band's own t-links only (elementwise, so the same values as over the whole array)
    only = [None if h is None else np.asarray(h, dtype=bool).reshape(-1)[band]
            for h in (hard_fg, hard_bg)]
    cost_fg, cost_bg = (np.array(c, dtype=np.float64) for c in _constrained_unaries(
        np.asarray(fg_prob).reshape(-1)[band], only[0], only[1]))
    image = np.asarray(image_norm, dtype=np.float64).reshape(-1)
    count = int(band.sum())
    ids = np.full(band.size, -1, dtype=np.int64)
    ids[band] = np.arange(count)
    graph = _graph(count, count * in_band.ndim if lamb > 0 else 0)
    graph.add_nodes(count)
    flat = np.arange(band.size).reshape(in_band.shape)
    for axis in range(in_band.ndim if lamb > 0 else 0):
        lo = tuple(slice(None, -1) if a == axis else slice(None) for a in range(in_band.ndim))
        hi = tuple(slice(1, None) if a == axis else slice(None) for a in range(in_band.ndim))
        touch = in_band[lo] | in_band[hi]  # neighbour pairs with at least one band voxel
        p_lo, p_hi = flat[lo][touch], flat[hi][touch]  # flat indices of the pair ends
        diff = image[p_hi] - image[p_lo]
        w = lamb * np.exp(-(diff * diff) / (2.0 * sigma * sigma)) / float(spacing[axis])
        both = band[p_lo] & band[p_hi]
        graph.add_edges(ids[p_lo[both]], ids[p_hi[both]], w[both], w[both])
        for mine, other in ((p_lo, p_hi), (p_hi, p_lo)):
            alone = ~both & band[mine]  # the other end is fixed; each voxel once per side
            nb_fg = fixed_fg[other[alone]]
            cost_bg[ids[mine[alone][nb_fg]]] += w[alone][nb_fg]
            cost_fg[ids[mine[alone][~nb_fg]]] += w[alone][~nb_fg]
    nodes = np.arange(count)
    graph.add_grid_tedges(nodes, cost_bg, cost_fg)
    graph.maxflow()
    return ~graph.get_grid_segments(nodes)
