"""Issue 13 item 3: a refinement click works on a window around its new marks (their reach)
and cuts only the box where their fusion weight is not zero, the head mask fixed around it
(engine/refinement.py `local_cut`, graphcut_method `_refine`). The fast path must make the
change the whole-ROI refinement makes, within a stated tolerance: real ct_3mm CT, real
GeodisTK and PyMaxflow, foreground clicks in missing chunks and background clicks on touching
neighbours, 3D and 2D."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from medseg.algorithms.graphcut import graph_cut
from medseg.engine.graphcut_method import METHOD
from medseg.engine.method import SegmentContext
from medseg.engine.prompts import Box, Marks, Plane
from medseg.engine.refinement import heard_box, local_cut
from tests.robot import robot_click


@pytest.fixture(scope="module")
def ct(totalseg):
    image = nib.load(totalseg / "ct_3mm.nii.gz")
    seg = np.asarray(nib.load(totalseg / "ct_3mm_seg.nii.gz").dataobj).transpose(2, 1, 0)
    names = json.loads((totalseg / "labels.json").read_text())["ct_3mm_seg.nii.gz"]
    organs = {v: seg == int(k) for k, v in names.items()}
    array = np.asarray(image.dataobj, dtype=np.float32).transpose(2, 1, 0)
    spacing = tuple(float(s) for s in image.header.get_zooms()[::-1])
    return array, spacing, organs


def _run(image, spacing, head, click, foreground, plane, **params):
    read = lambda a: (lambda box: a[tuple(slice(lo, hi + 1) for lo, hi in zip(box.lo, box.hi))])
    nz = np.argwhere(head)
    point, empty = np.array([click]), np.zeros((0, 3), int)
    marks = Marks(fg=point if foreground else empty, bg=empty if foreground else point)
    return METHOD.run(read_image=read(image), read_mask=read(head), shape=image.shape,
                      spacing=spacing, marks=marks, plane=plane,
                      params=METHOD.parse_params(params),
                      current_mask_bbox=Box(tuple(nz.min(axis=0)), tuple(nz.max(axis=0))),
                      context=SegmentContext(kind="click", head_interaction={"method": "import"}))


def _cases(organs):
    """(name, head, reference): an organ with a 12 mm ball missing at its centre, and an organ
    with its touching neighbour added."""
    shape = next(iter(organs.values())).shape
    grid = np.indices(shape).reshape(3, -1).T
    for organ in ("liver", "spleen", "kidney_left"):
        ref = organs[organ]
        centre = np.argwhere(ref).mean(axis=0)
        ball = (np.sqrt((((grid - centre) * 3.0) ** 2).sum(axis=1)) < 12).reshape(shape)
        yield f"{organ} minus a ball", ref & ~ball, ref
    yield "liver plus the right kidney", organs["liver"] | organs["kidney_right"], organs["liver"]
    yield "spleen plus the stomach", organs["spleen"] | organs["stomach"], organs["spleen"]


def _dice(a, b) -> float:
    return 2.0 * (a & b).sum() / max(a.sum() + b.sum(), 1)


@pytest.mark.parametrize("dims", [3, 2])
@pytest.mark.parametrize("heard", [7.0, 3.0])
def test_the_window_matches_the_full_roi_refinement(ct, dims, heard):
    """The fast path (window around the new marks, cut on the heard box) against the whole-ROI
    refinement (`local_cut=false`). Not bit for bit since issue 13 item 3's window: inside it
    the cue sees the window's faces as its weak background border (a first click's ROI) and,
    above `refine_voxels`, half-resolution geodesics and the banded cut. Tolerance: the fast
    path makes at least 90 % of the change the full path makes (a background click's window
    border may take a little more of the same wrong neighbour: 1,744 against 883 voxels of
    right kidney), and its result is at least as close to the reference (within 0.01 Dice)."""
    image, spacing, organs = ct
    smaller = 0
    for name, head, ref in _cases(organs):
        plane = None
        if dims == 2:
            z = int(np.argmax((head != ref).sum(axis=(1, 2))))
            plane = Plane(0, z)
            only = np.zeros_like(head)
            only[z] = head[z]
            head, ref2 = only, np.zeros_like(ref)
            ref2[z] = ref[z]
            ref = ref2
        view = (slice(None),) * 3 if plane is None else (slice(plane.index, plane.index + 1),)
        point, foreground = robot_click(head[view], ref[view])
        click = tuple(int(p) for p in point)
        if plane is not None:
            click = (plane.index, click[1], click[2])
        full = _run(image, spacing, head, click, foreground, plane, heard_distance=heard,
                    local_cut=False)
        fast = _run(image, spacing, head, click, foreground, plane, heard_distance=heard)
        assert fast.roi == full.roi, name
        crop = tuple(slice(lo, hi + 1) for lo, hi in zip(fast.roi.lo, fast.roi.hi))
        h, r = head[crop], ref[crop]
        change_fast, change_full = fast.mask != h, full.mask != h
        assert change_fast.sum() > 0, name  # the click acts
        assert (change_fast & change_full).sum() >= 0.9 * change_full.sum(), name
        right = [(res.mask[c] == r[c]).mean() for res, c in ((fast, change_fast),
                                                                (full, change_full))]
        assert right[0] >= right[1] - 0.05, name  # a change as right as the full path's
        assert _dice(fast.mask, r) >= _dice(full.mask, r) - 0.01, name
        smaller += fast.info["window_voxels"] < int(np.prod(fast.roi.shape))
    if heard == 3.0:
        assert smaller >= 2  # and the fast path did work on a smaller window


def test_local_cut_is_the_cut_with_the_head_fixed_outside_the_box():
    rng = np.random.default_rng(1)
    prob = rng.uniform(0.05, 0.95, (12, 20, 20)).astype(np.float32)
    norm = rng.uniform(0, 1, prob.shape).astype(np.float32)
    head = rng.uniform(size=prob.shape) > 0.5
    heard = np.zeros(prob.shape, dtype=bool)
    heard[5, 8:10, 9] = True
    box = heard_box(heard, 2)
    assert box == (slice(2, 9), slice(5, 13), slice(6, 13))
    none = np.zeros(prob.shape, dtype=bool)
    mask = local_cut(graph_cut, prob, norm, (3.0, 1.0, 1.0), none, none, head, box, 2.0, 0.1)
    outside = np.ones(prob.shape, dtype=bool)
    outside[2 + 1:9 - 1, 5 + 1:13 - 1, 6 + 1:13 - 1] = False
    assert np.array_equal(mask[outside], head[outside])  # the layer and beyond: the head
    # the same as a full cut whose outside is pinned to the head by hard constraints
    pinned = graph_cut(prob, norm, (3.0, 1.0, 1.0), outside & head, outside & ~head, 2.0, 0.1)
    assert np.array_equal(mask, pinned)
    assert (mask != head).any()  # the noisy prior does move the inside
