"""The threshold tool (issue 17): a paint stroke that adds only the voxels within an intensity
window, on a synthetic image whose answer is known voxel by voxel."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.engine import manual_tools
from medseg.engine.method import SegmentContext
from medseg.engine.prompts import Box, Marks, Plane
from medseg.errors import InvalidPrompt

SHAPE = (3, 40, 40)


def _image() -> np.ndarray:
    # a vertical ramp: row y has intensity 10 * y (HU-like, -200 .. 190)
    return np.broadcast_to((np.arange(40) * 10.0 - 200.0)[None, :, None], SHAPE).copy()


def _run(kind: str, head: np.ndarray, **options) -> np.ndarray:
    image = _image()
    whole = Box((0, 0, 0), tuple(n - 1 for n in SHAPE))
    read = lambda array: (lambda box: array[box.slices_in(whole)].copy())
    stroke = np.array([[1, y, 20] for y in range(5, 36)])  # a vertical stroke on slice 1
    result = manual_tools.run(read(image), read(head), SHAPE, (3.0, 1.0, 1.0),
                              Marks(fg=stroke), Plane(0, 1), manual_tools.ManualParams(), None,
                              SegmentContext(kind=kind, options=options))
    out = head.copy()
    out[result.roi.slices_in(whole)] = result.mask
    return out


def test_threshold_paints_only_within_the_window_and_the_brush():
    head = np.zeros(SHAPE, bool)
    head[1, 0, 0] = True  # kept
    painted = _run("paint", head, radius_mm=3.0)
    windowed = _run("threshold", head, radius_mm=3.0, low=-50.0, high=50.0)
    image = _image()
    expected = head | (painted & (image >= -50) & (image <= 50))
    assert np.array_equal(windowed, expected)
    rows = np.unique(np.nonzero(windowed[1, :, 10:])[0])
    assert rows.min() == 15 and rows.max() == 25  # -50 HU at y=15, 50 HU at y=25
    assert not windowed[0].any() and not windowed[2].any()  # its slice only
    assert windowed[1, 0, 0]


def test_threshold_needs_an_ordered_window():
    head = np.zeros(SHAPE, bool)
    with pytest.raises(InvalidPrompt, match="exceeds"):
        _run("threshold", head, radius_mm=3.0, low=50.0, high=-50.0)
    with pytest.raises(InvalidPrompt, match="low"):
        _run("threshold", head, radius_mm=3.0)
