"""BoxCrop: the box grown and clipped, marks onto the grid, grid results back into the image."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.engine.bifseg import BoxCrop
from medseg.models.bifseg_io import BOX_MARGIN, INPUT_SIZE


def test_box_is_grown_by_the_margin_and_clipped():
    crop = BoxCrop.around((100, 120), (2, 30), (40, 90), (0.8, 0.8))
    assert crop.lo == (0, 30 - BOX_MARGIN) and crop.hi == (40 + BOX_MARGIN, 90 + BOX_MARGIN)
    assert crop.grid == INPUT_SIZE[2] and min(crop.grid_spacing) == 1.0
    assert crop.shape == (46, 71)


def test_grid_spacing_follows_the_crop_extent_in_mm():
    crop = BoxCrop.around((30, 200, 200), (10, 50, 50), (19, 149, 99), (3.0, 1.0, 1.0), margin=0)
    size = INPUT_SIZE[3]
    mm = np.array([3.0 * 9 / (size[0] - 1), 99 / (size[1] - 1), 49 / (size[2] - 1)])
    assert np.allclose(crop.grid_spacing, mm / mm.min())


def test_marks_map_onto_the_grid_and_back_exactly():
    crop = BoxCrop.around((100, 120), (20, 20), (59, 79), (1.0, 1.0), margin=0)
    fg = np.array([[20, 20], [59, 79], [40, 50]])
    grid = crop.marks_to_grid(np.vstack([fg, [[0, 0]]]))  # (0, 0) lies outside: dropped
    assert grid.sum() == 3 and grid[0, 0] and grid[-1, -1]
    assert crop.marks_to_grid([[0, 0]]) is None
    bg = np.array([[30, 30]])
    out = crop.to_image(np.ones(crop.grid, bool), (100, 120), fg_voxels=fg, bg_voxels=bg)
    assert out[20:60, 20:80].sum() == 40 * 60 - 1 and not out[30, 30]
    assert out.sum() == 40 * 60 - 1  # nothing outside the crop


def test_bad_boxes_are_refused():
    with pytest.raises(ValueError, match="outside"):
        BoxCrop.around((10, 10), (5, 5), (4, 9), (1.0, 1.0))
    with pytest.raises(ValueError, match="2 or 3"):
        BoxCrop.around((10, 10), (0, 0, 0), (4, 4, 4), (1.0, 1.0))
