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


def flat_region_reaches_edge(plane: np.ndarray, row: int, col: int) -> bool:
    """True when the 4-connected region of pixels holding exactly the value of (row, col) on
    the 2D `plane` touches the plane's border."""
    labels, _ = ndimage.label(plane == plane[row, col])
    region = labels == labels[row, col]
    return bool(region[0].any() or region[-1].any() or region[:, 0].any()
                or region[:, -1].any())


def on_empty_region(read_image: Callable[[Box], np.ndarray], shape, zyx, axis: int) -> bool:
    """Whether voxel `zyx` lies on padding, judged on its slice across `axis` (0 = z for a 3D
    click: the acquisition plane, where the field of view ends). Reads the 3 x 3
    neighbourhood first, which is all a click on tissue costs; the whole slice only when
    that neighbourhood is flat."""
    zyx = [int(v) for v in zyx]
    lo = [max(v - 1, 0) for v in zyx]
    hi = [min(v + 1, int(n) - 1) for v, n in zip(zyx, shape)]
    lo[axis] = hi[axis] = zyx[axis]
    near = read_image(Box(tuple(lo), tuple(hi)))
    if not np.all(near == near.flat[0]):
        return False
    plane = np.squeeze(read_image(Plane(axis, zyx[axis]).whole(shape)), axis)
    row, col = (v for a, v in enumerate(zyx) if a != axis)
    return flat_region_reaches_edge(plane, row, col)
