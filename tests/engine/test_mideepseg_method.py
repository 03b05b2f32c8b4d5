"""The `mideepseg` method on the engine alone: initial segmentation from interior margin points
(2D and 3D) with a tiny random ONNX model, refinement with IF-GC / plain GC, and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.engine.method import SegmentContext
from medseg.engine.mideepseg_method import METHOD
from medseg.engine.prompts import Box, Marks, Plane
from medseg.errors import InvalidPrompt, ModelUnavailable
from medseg.models.mideepseg_io import relaxed_box
from tests.models.tiny import tiny_models_dir

SHAPE = (20, 60, 70)
SPACING = (2.0, 0.8, 0.8)


@pytest.fixture(autouse=True)
def models(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MEDSEG_MODELS_DIR", str(tiny_models_dir(tmp_path_factory)))


@pytest.fixture(scope="module")
def volume():
    z, y, x = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    ball = ((z - 10) / 6.0) ** 2 + ((y - 30) / 15.0) ** 2 + ((x - 35) / 18.0) ** 2 < 1
    rng = np.random.default_rng(0)
    return (ball * 100.0 + rng.normal(0, 5, SHAPE)).astype(np.float32), ball


def reader(image):
    return lambda box: image[tuple(slice(lo, hi + 1) for lo, hi in zip(box.lo, box.hi))]


def run(image, marks, plane, kind, context=None, bbox=None, **params):
    method = METHOD
    return method.run(read_image=reader(image), read_mask=None, shape=SHAPE, spacing=SPACING,
                      marks=marks, plane=plane, params=method.parse_params(params),
                      current_mask_bbox=bbox, context=context or SegmentContext(kind=kind))


POINTS_2D = np.array([[10, 17, 35], [10, 43, 35], [10, 30, 19], [10, 30, 51]])
POINTS_3D = np.array([[5, 30, 35], [15, 30, 35], *POINTS_2D[:, :]])


def test_initial_2d_runs_the_model_on_the_relaxed_box(volume):
    image, _ = volume
    result = run(image, Marks(points=POINTS_2D), Plane(0, 10), "points")
    lo, hi = relaxed_box(POINTS_2D[:, 1:], SHAPE[1:])
    assert result.roi == Box((10, int(lo[0]), int(lo[1])), (10, int(hi[0]), int(hi[1])))
    assert result.mask.shape == result.probability.shape == (1, *(hi - lo + 1))
    assert np.array_equal(result.mask, result.probability > 0.5)
    assert result.info["model"] == "mideepseg-2d-egd@0.0.1" and "network" in result.timings


def test_initial_3d_and_restart_covers_the_old_mask(volume):
    image, _ = volume
    old = Box((0, 0, 0), (19, 5, 5))
    result = run(image, Marks(points=POINTS_3D), None, "points", bbox=old)
    assert result.roi.lo == (0, 0, 0)  # grown to clear the old mask
    assert np.array_equal(result.mask, result.probability > 0.5)
    assert not result.probability[:, :5, :5].any()  # outside the CNN box: cleared
    assert result.mask.shape == tuple(h - lo + 1 for lo, h in zip(result.roi.lo, result.roi.hi))


def test_too_few_points_and_missing_models_are_clear_errors(volume):
    image, _ = volume
    with pytest.raises(InvalidPrompt, match="at least 3 interior margin points"):
        run(image, Marks(points=POINTS_2D[:2]), Plane(0, 10), "points")
    with pytest.raises(ModelUnavailable, match="gaussian.*available: mideepseg-2d-egd"):
        run(image, Marks(points=POINTS_2D), Plane(0, 10), "points", encoding="gaussian")
    with pytest.raises(InvalidPrompt, match="refinement must be one of"):
        METHOD.parse_params({"refinement": "crf"})


def _refine_context(first, plane):
    interaction = {
        "method": "mideepseg",
        "plane": None if plane is None else {"axis": "zyx"[plane.axis], "index": plane.index},
    }
    return SegmentContext(
        kind="click",
        head_interaction=interaction,
        head_probability=lambda: (first.roi, first.probability),
    )


@pytest.mark.parametrize("refinement", ["if-gc", "gc"])
@pytest.mark.parametrize("plane", [Plane(0, 10), None])
def test_refinement_keeps_every_click_and_grows_the_roi(volume, refinement, plane):
    image, _ = volume
    points = POINTS_2D if plane else POINTS_3D
    first = run(image, Marks(points=points), plane, "points")
    fg = np.array([[10, 30, 35], [10, 5, 5]])  # the second lies outside the CNN box
    bg = np.array([[10, 55, 65]])
    marks = Marks(fg=fg, bg=bg, points=points)
    context = _refine_context(first, plane)
    result = run(image, marks, plane, "click", context=context, refinement=refinement)
    assert result.roi.lo[1:] == (0, 0) and result.roi.hi[1:] == (59, 69)  # clicks + 8, clipped
    local = lambda p: tuple(np.asarray(p) - np.asarray(result.roi.lo))
    for p in [*fg, *points]:
        assert result.mask[local(p)]
    assert not result.mask[local(bg[0])]
    # the CNN probability is carried (zero outside the CNN box) for the next refinement
    inner = tuple(
        slice(lo - r, hi - r + 1) for lo, hi, r in zip(first.roi.lo, first.roi.hi, result.roi.lo)
    )
    assert np.allclose(result.probability[inner], first.probability)
    assert result.probability.sum() == pytest.approx(first.probability.sum(), rel=1e-5)
    again = run(image, marks, plane, "click", context=context, refinement=refinement)
    assert np.array_equal(again.mask, result.mask)  # deterministic: replay is exact


def mask_reader(mask):
    return lambda box: mask[tuple(slice(lo, hi + 1) for lo, hi in zip(box.lo, box.hi))]


def test_refinement_refines_any_head_and_needs_something_to_refine(volume):
    image, ball = volume
    gg_head = SegmentContext(kind="click", head_interaction={"method": "geodesic-graphcut"})
    with pytest.raises(InvalidPrompt, match="nothing to refine here"):
        run(image, Marks(fg=np.array([[10, 30, 35]])), Plane(0, 10), "click", context=gg_head)
    # another method's mask (no stored probability) with its right third missing: a fg click
    # there adds to it, removes nothing and leaves everything far from the click alone
    head = ball.copy()
    head[:, :, 47:] = False
    click = np.array([[10, 30, 50]])
    nz = np.argwhere(head[10])
    bbox = Box((10, *nz.min(axis=0)), (10, *nz.max(axis=0)))
    result = METHOD.run(read_image=reader(image), read_mask=mask_reader(head), shape=SHAPE,
                        spacing=SPACING, marks=Marks(fg=click), plane=Plane(0, 10),
                        params=METHOD.parse_params({}), current_mask_bbox=bbox, context=gg_head)
    after = head.copy()
    after[tuple(slice(lo, hi + 1) for lo, hi in zip(result.roi.lo, result.roi.hi))] = result.mask
    assert not (head & ~after).any()  # nothing removed
    added = after & ~head
    assert added[10].sum() >= 0.5 * (ball[10] & ~head[10]).sum()  # the missing part comes back
    far = np.ones(SHAPE, dtype=bool)
    far[10, :, 38:] = False  # the click's side of the slice
    assert np.array_equal(after[far], head[far])  # bit for bit elsewhere
    # a head made on z=10 refined in 3D: its mask is the prior, no error
    first = run(image, Marks(points=POINTS_2D), Plane(0, 10), "points")
    mask3 = np.zeros(SHAPE, dtype=bool)
    mask3[tuple(slice(lo, hi + 1) for lo, hi in zip(first.roi.lo, first.roi.hi))] = first.mask
    nz = np.argwhere(mask3)  # the tiny random model may find nothing: then its map alone
    bbox = Box(tuple(nz.min(axis=0)), tuple(nz.max(axis=0))) if len(nz) else None
    again = METHOD.run(read_image=reader(image), read_mask=mask_reader(mask3), shape=SHAPE,
                       spacing=SPACING, marks=Marks(fg=np.array([[10, 30, 35]])), plane=None,
                       params=METHOD.parse_params({}), current_mask_bbox=bbox,
                       context=_refine_context(first, Plane(0, 10)))
    assert again.mask.shape == again.roi.shape and again.mask[tuple(
        np.array([10, 30, 35]) - np.array(again.roi.lo))]
