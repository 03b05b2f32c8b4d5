"""engine/empty_region.py on synthetic volumes: marks wholly on flat padding that reaches the
slice's edge are "empty"; a flat object inside the image (a noiseless phantom), marks that
touch noise anywhere, and boxes reaching into tissue are not."""

from __future__ import annotations

import numpy as np

from medseg.engine.empty_region import all_on_empty_region, box_on_empty_region
from medseg.engine.prompts import Box


def volume() -> np.ndarray:
    """Zero padding around a noisy block (z 2-5, y 8-23, x 8-23) and a flat block of 7s
    (y 12-15, x 12-15) inside it: a phantom's exact-constant interior, not padding."""
    image = np.zeros((8, 32, 32), np.float32)
    image[2:6, 8:24, 8:24] = np.random.default_rng(0).normal(100, 5, (4, 16, 16))
    image[2:6, 12:16, 12:16] = 7.0
    return image


def reader(image):
    return lambda b: image[b.lo[0]:b.hi[0] + 1, b.lo[1]:b.hi[1] + 1, b.lo[2]:b.hi[2] + 1]


def test_marks_wholly_on_padding_are_empty_and_any_touch_of_tissue_is_not():
    image = volume()
    read = reader(image)
    on_padding = np.array([[3, 2, x] for x in range(2, 30)] + [[4, 28, 5]])
    assert all_on_empty_region(read, image.shape, on_padding, 0)
    touching = np.concatenate([on_padding, [[3, 10, 10]]])
    assert not all_on_empty_region(read, image.shape, touching, 0)
    flat_object = np.array([[3, 13, 13], [3, 14, 14]])  # inside the 7s: does not reach the edge
    assert not all_on_empty_region(read, image.shape, flat_object, 0)
    assert not all_on_empty_region(read, image.shape, np.zeros((0, 3), int), 0)


def test_a_box_is_empty_only_when_all_of_it_is_padding():
    image = volume()
    read = reader(image)
    assert box_on_empty_region(read, image.shape, Box((3, 0, 0), (3, 6, 31)), 0)
    assert box_on_empty_region(read, image.shape, Box((0, 0, 0), (7, 5, 31)), 0)  # 3D
    # centre on padding, reaching into the noisy block
    assert not box_on_empty_region(read, image.shape, Box((3, 0, 0), (3, 10, 31)), 0)
    assert not box_on_empty_region(read, image.shape, Box((3, 12, 12), (3, 15, 15)), 0)  # 7s
    assert not box_on_empty_region(read, image.shape, Box((3, 8, 8), (3, 23, 23)), 0)
