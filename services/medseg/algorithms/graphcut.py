"""Binary graph cut (PyMaxflow) with the BIFSeg pairwise term, 2D or 3D, fully vectorised.

Energy minimised (BIFSeg, Wang et al. 2018, eq. 2):
    E(y) = sum_i phi_i(y_i) + lamb * sum_{(i,j) in N} [y_i != y_j] exp(-(X_i - X_j)^2 / (2 sigma^2)) / d_ij
with phi_i(fg) = -log p_i, phi_i(bg) = -log(1 - p_i), p clipped to [1e-4, 1 - 1e-4], N the
4-neighbourhood (2D) or 6-neighbourhood (3D) and d_ij the neighbour distance in mm. Dividing by
d_ij in mm keeps lamb's meaning across resolutions (unary ~ area / s^2, pairwise ~ (length / s)
/ s), so one default serves 0.98 mm and 3 mm grids alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import maxflow
import numpy as np

P_CLIP = 1e-4
HARD = 1e9  # "infinite" t-link: far above any finite energy a grid of this size can reach


def unary_costs(fg_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cost of labelling foreground, cost of labelling background) = (-log p, -log(1 - p))."""
    p = np.clip(np.asarray(fg_prob, dtype=np.float64), P_CLIP, 1.0 - P_CLIP)
    return -np.log(p), -np.log1p(-p)


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


def _structure(offset: tuple[int, ...]) -> np.ndarray:
    """3x3(x3) structure with a single 1 at `offset` from the centre (one edge direction)."""
    structure = np.zeros((3,) * len(offset), dtype=np.float64)
    structure[tuple(1 + o for o in offset)] = 1.0
    return structure


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
    image_norm = np.asarray(image_norm)
    if fg_prob.ndim not in (2, 3) or image_norm.shape != fg_prob.shape:
        raise ValueError(f"fg_prob {fg_prob.shape} and image_norm {image_norm.shape} must be "
                         "equal 2D or 3D shapes")
    if len(spacing) != fg_prob.ndim:
        raise ValueError(f"spacing needs {fg_prob.ndim} values, got {list(spacing)}")
    if lamb < 0 or sigma <= 0:
        raise ValueError(f"need lamb >= 0 and sigma > 0, got lamb={lamb}, sigma={sigma}")
    cost_fg, cost_bg = unary_costs(fg_prob)
    for hard, name in ((hard_fg, "hard_fg"), (hard_bg, "hard_bg")):
        if hard is not None and np.shape(hard) != fg_prob.shape:
            raise ValueError(f"{name} shape {np.shape(hard)} differs from {fg_prob.shape}")
    if hard_bg is not None:
        cost_fg = np.where(hard_bg, HARD, cost_fg)
        cost_bg = np.where(hard_bg, 0.0, cost_bg)
    if hard_fg is not None:
        cost_bg = np.where(hard_fg, HARD, cost_bg)
        cost_fg = np.where(hard_fg, 0.0, cost_fg)

    graph = maxflow.Graph[float]()
    nodes = graph.add_grid_nodes(fg_prob.shape)
    if lamb > 0:
        for offset, weights in pairwise_weights(image_norm, spacing, sigma):
            graph.add_grid_edges(nodes, weights=lamb * weights, structure=_structure(offset),
                                 symmetric=True)
    # source side = foreground: cutting the source link (cost_bg) labels a node background
    graph.add_grid_tedges(nodes, np.ascontiguousarray(cost_bg), np.ascontiguousarray(cost_fg))
    graph.maxflow()
    return ~graph.get_grid_segments(nodes)
