"""Issue 13 item 3: a refinement click's graph cut runs only on the box where the new marks'
fusion weight is not zero, the head mask fixed around it (engine/refinement.py `local_cut`).
The fast path must give the full-ROI cut's mask and probability bit for bit: real ct_3mm CT,
real GeodisTK and PyMaxflow, foreground clicks in missing chunks and background clicks on
touching neighbours, 3D and 2D."""

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


@pytest.mark.parametrize("dims", [3, 2])
@pytest.mark.parametrize("heard", [7.0, 3.0])
def test_the_local_cut_equals_the_full_roi_cut_bit_for_bit(ct, dims, heard):
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
        assert np.array_equal(fast.mask, full.mask), name
        assert np.array_equal(fast.probability, full.probability), name
        changed = (fast.mask != head[tuple(slice(lo, hi + 1) for lo, hi in
                                           zip(fast.roi.lo, fast.roi.hi))]).sum()
        assert changed > 0, name  # the click acts
        smaller += fast.info["cut_voxels"] < int(np.prod(fast.roi.shape))
    assert smaller >= 2  # and the fast path did cut on a smaller box


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
