"""Editing an existing mask (issue 14; the deep-editing-tools paper, Zhou et al.): the manual
tools' geometry, the editing network's edit channels, the simulated edits it is trained on, and
the monotone boundary adjustment. Pure NumPy/SciPy on 2D (Y, X) or 3D (Z, Y, X) arrays;
spacing in mm, one value per axis.

Edit channels (paper sec. 2.4): the selection channel and the brush channel hold +1 on the
voxels of "add" marks (under-segmentation) and -1 on "remove" marks (over-segmentation), each
mark grown by a two-voxel dilation (`MARK_DILATION` steps of the cross-shaped structuring
element: a diamond of radius 2), 0 elsewhere; the adjustment channel holds the scalar K on every
voxel. Where an add and a remove mark overlap after dilation, the later kind (remove) wins.

Simulated edits (paper sec. 2.3), from an imperfect mask `auto` and the reference `gt`:
- selection: the error `gt ^ auto` split into under- (gt & ~auto) and over-segmentation
  (auto & ~gt) connected components; each large one (>= `min_voxels`) is eroded repeatedly
  until one more erosion would empty it, and one voxel of that core is the click (+1 under,
  -1 over);
- brush: on the axis-0 slice with the largest 2D error component, the two points of that
  component farthest apart (double sweep of geodesic distances inside it) and the shortest path
  between them inside the component; short strokes are ignored;
- adjustment: K = (V_over - V_under) / V_gt, truncated to +-0.5 in training. The service's
  `adjust` amount is relative to the mask's own size and grows it when positive: the K of a
  mask is amount = -K / (1 + K).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.sparse import csgraph, csr_matrix

from medseg.algorithms.geodesic import geodesic_distance
from medseg.algorithms.normalize import normalize_percentiles

MARK_DILATION = 2  # voxels, paper sec. 2.4
K_TRAIN_LIMIT = 0.5  # |K| at most this in training (paper sec. 2.4)
MIN_SELECT_VOXELS = 20  # smaller error components get no selection click (paper: "large")
MIN_STROKE_VOXELS = 5  # shorter simulated strokes are ignored (paper: "short strokes")


# -- manual tools ------------------------------------------------------------------------------
def stroke_footprint(centre: np.ndarray, spacing: Sequence[float], radius_mm: float) -> np.ndarray:
    """Bool, shape of `centre`: the voxels whose centre lies within `radius_mm` of a voxel of
    the stroke's centre line `centre` (bool, gap-free, e.g. a rasterised polyline). On a 2D
    array a disc, on a 3D array a ball per stroke voxel. The stroke voxels themselves always
    belong (a radius below half a voxel paints a one-voxel line)."""
    centre = np.asarray(centre, dtype=bool)
    if not centre.any():
        return centre.copy()
    distance = ndimage.distance_transform_edt(~centre, sampling=[float(s) for s in spacing])
    return np.asarray(distance <= radius_mm, dtype=bool) | centre


def closed_region(mask: np.ndarray, seed: Sequence[int]) -> np.ndarray | None:
    """The closed 2D region of background around `seed` that a flood fill would paint: the
    4-connected component of `~mask` (a (Y, X) slice) holding the seed, or None when that
    component reaches the slice's edge (the region is not closed: a fill would flood the
    slice) or when the seed is on the mask already."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"fill works on a 2D slice, got shape {mask.shape}")
    y, x = (int(v) for v in seed)
    if mask[y, x]:
        return None
    labels, _ = ndimage.label(~mask)  # 4-connectivity: a diagonal gap does not leak
    region = labels == labels[y, x]
    edge = np.zeros(mask.shape, dtype=bool)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    if (region & edge).any():
        return None
    return region


# -- edit channels (the network's input) -------------------------------------------------------
@dataclass
class Edits:
    """One sample's edits on an array's grid: (N, ndim) int voxel indices, and the scalar K."""

    select_add: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    select_remove: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    brush_add: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    brush_remove: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    k: float = 0.0

    def kinds(self) -> set[str]:
        out = set()
        if len(self.select_add) or len(self.select_remove):
            out.add("select")
        if len(self.brush_add) or len(self.brush_remove):
            out.add("brush")
        if self.k != 0.0:
            out.add("adjust")
        return out


def _rasterise(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    points = np.asarray(points, dtype=np.int64).reshape(-1, len(shape))
    inside = np.all((points >= 0) & (points < np.asarray(shape)), axis=1)
    if inside.any():
        out[tuple(points[inside].T)] = True
    return out


def mark_channel(add: np.ndarray, remove: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """float32 `shape`: +1 on the add marks, -1 on the remove marks, each dilated by
    MARK_DILATION voxels (cross-shaped steps), 0 elsewhere; remove wins where both reach."""
    structure = ndimage.generate_binary_structure(len(shape), 1)
    channel = np.zeros(shape, dtype=np.float32)
    for points, value in ((add, 1.0), (remove, -1.0)):
        marks = _rasterise(points, shape)
        if marks.any():
            grown = ndimage.binary_dilation(marks, structure, iterations=MARK_DILATION)
            channel[grown] = value
    return channel


def edit_channels(edits: Edits, shape: tuple[int, ...]) -> np.ndarray:
    """(3, *shape) float32: selection channel, brush channel, adjustment channel (K)."""
    return np.stack([mark_channel(edits.select_add, edits.select_remove, shape),
                     mark_channel(edits.brush_add, edits.brush_remove, shape),
                     np.full(shape, edits.k, dtype=np.float32)]).astype(np.float32)


# -- simulated edits (training) ----------------------------------------------------------------
def core_voxel(component: np.ndarray) -> np.ndarray:
    """A voxel of the core of a non-empty component: erode (full connectivity) until one more
    erosion would leave nothing, then the core voxel nearest the core's centroid."""
    core = np.asarray(component, dtype=bool)
    structure = ndimage.generate_binary_structure(core.ndim, core.ndim)
    while True:
        eroded = ndimage.binary_erosion(core, structure)
        if not eroded.any():
            break
        core = eroded
    points = np.argwhere(core)
    centre = points.mean(axis=0)
    return points[np.argmin(((points - centre) ** 2).sum(axis=1))]


def error_components(auto: np.ndarray, gt: np.ndarray, min_voxels: int
                     ) -> list[tuple[np.ndarray, int]]:
    """(component bool, sign) of every error component of at least `min_voxels`, largest
    first: sign +1 for under-segmentation (gt & ~auto), -1 for over (auto & ~gt). Full
    connectivity."""
    auto, gt = np.asarray(auto, dtype=bool), np.asarray(gt, dtype=bool)
    structure = ndimage.generate_binary_structure(auto.ndim, auto.ndim)
    found: list[tuple[np.ndarray, int, int]] = []
    for error, sign in ((gt & ~auto, 1), (auto & ~gt, -1)):
        labels, n = ndimage.label(error, structure)
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel())
        for value in np.flatnonzero(sizes >= min_voxels):
            if value > 0:
                found.append((labels == value, sign, int(sizes[value])))
    found.sort(key=lambda item: -item[2])
    return [(component, sign) for component, sign, _ in found]


def simulate_selection(auto: np.ndarray, gt: np.ndarray, min_voxels: int = MIN_SELECT_VOXELS,
                       limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(add points, remove points), (N, ndim) int: one core voxel of each large error component
    (the largest `limit` when given)."""
    add: list[np.ndarray] = []
    remove: list[np.ndarray] = []
    for component, sign in error_components(auto, gt, min_voxels)[:limit]:
        (add if sign > 0 else remove).append(core_voxel(component))
    as_array = lambda pts: np.asarray(pts, np.int64).reshape(-1, np.ndim(auto))
    return as_array(add), as_array(remove)


def _path_graph(region: np.ndarray) -> tuple[csr_matrix, np.ndarray]:
    """The 8/26-neighbour graph of a region's voxels (edge weight = step length in voxels)."""
    points = np.argwhere(region)
    index = -np.ones(region.shape, dtype=np.int64)
    index[tuple(points.T)] = np.arange(len(points))
    rows, cols, weights = [], [], []
    for offset in np.ndindex(*([3] * region.ndim)):
        step = np.asarray(offset) - 1
        if not step.any():
            continue
        target = points + step
        ok = np.all((target >= 0) & (target < np.asarray(region.shape)), axis=1)
        j = np.full(len(points), -1, dtype=np.int64)
        j[ok] = index[tuple(target[ok].T)]
        keep = j >= 0
        rows.append(np.flatnonzero(keep))
        cols.append(j[keep])
        weights.append(np.full(int(keep.sum()), float(np.sqrt((step ** 2).sum()))))
    n = len(points)
    graph = csr_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                       shape=(n, n))
    return graph, points


def longest_path(region: np.ndarray) -> np.ndarray:
    """(N, ndim) int: the shortest path inside `region` (bool, one connected component)
    between its two points farthest apart along paths inside it (double sweep: the farthest
    point from any voxel, then the farthest from that one), in order from end to end."""
    graph, points = _path_graph(np.asarray(region, dtype=bool))
    if len(points) == 1:
        return points
    first = csgraph.dijkstra(graph, indices=0)
    a = int(np.argmax(np.where(np.isfinite(first), first, -1)))
    dist, predecessors = csgraph.dijkstra(graph, indices=a, return_predecessors=True)
    b = int(np.argmax(np.where(np.isfinite(dist), dist, -1)))
    path = [b]
    while path[-1] != a:
        path.append(int(predecessors[path[-1]]))
    return points[path[::-1]]


def simulate_brush(auto: np.ndarray, gt: np.ndarray, min_voxels: int = MIN_STROKE_VOXELS
                   ) -> tuple[np.ndarray, int] | None:
    """(stroke (N, ndim) int, sign) on the axis-0 slice (the whole array when 2D) holding the
    largest 2D error component: the longest shortest path inside it; sign +1 add (under-
    segmentation), -1 remove. None when no stroke of at least `min_voxels` voxels exists."""
    auto, gt = np.asarray(auto, dtype=bool), np.asarray(gt, dtype=bool)
    best: tuple[int, int, np.ndarray, int] | None = None  # (size, slice, component, sign)
    slices = [None] if auto.ndim == 2 else range(auto.shape[0])
    for k in slices:
        a = auto if k is None else auto[k]
        g = gt if k is None else gt[k]
        for component, sign in error_components(a, g, 1)[:1]:
            size = int(component.sum())
            if best is None or size > best[0]:
                best = (size, -1 if k is None else int(k), component, sign)
    if best is None:
        return None
    _, k, component, sign = best
    stroke = longest_path(component)
    if len(stroke) < min_voxels:
        return None
    if k >= 0:
        stroke = np.column_stack([np.full(len(stroke), k), stroke])
    return stroke.astype(np.int64), sign


def adjustment_k(auto: np.ndarray, gt: np.ndarray, limit: float | None = K_TRAIN_LIMIT) -> float:
    """K = (V_over - V_under) / V_gt, truncated to +-limit (None: not truncated); 0 for an
    empty reference."""
    auto, gt = np.asarray(auto, dtype=bool), np.asarray(gt, dtype=bool)
    v_gt = int(gt.sum())
    if v_gt == 0:
        return 0.0
    k = (int((auto & ~gt).sum()) - int((gt & ~auto).sum())) / v_gt
    return float(k if limit is None else np.clip(k, -limit, limit))


def simulate_edits(auto: np.ndarray, gt: np.ndarray, kinds: Sequence[str],
                   rng: np.random.Generator | None = None, max_clicks: int = 2) -> Edits:
    """The edits of the given kinds ("select", "brush", "adjust") that a user would make on
    `auto` to reach `gt`: at most `max_clicks` selection clicks (the largest components), one
    brush stroke, K truncated to +-0.5. Only a few, as the paper warns against training on
    many (the network must not come to rely on them)."""
    ndim = np.ndim(auto)
    empty = np.zeros((0, ndim), np.int64)
    edits = Edits(empty, empty, empty, empty, 0.0)
    if "select" in kinds:
        edits.select_add, edits.select_remove = simulate_selection(auto, gt, limit=max_clicks)
    if "brush" in kinds:
        found = simulate_brush(auto, gt)
        if found is not None:
            stroke, sign = found
            if sign > 0:
                edits.brush_add = stroke
            else:
                edits.brush_remove = stroke
    if "adjust" in kinds:
        edits.k = adjustment_k(auto, gt)
    return edits


# -- adjustment ----------------------------------------------------------------------------------
def boundary_order(image: np.ndarray, mask: np.ndarray, spacing: Sequence[float],
                   lamb: float = 0.5) -> np.ndarray:
    """float32, shape of `mask`: a signed geodesic distance to the mask's boundary, negative
    inside (minus the distance from the background), positive outside (the distance from the
    mask), on the ROI's intensities normalised to [0, 1] with weight `lamb` (0 Euclidean mm,
    1 purely intensity-weighted): the order in which `adjust` adds (removes) voxels, so the
    boundary moves first along similar tissue and is held by edges."""
    mask = np.asarray(mask, dtype=bool)
    norm = normalize_percentiles(image)
    # mm-scale the intensity term so a unit step across an edge costs about a voxel's size
    outside = geodesic_distance(norm, mask, spacing, lamb) if mask.any() else \
        np.full(mask.shape, np.inf, np.float32)
    inside = geodesic_distance(norm, ~mask, spacing, lamb) if (~mask).any() else \
        np.full(mask.shape, np.inf, np.float32)
    return np.where(mask, -inside, outside).astype(np.float32)


def adjust(order: np.ndarray, head: np.ndarray, amount: float) -> np.ndarray:
    """The mask grown (amount > 0) or shrunk (amount < 0) to about (1 + amount) x its voxel
    count: the voxels that come first in `order` (boundary_order), ties broken by position.
    Monotone by construction: the masks of all amounts are nested, so a larger amount never
    gives a smaller mask. amount <= -1 empties it; an amount beyond what `order` can reach
    (infinite distances) takes every reachable voxel."""
    head = np.asarray(head, dtype=bool)
    count = int(head.sum())
    target = int(round(count * (1.0 + float(amount))))
    finite = np.isfinite(order)
    target = int(np.clip(target, 0, int(finite.sum())))
    flat = np.where(finite, order, np.inf).ravel()
    chosen = np.argsort(flat, kind="stable")[:target]
    out = np.zeros(head.size, dtype=bool)
    out[chosen] = True
    return out.reshape(head.shape)
