"""A slicewise first click fuses geodesic-graphcut's 3D click unary into its tie
(slicewise_method._fuse_geodesic). `graphcut_method.click_cue` computes that unary without
the graph cut whose mask was thrown away: its ROI and probability must be exactly what
`segment` returns (max_grow=0), on real CT and on a ROI large enough for the half-resolution
geodesics (the benchmark's 65x129x129 first click). Real GeodisTK/numba and PyMaxflow."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from medseg.engine import graphcut_method as gm
from medseg.engine.method import SegmentContext
from medseg.engine.prompts import Marks
from medseg.errors import InvalidPrompt
from medseg_bench.latency import lobed_volume


def _reader(a: np.ndarray):
    return lambda box: a[tuple(slice(lo, hi + 1) for lo, hi in zip(box.lo, box.hi))]


def _segment(image, spacing, marks):
    empty = np.zeros(image.shape, dtype=bool)
    return gm.segment(_reader(image), _reader(empty), image.shape, spacing, marks, None,
                      gm.GraphCutParams(max_grow=0), None, SegmentContext("click"))


def _ct(totalseg):
    nifti = nib.load(totalseg / "ct_3mm.nii.gz")
    image = np.asarray(nifti.dataobj).transpose(2, 1, 0).astype(np.int16)
    return image, tuple(float(s) for s in nifti.header.get_zooms()[::-1])


@pytest.mark.parametrize("case", ["ct_3mm liver", "ct_3mm liver fg+bg", "lobed 65x129x129"])
def test_click_cue_is_the_first_clicks_probability_bit_for_bit(totalseg, case):
    if case.startswith("lobed"):
        image, points = lobed_volume()
        spacing = (1.875, 0.9375, 0.9375)
        marks = Marks(fg=np.array([points["dim"]]))
    else:
        image, spacing = _ct(totalseg)
        bg = np.array([[24, 79, 91]]) if "bg" in case else np.zeros((0, 3), int)
        marks = Marks(fg=np.array([[24, 49, 86]]), bg=bg)
    reference = _segment(image, spacing, marks)
    roi, probability = gm.click_cue(_reader(image), image.shape, spacing, marks,
                                    gm.GraphCutParams(max_grow=0))
    assert (roi.lo, roi.hi) == (reference.roi.lo, reference.roi.hi)
    assert probability.dtype == reference.probability.dtype
    assert np.array_equal(probability, reference.probability)
    if case.startswith("lobed"):  # the case the benchmark times: half-resolution geodesics
        assert probability.size > gm.GraphCutParams().coarse_geodesic_voxels


def test_click_cue_refuses_marks_without_a_foreground_click():
    image = np.zeros((4, 8, 8), np.float32)
    with pytest.raises(InvalidPrompt, match="nothing to segment"):
        gm.click_cue(_reader(image), image.shape, (1.0, 1.0, 1.0),
                     Marks(bg=np.array([[1, 2, 2]])))
