"""RefineNet's fine object crop (`crop_grow`, issue 14 item 4): where the usual object crop
puts a large organ on a grid coarser than the slice, a click can be answered in a crop with
less context around the organ's box, so its whole outline is seen on a finer grid; a small
object, or a large one on a coarse slice, keeps the usual crop bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.engine import refinenet_method
from medseg.models import propagation_io, refinenet_io

NONE = np.zeros((0, 2), np.int64)


def _ellipse(shape, centre, radii):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (yy - centre[0]) ** 2 / radii[0] ** 2 + (xx - centre[1]) ** 2 / radii[1] ** 2 <= 1


def _inside(crop, region) -> bool:
    lo = np.asarray(crop.lo)
    hi = lo + np.asarray(crop.shape) - 1
    points = np.argwhere(region)
    return bool(np.all(points.min(axis=0) >= lo) and np.all(points.max(axis=0) <= hi))


def test_crop_around_default_context_is_unchanged():
    organ = _ellipse((400, 400), (200, 200), (100, 120))
    assert propagation_io.crop_around(organ, (0.8, 0.8)) == propagation_io.crop_around(
        organ, (0.8, 0.8), propagation_io.GROW)
    tight = propagation_io.crop_around(organ, (0.8, 0.8), 0.0)
    # the box (241 voxels) plus MARGIN_MM on each side, nothing more
    assert max(tight.shape) == int(np.ceil((241 * 0.8 + 2 * propagation_io.MARGIN_MM) / 0.8))


def test_fine_crop_tightens_only_a_coarse_object_crop():
    spacing = (0.8, 0.8)
    organ = _ellipse((500, 500), (250, 250), (130, 150))  # ~240 mm: a liver at 0.8 mm
    usual = refinenet_io.refine_crop(organ, NONE, NONE, spacing)
    assert refinenet_io.grid_scale(usual) > refinenet_io.FINE_SCALE
    fine = refinenet_io.fine_crop(organ, NONE, NONE, spacing, 0.1)
    assert fine is not None
    assert refinenet_io.grid_scale(fine) < 0.8 * refinenet_io.grid_scale(usual)
    assert _inside(fine, organ)  # the whole outline is still in the crop
    # a seed outside the organ is kept inside the crop too
    seed = np.array([[250, 420]])
    assert _inside(refinenet_io.fine_crop(organ, seed, NONE, spacing, 0.0),
                   organ | (np.arange(500)[None, :] == 420) & (np.arange(500)[:, None] == 250))
    # a small object (an aorta: ~25 mm) or a large one on a 3 mm slice: the usual crop
    aorta = _ellipse((500, 500), (250, 250), (15, 15))
    assert refinenet_io.fine_crop(aorta, NONE, NONE, spacing, 0.1) is None
    coarse_slice = _ellipse((160, 160), (80, 80), (30, 35))  # a 210 mm liver at 3 mm
    assert refinenet_io.fine_crop(coarse_slice, NONE, NONE, (3.0, 3.0), 0.1) is None


def _liver_like(shape=(400, 400)):
    rng = np.random.default_rng(1)
    truth = _ellipse(shape, (200, 200), (150, 170))
    image = np.where(truth, 120.0, 20.0) + rng.normal(0, 8, shape)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return image.astype(np.float32), truth, truth & (xx < 360)


def test_a_click_with_crop_grow_is_answered_in_the_fine_crop():
    image, truth, head = _liver_like()
    spacing = (0.8, 0.8)
    click = np.array([[200, 364]])
    _, forward = refinenet_method.load_refiner()
    fine_params = refinenet_method.RefineNetParams(crop_grow=0.1)
    merged, changed, probability = refinenet_method.refine_slice(
        image, head, click, NONE, spacing, fine_params, forward)
    crop = refinenet_io.fine_crop(head, click, NONE, spacing, 0.1)
    assert crop is not None
    expected, _ = refinenet_io.predict_refinement(forward, image, head.astype(np.float32),
                                                  click, NONE, spacing, crop)
    assert np.array_equal(probability, expected)
    usual, _ = refinenet_io.predict_refinement(forward, image, head.astype(np.float32), click,
                                               NONE, spacing)
    assert not np.array_equal(probability, usual)
    assert changed.any() and merged[200, 364] and not (head & ~merged).any()  # fg: only adds
    # the default keeps the usual crop: the served click is unchanged
    _, _, default = refinenet_method.refine_slice(
        image, head, click, NONE, spacing, refinenet_method.RefineNetParams(), forward)
    assert np.array_equal(default, usual)


def test_crop_grow_changes_nothing_on_a_small_object():
    rng = np.random.default_rng(2)
    truth = _ellipse((200, 200), (100, 100), (14, 14))
    image = (np.where(truth, 150.0, 30.0) + rng.normal(0, 8, truth.shape)).astype(np.float32)
    head = truth & (np.arange(200)[None, :] < 108)
    click = np.array([[100, 111]])
    _, forward = refinenet_method.load_refiner()
    results = [refinenet_method.refine_slice(image, head, click, NONE, (0.8, 0.8),
                                             refinenet_method.RefineNetParams(crop_grow=g),
                                             forward)
               for g in (0.5, 0.0)]
    for a, b in zip(*results):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("value", [-0.1, 0.6])
def test_crop_grow_outside_its_range_is_refused(value):
    with pytest.raises(ValueError, match="crop_grow"):
        refinenet_method.RefineNetParams(crop_grow=value)
