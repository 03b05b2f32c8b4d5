"""Does a foreground click land on an empty part of the image?

Padding and the outside of the field of view are stored as one exact value (0 around a
skull-stripped MR, -1024 / -3024 HU outside a CT's reconstruction circle, the lowest finite
value where an upload had NaN). A foreground click there has nothing to segment, yet every
method answered 200 with whatever the flat region gave: a 3D click on the background of the
shared brain MR marked 2 million voxels slice by slice. Tissue is never exactly constant
over a 3 x 3 neighbourhood (noise), so "a region of one exact value that reaches the edge of
the slice" tells padding from anatomy without an intensity threshold.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from medseg.engine.prompts import Box, Plane


def flat_region_reaches_edge(plane: np.ndarray, rows, cols) -> bool:
    """True when, for every pixel (rows[i], cols[i]) of the 2D `plane`, the 4-connected region
    of pixels holding exactly that pixel's value touches the plane's border (one labelling per
    distinct value, however many pixels)."""
    values = plane[rows, cols]
    for value in np.unique(values).tolist():
        labels, _ = ndimage.label(plane == value)
        border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        if not np.isin(labels[rows, cols][values == value], border[border > 0]).all():
            return False
    return True


def flat_neighbourhood(read_image: Callable[[Box], np.ndarray], shape, zyx: list[int],
                       axis: int) -> bool:
    """Whether the in-slice 3 x 3 neighbourhood of `zyx` (across `axis`) holds one exact
    value: the cheap test that ends the check on tissue, where noise always varies."""
    lo = [max(v - 1, 0) for v in zyx]
    hi = [min(v + 1, int(n) - 1) for v, n in zip(zyx, shape)]
    lo[axis] = hi[axis] = zyx[axis]
    near = read_image(Box(tuple(lo), tuple(hi)))
    return bool(np.all(near == near.flat[0]))


def on_empty_region(read_image: Callable[[Box], np.ndarray], shape, zyx, axis: int) -> bool:
    """Whether voxel `zyx` lies on padding, judged on its slice across `axis` (0 = z for a 3D
    click: the acquisition plane, where the field of view ends). Reads the 3 x 3
    neighbourhood first, which is all a click on tissue costs; the whole slice only when
    that neighbourhood is flat."""
    zyx = [int(v) for v in zyx]
    if not flat_neighbourhood(read_image, shape, zyx, axis):
        return False
    plane = np.squeeze(read_image(Plane(axis, zyx[axis]).whole(shape)), axis)
    row, col = (v for a, v in enumerate(zyx) if a != axis)
    return flat_region_reaches_edge(plane, [row], [col])


SAMPLE_MARKS = 16  # marks whose 3 x 3 neighbourhoods are read first: one on tissue ends the check


def all_on_empty_region(read_image: Callable[[Box], np.ndarray], shape, voxels,
                        axis: int) -> bool:
    """Whether EVERY voxel of `voxels` ((N, 3) [z, y, x]) lies on padding as `on_empty_region`
    judges one: its in-slice 3 x 3 neighbourhood is flat and that flat region reaches the edge
    of its slice across `axis`. A scribble that touches tissue anywhere is not. A few voxels'
    neighbourhoods are read first (noise ends it there on tissue); only when those are all
    flat is each slice the marks touch read once."""
    points = np.asarray(voxels, dtype=np.int64).reshape(-1, 3)
    if len(points) == 0:
        return False
    step = max(len(points) // SAMPLE_MARKS, 1)
    for zyx in points[::step][:SAMPLE_MARKS].tolist():
        if not flat_neighbourhood(read_image, shape, zyx, axis):
            return False
    in_plane = [a for a in range(3) if a != axis]
    for index in np.unique(points[:, axis]).tolist():
        on = points[points[:, axis] == index]
        plane = np.squeeze(read_image(Plane(axis, index).whole(shape)), axis)
        rows, cols = on[:, in_plane[0]], on[:, in_plane[1]]
        flat = ndimage.maximum_filter(plane, 3, mode="nearest") == \
            ndimage.minimum_filter(plane, 3, mode="nearest")
        if not flat[rows, cols].all() or not flat_region_reaches_edge(plane, rows, cols):
            return False
    return True


def box_on_empty_region(read_image: Callable[[Box], np.ndarray], shape, box: Box,
                        axis: int) -> bool:
    """Whether the whole box (inclusive corners) is padding: its centre lies on padding
    (`on_empty_region`, across `axis`) and every voxel of the box holds that same value. The
    box is read only when its centre is padding (never for a box on tissue)."""
    centre = [(lo + hi) // 2 for lo, hi in zip(box.lo, box.hi)]
    if not on_empty_region(read_image, shape, centre, axis):
        return False
    inside = read_image(box)
    return bool(np.all(inside == inside.flat[0]))
