"""RefineNet's crops and snap in the engine (issue 14 item 4): with `click_crop`, a click that
the head mask contradicts is answered by the served refiner in a window around the click
(refinenet_io.click_crop), not in the crop around the whole object, and the change stays local
to it; on a coarse object crop the answer is snapped to the slice's edges by a graph cut."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medseg.engine import refinenet_method
from medseg.models import refinenet_io


def _liver_like(shape=(400, 400)):
    """A large bright ellipse on a darker noisy background, the head mask 4 voxels short of
    it on its right-hand side (an under-segmented band, as the organ start leaves)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    truth = (yy - 200) ** 2 / 150 ** 2 + (xx - 200) ** 2 / 170 ** 2 <= 1
    image = np.where(truth, 120.0, 20.0) + rng.normal(0, 8, shape)
    head = truth & (xx < 360)
    return image.astype(np.float32), truth, head


def test_a_contradicted_click_is_answered_in_a_window_around_it():
    image, truth, head = _liver_like()
    spacing = (0.8, 0.8)
    click = np.array([[200, 364]])
    none = np.zeros((0, 2), np.int64)
    _, forward = refinenet_method.load_refiner()
    params = refinenet_method.RefineNetParams(click_crop=True)
    merged, changed, probability = refinenet_method.refine_slice(
        image, head, click, none, spacing, params, forward)
    crop = refinenet_io.click_crop(head, click, none, spacing)
    assert crop is not None and max(crop.shape) * 0.8 <= refinenet_io.CLICK_MIN_MM + 1
    window = np.zeros(head.shape, bool)
    window[crop.lo[0]:crop.lo[0] + crop.shape[0], crop.lo[1]:crop.lo[1] + crop.shape[1]] = True
    # the refiner's answer replaces the head only inside the window
    assert np.array_equal(probability[~window], head[~window].astype(np.float32))
    assert not np.array_equal(probability[window], head[window].astype(np.float32))
    assert changed.any() and not changed[~window].any()
    assert merged[200, 364] and not (head & ~merged).any()  # a fg click never removes here
    # the object crop (the old path) covers the whole object: its answer reaches farther
    _, _, whole = refinenet_method.refine_slice(
        image, head, click, none, spacing,
        refinenet_method.RefineNetParams(click_crop=False), forward)
    assert not np.array_equal(whole[~window], head[~window].astype(np.float32))


def test_an_empty_head_is_answered_in_the_object_crop():
    image, truth, _ = _liver_like()
    empty = np.zeros(truth.shape, bool)
    _, forward = refinenet_method.load_refiner()
    _, _, probability = refinenet_method.refine_slice(
        image, empty, np.array([[200, 200]]), np.zeros((0, 2), np.int64), (0.8, 0.8),
        refinenet_method.RefineNetParams(), forward)
    # no window: the object crop around the single seed (propagation_io's smallest, 32 mm =
    # 40 voxels), the empty head (0) outside it
    outside = np.ones(truth.shape, bool)
    outside[178:223, 178:223] = False
    assert not probability[outside].any()
    assert probability[200, 200] > 0.5


def test_snap_puts_a_coarse_answer_on_the_slice_edges():
    """A large object (the object crop ~4 slice voxels per grid voxel): the snapped answer
    follows the image's edge closer than the thresholded network answer; on a small object
    (a fine grid) nothing is snapped."""
    image, truth, _ = _liver_like()
    probability = np.clip(ndimage.gaussian_filter(truth.astype(np.float32), 6.0), 0, 1)
    probability = ndimage.shift(probability, (0, 3), order=1)  # the answer 3 voxels off
    answer = probability >= 0.5
    none = np.zeros(truth.shape, bool)
    crop = refinenet_io.Crop((-20, -20), (440, 440))
    params = refinenet_method.RefineNetParams()
    snapped = refinenet_method.snapped(image, probability, answer, crop, (0.8, 0.8), none, none,
                                       params)
    assert (snapped ^ truth).sum() < 0.5 * (answer ^ truth).sum()
    small = refinenet_io.Crop((150, 150), (96, 96))
    assert np.array_equal(refinenet_method.snapped(image, probability, answer, small,
                                                   (0.8, 0.8), none, none, params), answer)
