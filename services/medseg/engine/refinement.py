"""The refinement contract every click method follows (issue 13): a click never throws work away.

A click or scribble on a segment whose head revision has a mask *refines* that mask:

1. **Prior.** The head mask, and the probability stored with the head revision where it covers
   the voxel (a network's or the previous fusion's), become the prior of the unary term
   (`mask_prior`): a head-foreground voxel gets p0 >= 0.8, a head-background one p0 <= 0.4
   (asymmetric: the foreground is work done, the background mostly not yet segmented), and
   the stored probability says how confident beyond that. The method
   fuses p0 with the geodesic cue of the marks as MIDeepSeg's IF-GC does, R = (1 - a) p0 + a E,
   with a weight a that decays with the geodesic distance from the new marks (`fuse_prior`).
2. **New marks.** The marks that the head mask contradicts (`contradicted`): a foreground mark
   on a head-background voxel, a background mark on a head-foreground one. A mark the head
   already agrees with asks for nothing, so it changes nothing. This is a function of the head
   revision and the cumulative marks alone, so replay is exact without knowing which request
   brought which mark; an older mark that a later start (a box, an import) overrode is
   contradicted again and is honoured at the next click, as a hard constraint should be.
3. **Region of influence** (`local_merge`, progressive merging as in RITM / FocalClick): the
   connected components (full connectivity) of the *additions* (new & ~head) that hold a new
   foreground mark, and of the *removals* (head & ~new) that hold a new background mark, with
   the components of the same kind of change within `margin` voxels of them (so a fragment split
   off by one voxel still comes along). Everything else is the head mask, bit for bit: a
   foreground mark never removes a voxel, a background mark never adds one, and no click
   changes anything away from the error component it lands in. On a small structure the
   changed component can be the whole structure (a rim click with no edge between the
   structure and its like-tissue surroundings): so a click is heard by default over a fraction
   of the object's scale (`object_scale_mm`), and a method may keep only the changes within
   `within_reach` of the new marks (the ball of their depth in their error). Inside the error
   component the click lands in, as the marks' cue estimates it (`error_region`), a method may
   give the head a neutral prior, so that a click deep in a large error acts on all of it
   (geodesic-graphcut in 3D, docs/methods.md).
4. **ROI growth** (`open_faces`, `grow`): when the changed region touches a face of the region
   of interest that is not an image face, the ROI grows on that face and the method runs again
   (a bounded number of times), so no mask keeps a straight crop edge.

Arrays here are the method's (squeezed for 2D) ROI arrays, all of one shape.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medseg.algorithms.indices import argwhere
from medseg.algorithms.normalize import median_spread
from medseg.engine.prompts import Box, Plane

PRIOR_MARGIN = 0.3  # the head's foreground is worth at least p0 = 0.8 ...
PRIOR_MARGIN_BG = 0.1  # ... its background at most p0 = 0.4: the foreground is the work done,
# the background is mostly what nobody has segmented yet
PRIOR_DEFAULT = 0.9  # p0 of a head-fg voxel where no probability was stored (0.1 for bg)


def stored_in(roi: Box, stored: tuple[Box, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    """(values float32, known bool), ROI-shaped (z, y, x): the head revision's stored
    probability (its inclusive box and box-shaped array) where that box overlaps the ROI."""
    values = np.zeros(roi.shape, dtype=np.float32)
    known = np.zeros(roi.shape, dtype=bool)
    if stored is None:
        return values, known
    box, array = stored
    array = np.asarray(array, dtype=np.float32).reshape(box.shape)
    overlap = box.intersect(roi)
    if overlap is not None:
        values[overlap.slices_in(roi)] = array[overlap.slices_in(box)]
        known[overlap.slices_in(roi)] = True
    return values, known


def mask_prior(head: np.ndarray, probability: np.ndarray | None = None,
               known: np.ndarray | None = None, margin: float = PRIOR_MARGIN,
               default: float = PRIOR_DEFAULT, margin_bg: float | None = None) -> np.ndarray:
    """p0 (float32): the stored probability where `known`, `default` (1 - default) on head
    foreground (background) elsewhere, then kept on the head label's side of 0.5 by at least
    `margin` (`margin_bg` on the background side; `margin` when None), so the prior never
    contradicts the head mask (which clicks may have corrected against the network) but keeps
    the network's confidence beyond that."""
    head = np.asarray(head, dtype=bool)
    q = np.where(head, default, 1.0 - default).astype(np.float32)
    if probability is not None and known is not None:
        q = np.where(known, np.asarray(probability, dtype=np.float32), q)
    bg_margin = margin if margin_bg is None else margin_bg
    return np.where(head, np.maximum(q, 0.5 + margin),
                    np.minimum(q, 0.5 - bg_margin)).astype(np.float32)


def fuse_prior(prior: np.ndarray, cue: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """R = (1 - a) p0 + a cue with a = exp(-distance) (IF-GC eq. 5 and 7, the distance being
    the geodesic distance from the new marks): the marks decide near themselves, the head
    far from them."""
    alpha = np.exp(-np.asarray(distance, dtype=np.float64))
    fused = (1.0 - alpha) * np.asarray(prior, dtype=np.float64) + alpha * cue
    return fused.astype(np.float32)


def heard_box(heard: np.ndarray, margin: int) -> tuple[slice, ...] | None:
    """The bounding box of `heard` (the voxels whose fusion weight a is not zero) grown by
    `margin` voxels and by one more voxel, the layer where `local_cut` fixes the head; None
    when nothing is heard."""
    extent = _extent(heard)
    if extent is None:
        return None
    lo = np.maximum(extent[0] - margin - 1, 0)
    hi = np.minimum(extent[1] + margin + 2, heard.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _extent(a: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(lowest, highest) index per axis of the True voxels of `a`, None when there is none:
    from one projection per axis (argwhere lists every voxel, ~10x slower on a 3D window)."""
    lo, hi = [], []
    for axis in range(a.ndim):
        hit = np.flatnonzero(a.any(axis=tuple(k for k in range(a.ndim) if k != axis)))
        if len(hit) == 0:
            return None
        lo.append(hit[0])
        hi.append(hit[-1])
    return np.array(lo), np.array(hi)


def local_cut(cut, prob: np.ndarray, norm: np.ndarray, spacing, hard_fg: np.ndarray,
              hard_bg: np.ndarray, head: np.ndarray, box: tuple[slice, ...], lamb: float,
              sigma: float) -> np.ndarray:
    """The graph cut `cut` (graph_cut's arguments) run on `box` only, with the head mask as
    hard constraints on the box's outer layer of voxels (those not on the array's edge), the
    head everywhere outside: the full-array cut's labels inside the box whenever that cut keeps
    the head on the layer (an optimum given its own labels on the layer), which holds when the
    layer lies where the fusion weight is zero (methods.md, local refinement)."""
    head = np.asarray(head, dtype=bool)
    layer = np.ones([s.stop - s.start for s in box], dtype=bool)
    inner = tuple(slice(1 if s.start > 0 else 0, -1 if s.stop < n else None)
                  for s, n in zip(box, head.shape))
    layer[inner] = False
    sub_head = head[box]
    fg = (np.asarray(hard_fg, dtype=bool)[box] & ~layer) | (layer & sub_head)
    bg = (np.asarray(hard_bg, dtype=bool)[box] & ~layer) | (layer & ~sub_head)
    mask = head.copy()
    mask[box] = cut(prob[box], norm[box], spacing, fg, bg & ~fg, lamb, sigma)
    return mask


def contradicted(fg: np.ndarray, bg: np.ndarray, head: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(new fg, new bg): the marked voxels whose label the head mask contradicts."""
    head = np.asarray(head, dtype=bool)
    return np.asarray(fg, dtype=bool) & ~head, np.asarray(bg, dtype=bool) & head


def depth_mm(new_fg: np.ndarray, new_bg: np.ndarray, head: np.ndarray, spacing,
             limit: int = 16) -> float | None:
    """How deep the new marks sit in the error they correct: the largest distance (mm) from a
    new mark to the nearest voxel of the label it asks for in the head mask (a foreground mark
    to the head's foreground, a background mark to its background); None when there is none.
    A user (and the robot) clicks inside the error, so the error reaches at least this far
    around the mark: it sets how far the mark is heard. At most `limit` marks of each kind are
    measured (every k-th, in C order), so a long scribble costs what a few clicks cost."""
    head = np.asarray(head, dtype=bool)
    sp = np.asarray(spacing, dtype=float)
    best = None
    for marks, label in ((new_fg, True), (new_bg, False)):
        points = argwhere(marks)
        if len(points) == 0 or (head.any() if label else head.all()) != label:
            continue  # no voxel of the label asked for
        points = points[:: max(len(points) // limit, 1)][:limit]
        for p in points:
            d = _nearest_mm(head, label, p, sp)
            best = d if best is None else max(best, d)
    return best


def _nearest_mm(head: np.ndarray, label: bool, point: np.ndarray, sp: np.ndarray) -> float:
    """Distance (mm) from `point` to the nearest voxel where `head` is `label` (there is
    one): searched in a box around the point that doubles until the nearest voxel found lies
    within the ball the box holds, so it is the nearest of the whole array. That voxel is on the
    label's boundary (a step towards the point leaves the label), so this is the distance to
    the nearest boundary voxel, as the whole-array boundary scan measured it."""
    shape = np.asarray(head.shape)
    radius = 4.0 * float(sp.max())
    while True:
        half = np.ceil(radius / sp).astype(int)
        lo, hi = np.maximum(point - half, 0), np.minimum(point + half + 1, shape)
        crop = head[tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))]
        found = argwhere(crop if label else ~crop) + lo
        whole = bool((lo == 0).all() and (hi == shape).all())
        if len(found):
            d = float(np.sqrt((((found - point) * sp) ** 2).sum(axis=1)).min())
            if d <= radius or whole:
                return d
        radius *= 2


def _touching(change: np.ndarray, marks: np.ndarray, margin: int) -> np.ndarray:
    """The connected components (full connectivity) of `change` that hold a mark, and the
    components of `change` within `margin` voxels of those."""
    if not (change & marks).any():
        return np.zeros(change.shape, dtype=bool)
    # all of it happens inside the change's bounding box (its components, and the dilation's
    # steps between them, which never need to leave a box): the same region at the cost of
    # the change, not of the window (labelling and dilating a 3D window was ~40 ms a click)
    extent = _extent(change)
    assert extent is not None
    box = tuple(slice(int(a), int(b) + 1) for a, b in zip(*extent))
    out = np.zeros(change.shape, dtype=bool)
    change, marks = change[box], marks[box]
    structure = ndimage.generate_binary_structure(change.ndim, change.ndim)
    labels, _ = ndimage.label(change, structure)
    hit = np.unique(labels[marks & change])
    region = np.isin(labels, hit[hit > 0])
    if margin > 0:  # whole components of the change within `margin` voxels of those
        near = ndimage.binary_dilation(region, structure, iterations=margin) & change
        hit = np.unique(labels[near])
        region = np.isin(labels, hit[hit > 0])
    out[box] = region
    return out


def object_scale_mm(head: np.ndarray, spacing) -> float:
    """The head's equivalent radius (mm): of the disc (2D arrays) or ball (3D) of its area or
    volume; infinite for an empty head (no object yet, nothing to bound). A click's reach is
    bounded by the object's scale (module doc, item 3): on a small structure the default reach
    was the whole structure. The methods bound a background mark's reach by it everywhere and
    a foreground mark's in 2D only: in 3D an undersegmented head's ball underestimates how far
    a foreground click must grow (robustness benchmark: 3D bifseg box + mideepseg clicks
    Dice@10 0.749 with the bound, 0.788 without; no 3D collapse either way), while in 2D the
    bound stops leaks beside small structures (2D held-out volumes gg click collapses 0.6 % with
    it, 1.9 % without)."""
    sp = [float(s) for s in spacing]
    size = float(np.count_nonzero(head)) * float(np.prod(sp))
    if size == 0:
        return float("inf")
    if np.ndim(head) == 2:
        return float(np.sqrt(size / np.pi))
    return float((3.0 * size / (4.0 * np.pi)) ** (1.0 / 3.0))


def reach_mm(floor_mm: float, head: np.ndarray, spacing, new_fg: np.ndarray, depth: float,
             scale_fraction: float, depth_factor: float, most_mm: float) -> float:
    """mm of homogeneous path over which a refinement's new marks are heard (both methods'
    fusion weight falls to 1/e over it): `floor_mm`, bounded by `scale_fraction` x the object's
    scale (`object_scale_mm`: for background marks, and foreground ones in 2D), raised to
    `depth_factor` x the marks' depth in their error (and 1 mm), at most `most_mm`."""
    if not new_fg.any() or head.ndim == 2:  # see object_scale_mm: measured
        floor_mm = min(floor_mm, scale_fraction * object_scale_mm(head, spacing))
    return min(max(floor_mm, depth_factor * depth, 1.0), most_mm)


def within_reach(new_fg: np.ndarray, new_bg: np.ndarray, spacing, depth: float,
                 factor: float, margin_mm: float) -> np.ndarray | None:
    """The voxels within `factor` x `depth` + `margin_mm` mm (Euclidean) of a new mark, or None
    when there is no new mark. `depth` is the new marks' depth in their error (`depth_mm`):
    the error a click lands in holds about the ball of that radius around it, so a click may
    change about that much around itself and not the whole object (module doc, item 3)."""
    marks = np.asarray(new_fg, dtype=bool) | np.asarray(new_bg, dtype=bool)
    if not marks.any():
        return None
    distance = ndimage.distance_transform_edt(~marks, sampling=[float(s) for s in spacing])
    return distance <= factor * depth + margin_mm


def unlike_part(norm: np.ndarray, head: np.ndarray, new_bg: np.ndarray, spacing,
                smooth_mm: float, spread: float) -> np.ndarray | None:
    """The head's part like the tissue that background marks `new_bg` sit on (bool, the
    connected components, full connectivity, of head voxels closer in smoothed intensity to
    the marks' than to the head's median, that hold a mark), or None when that tissue is like
    the object's: the marks' intensity (`norm` smoothed by a Gaussian of `smooth_mm`) within
    `spread` robust std (1.4826 x MAD) of the head's median. A background click removes what
    the head wrongly holds: on tissue that is an outlier of the object (a kidney's sinus fat
    that a box start filled, a bright vessel next to a pancreas) that part is the error; a
    click on tissue like the object's (a leak into like tissue) has no such part
    (docs/benchmarks.md, 2D box starts on held-out organs)."""
    extent = _extent(head | new_bg)
    if extent is None or not head.any() or not new_bg.any():
        return None
    # everything happens on the bounding box of head and marks (`like` lies in it), the image
    # smoothed on that box grown by the Gaussian's reach: the same smoothed values in the box
    # (past the box's margin only the array's own edges, with the same reflection), so the
    # same part at the cost of the object, not of the ROI (1.1 -> 0.5 ms on the latency
    # benchmark's 260x255 refinement ROI; docs/benchmarks.md, "2D click: the engine's compute")
    box = tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(*extent))
    smooth = smoothed_in(norm, box, [smooth_mm / s for s in spacing]) if smooth_mm > 0 \
        else norm[box]
    head, new_bg = head[box], new_bg[box]
    median, robust = median_spread(smooth[head])
    clicked = float(smooth[new_bg].mean())
    if abs(clicked - median) <= spread * robust:
        return None
    like = (head & (np.abs(smooth - clicked) < np.abs(smooth - median))) | new_bg
    labels, _ = ndimage.label(like, ndimage.generate_binary_structure(like.ndim, like.ndim))
    hit = np.unique(labels[new_bg])
    part = np.zeros(norm.shape, dtype=bool)
    part[box] = np.isin(labels, hit[hit > 0])
    return part


def smoothed_in(image: np.ndarray, box: tuple[slice, ...], widths) -> np.ndarray:
    """ndimage.gaussian_filter(image, widths)[box], bit for bit, from the box grown by the
    filter's reach only: each output voxel is the same weighted sum of the same input voxels
    (scipy's kernel radius with truncate=4 is round(4 w) <= ceil(4 w) + 1 voxels; where the
    grown box meets the array's edge the reflection is the array's own)."""
    reach = [int(np.ceil(4.0 * float(w))) + 1 for w in widths]
    grown = tuple(slice(max(b.start - r, 0), min(b.stop + r, n))
                  for b, r, n in zip(box, reach, image.shape))
    inner = tuple(slice(b.start - g.start, b.stop - g.start) for b, g in zip(box, grown))
    return ndimage.gaussian_filter(image[grown], widths)[inner]


def unlike_width_mm(norm: np.ndarray, head: np.ndarray, new_bg: np.ndarray, spacing,
                    smooth_mm: float, spread: float) -> float:
    """How deep (mm) 2D background marks can be in their error, from the image: infinite when
    the clicked tissue is like the object's, else the equivalent radius of `unlike_part`. Its
    extent bounds the click's depth as well as its distance to the head's background does."""
    part = unlike_part(norm, head, new_bg, spacing, smooth_mm, spread)
    if part is None:
        return float("inf")
    return float(np.sqrt(np.count_nonzero(part) * float(np.prod(spacing)) / np.pi))


def error_region(cue: np.ndarray, head: np.ndarray, new_fg: np.ndarray, new_bg: np.ndarray,
                 within: np.ndarray | None = None) -> np.ndarray:
    """The error component each new mark lands in, estimated from the marks' own cue (progressive
    merging's region of influence, module doc item 3): the connected component (full
    connectivity), holding a new foreground mark, of the head-background voxels where the cue
    says foreground (> 0.5), and the one, holding a new background mark, of the head-foreground
    voxels where it says background (< 0.5); only voxels of `within` (`within_reach`) count.
    A click lands inside its error and the cue splits the error from the rest (an edge, or
    half-way to the other label's marks), so this is where the click, not the head, should
    decide."""
    head = np.asarray(head, dtype=bool)
    cue = np.asarray(cue)
    allowed = np.ones(head.shape, dtype=bool) if within is None else np.asarray(within, bool)
    fg_side = ~head & (cue > 0.5) & allowed
    bg_side = head & (cue < 0.5) & allowed
    return (_touching(fg_side, np.asarray(new_fg, dtype=bool), 0)
            | _touching(bg_side, np.asarray(new_bg, dtype=bool), 0))


def local_merge(head: np.ndarray, new: np.ndarray, new_fg: np.ndarray, new_bg: np.ndarray,
                margin: int = 1, within: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(merged mask, changed region): the head mask with the additions of `new` that the new
    foreground marks' components hold and the removals that the new background marks'
    components hold (module doc, item 3); with `within` (`within_reach`), only the changes
    there count."""
    head, new = np.asarray(head, dtype=bool), np.asarray(new, dtype=bool)
    if within is not None:
        new = np.where(within, new, head)
    added = _touching(new & ~head, np.asarray(new_fg, dtype=bool), margin)
    removed = _touching(head & ~new, np.asarray(new_bg, dtype=bool), margin)
    return (head | added) & ~removed, added | removed


def open_faces(region: np.ndarray, roi: Box, shape, plane: Plane | None
               ) -> list[tuple[int, int]]:
    """(axis, side) of each ROI face that `region` (ROI-shaped (z, y, x)) touches and that is
    not a face of the image; side -1 = low face, +1 = high face. None along a 2D plane's axis."""
    faces = []
    for axis in range(3):
        if plane is not None and axis == plane.axis:
            continue
        for side, index, edge in ((-1, 0, roi.lo[axis] > 0),
                                  (1, region.shape[axis] - 1, roi.hi[axis] < shape[axis] - 1)):
            if edge and np.take(region, index, axis=axis).any():
                faces.append((axis, side))
    return faces


def grow(roi: Box, faces: list[tuple[int, int]], steps, shape) -> Box:
    """The ROI moved out by `steps[axis]` voxels on each of `faces`, within the image."""
    lo, hi = list(roi.lo), list(roi.hi)
    for axis, side in faces:
        if side < 0:
            lo[axis] = max(lo[axis] - int(steps[axis]), 0)
        else:
            hi[axis] = min(hi[axis] + int(steps[axis]), int(shape[axis]) - 1)
    return Box(tuple(lo), tuple(hi))
