"""The pieces of the `slicewise` 3D start (engine/slicewise_method.py, issue 13 item 2): the
slice axis and the start slice, propagation that stops where the object ends, the 3D graph
cut that ties the slices, and the whole method on an anisotropic synthetic volume with the
shipped P-Net, propagation network and MIDeepSeg 2D model (real ONNX sessions, no mocks)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from medseg.algorithms.metrics import dice
from medseg.engine import slicewise_method as sw
from medseg.engine.method import SegmentContext
from medseg.engine.prompts import Box, Marks
from medseg.engine.slice_predictors import SeedGraphCut, SeedGraphCutParams
from medseg.errors import InvalidPrompt

SPACING = (5.0, 1.0, 1.0)  # thick slices: z is the slice axis
SHAPE = (20, 64, 64)


def _volume(radii: dict[int, float], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A bright object whose slice z is a disc of radius radii[z] (mm) on a darker noisy
    background: (image float32, mask bool), SHAPE."""
    zz, yy, xx = np.indices(SHAPE)
    mask = np.zeros(SHAPE, dtype=bool)
    for z, r in radii.items():
        mask[z] = (yy[z] - 32) ** 2 + (xx[z] - 30) ** 2 <= r * r
    rng = np.random.default_rng(seed)
    image = np.where(mask, 200.0, 60.0) + rng.normal(0, 10, SHAPE)
    return image.astype(np.float32), mask


def _reader(a: np.ndarray):
    return lambda box: a[tuple(slice(lo, hi + 1) for lo, hi in zip(box.lo, box.hi))]


def _bbox(mask: np.ndarray, pad: int) -> Box:
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + pad, np.asarray(mask.shape) - 1)
    return Box(tuple(int(v) for v in lo), tuple(int(v) for v in hi))


def test_the_slice_axis_is_the_coarsest_one():
    assert sw.slice_axis((5.0, 1.0, 1.0)) == 0
    assert sw.slice_axis((1.0, 4.0, 1.0)) == 1
    assert sw.slice_axis((0.8, 0.8, 3.0)) == 2
    assert sw.slice_axis((2.0, 2.0, 2.0)) == 0  # ties: z
    assert sw.slice_axis((1.0, 4.0, 1.0), axis=2) == 2  # asked for


def test_the_largest_slice_wins_and_ties_go_to_the_middle():
    assert sw.central_slices(3, 11, 3) == [7, 6, 8]
    assert sw.largest_slice({6: 40, 7: 30, 8: 55}, 3, 11) == 8
    assert sw.largest_slice({6: 40, 7: 40, 8: 40}, 3, 11) == 7
    assert sw.largest_slice({5: 40, 9: 40}, 3, 11) == 5  # equally far: the lower one


def test_points_start_on_the_slice_with_most_points_or_projected_onto_the_median():
    pts = np.array([[4, 10, 10], [4, 20, 12], [4, 15, 25], [6, 15, 15], [2, 14, 14]])
    index, on = sw.points_slice(pts, 0)
    assert index == 4 and len(on) == 3 and (on[:, 0] == 4).all()
    # MIDeepSeg's 3D extreme points: two mark the ends along z, the others the outline
    pts = np.array([[1, 30, 30], [9, 31, 30], [5, 20, 30], [4, 40, 30], [6, 30, 18],
                    [5, 30, 41]])
    index, on = sw.points_slice(pts, 0)
    assert index == 5
    assert sorted(map(tuple, on[:, 1:].tolist())) == [(20, 30), (30, 18), (30, 41), (40, 30)]


def test_the_box_start_takes_the_slice_where_the_object_is_largest():
    # largest (radius 14 mm) on slice 10, two slices off the box's middle (8)
    radii = {4: 5, 5: 7, 6: 8, 7: 9, 8: 10, 9: 12, 10: 14, 11: 7, 12: 5}
    image, mask = _volume(radii)
    box = Box((4, 14, 12), (12, 50, 48))
    start = sw.box_start(_reader(image), SHAPE, SPACING, box, 0, sw.SlicewiseParams())
    assert start.index == 10, start.areas
    assert max(start.areas, key=start.areas.__getitem__) == 10
    assert dice(start.mask, mask[10]) > 0.85


def test_propagation_stops_where_the_object_ends():
    radii = {z: 9.0 for z in range(7, 14)}  # a cylinder on slices 7..13
    image, mask = _volume(radii)
    start = sw.StartSlice(10, mask[10].copy(), mask[10].astype(np.float32))
    predictor = SeedGraphCut(SeedGraphCutParams(), image[10], mask[10], SPACING[1:])
    cross = np.ones(SHAPE[1:], dtype=bool)
    # the bound reaches 3 slices past each end, as a box drawn with a margin does
    done = sw.propagate_within(_reader(image), SHAPE, SPACING, 0, start, predictor, 4, 16,
                               cross, sw.SlicewiseParams())
    assert sorted(done.masks) == list(range(7, 14))
    assert done.ends == {1: 14, -1: 6}
    # the model-free predictor keeps the object (its boundary is not what this tests)
    assert all(dice(done.masks[z], mask[z]) > 0.75 for z in range(7, 14))
    assert (done.probabilities[14] <= 0.05).all() and (done.probabilities[6] <= 0.05).all()


def test_propagation_stays_inside_the_cross_section():
    radii = {z: 12.0 for z in range(6, 14)}
    image, mask = _volume(radii)
    start = sw.StartSlice(10, mask[10].copy(), mask[10].astype(np.float32))
    predictor = SeedGraphCut(SeedGraphCutParams(), image[10], mask[10], SPACING[1:])
    cross = np.zeros(SHAPE[1:], dtype=bool)
    cross[:, :32] = True  # the left half only
    done = sw.propagate_within(_reader(image), SHAPE, SPACING, 0, start, predictor, 8, 12,
                               cross, sw.SlicewiseParams())
    assert sorted(done.masks) == [8, 9, 10, 11, 12]  # bounded by lo..hi
    assert not any(done.masks[z][:, 32:].any() for z in (8, 9, 11, 12))


def test_the_3d_graph_cut_ties_the_slices():
    """A slice where the 2D prediction lost the object (p 0.4 inside, on tissue like its
    neighbours') is filled from the slices around it; a confident speck on another slice, not
    connected to the start slice's object, is dropped; thresholding keeps both errors."""
    radii = {z: 8.0 for z in range(4, 13)}
    image, mask = _volume(radii, seed=1)
    unary = np.where(mask, 0.9, 0.05).astype(np.float32)
    unary[8][mask[8]] = 0.4  # the lost slice
    speck = np.zeros(SHAPE, dtype=bool)
    speck[16, 5:9, 5:9] = True
    unary[speck] = 0.7
    image[speck] = 200.0
    seed = np.zeros(SHAPE, dtype=bool)
    seed[6] = mask[6]
    allowed = np.ones(SHAPE, dtype=bool)
    tied = sw.tie_slices(unary, image, SPACING, allowed, seed, lamb=2.0, sigma=0.1)
    assert dice(tied[8], mask[8]) > 0.95
    assert not tied[speck].any()
    assert dice(tied, mask) > 0.97
    assert not (unary >= 0.5)[8].any() and (unary >= 0.5)[speck].all()  # what a threshold gives
    # outside `allowed`: background whatever the unary
    allowed[:, :, 30:] = False
    half = sw.tie_slices(unary, image, SPACING, allowed, seed, lamb=2.0, sigma=0.1)
    assert not half[:, :, 30:].any() and half[6, 32, 25]


def _run(image, marks: Marks, kind: str, **params):
    return sw.segment(_reader(image), _reader(np.zeros(SHAPE, dtype=bool)), SHAPE, SPACING,
                      marks, None, sw.SlicewiseParams(**params), None, SegmentContext(kind))


def _paste(result) -> np.ndarray:
    out = np.zeros(SHAPE, dtype=bool)
    out[tuple(slice(lo, hi + 1) for lo, hi in zip(result.roi.lo, result.roi.hi))] = result.mask
    return out


RADII = {4: 5, 5: 8, 6: 10, 7: 11, 8: 12, 9: 12, 10: 11, 11: 9, 12: 7, 13: 4}


def test_a_3d_box_segments_an_anisotropic_object_slice_by_slice():
    image, mask = _volume(RADII, seed=2)
    result = _run(image, Marks(boxes=[_bbox(mask, 3)]), "box", start="slicewise")
    got = _paste(result)
    assert dice(got, mask) > 0.85
    assert result.info["axis"] == "z" and 7 <= result.info["start_slice"] <= 10
    assert result.probability.shape == result.mask.shape
    assert not got[:3].any() and not got[15:].any()  # the box's extent bounds it


def test_3d_points_segment_an_anisotropic_object_slice_by_slice():
    image, mask = _volume(RADII, seed=3)
    points = np.array([[4, 32, 30], [13, 32, 30], [8, 22, 30], [9, 42, 30], [8, 32, 20],
                       [9, 32, 40]])
    result = _run(image, Marks(points=points), "points", start="slicewise")
    assert result.info["start"] == "slicewise" and result.info["axis"] == "z"
    assert dice(_paste(result), mask) > 0.8


def test_auto_goes_slice_by_slice_for_a_first_click_only():
    # a box on thick slices went slice by slice until the model-free 3D box got its robust
    # intensity model; it ties or wins on every measured geometry since, at a tenth of the
    # time (docs/benchmarks.md)
    assert sw.auto_start("box", (5.0, 1.0, 1.0)) == "volumetric"
    assert sw.auto_start("box", (1.0, 0.8, 4.0)) == "volumetric"
    assert sw.auto_start("box", (3.27, 1.95, 1.95)) == "volumetric"
    assert sw.auto_start("box", (2.0, 2.0, 2.0)) == "volumetric"
    assert sw.auto_start("points", (5.0, 1.0, 1.0)) == "volumetric"
    assert sw.auto_start("click", (2.0, 2.0, 2.0)) == "slicewise"  # won on both groups
    assert sw.auto_start("correct", (5.0, 1.0, 1.0)) == "volumetric"


@pytest.mark.parametrize("kind", ["box", "points"])
def test_auto_takes_the_start_that_won_per_case_type(kind):
    image, mask = _volume(RADII, seed=4)
    marks = (Marks(boxes=[_bbox(mask, 3)]) if kind == "box" else
             Marks(points=np.array([[4, 32, 30], [13, 32, 30], [8, 22, 30], [9, 42, 30],
                                    [8, 32, 20], [9, 32, 40]])))
    won = sw.auto_start(kind, SPACING)
    auto = _run(image, marks, kind)
    assert auto.info["start"] == won
    chosen = _run(image, marks, kind, start=won)
    assert np.array_equal(_paste(auto), _paste(chosen)) and dice(_paste(auto), mask) > 0.75
    other = "slicewise" if won == "volumetric" else "volumetric"
    assert _run(image, marks, kind, start=other).info["start"] == other


def test_a_3d_click_starts_slice_by_slice():
    """One foreground click on an empty segment: its slice in 2D (the model-free 2D click),
    propagated both ways until the object ends, tied by the 3D graph cut."""
    image, mask = _volume(RADII, seed=2)
    result = _run(image, Marks(fg=np.array([[8, 32, 30]])), "click")
    assert result.info["start"] == "slicewise" and result.info["start_slice"] == 8
    assert result.info["slices"] == list(range(4, 14))  # every slice of the object, no more
    got = _paste(result)
    assert dice(got, mask) > 0.95
    assert got[8, 32, 30]
    # a clean start slice: the optional second pass (from the tie's start slice) is not taken
    twice = _run(image, Marks(fg=np.array([[8, 32, 30]])), "click", click_passes=2)
    assert "passes" not in twice.info and np.array_equal(_paste(twice), got)
    volumetric = _paste(_run(image, Marks(fg=np.array([[8, 32, 30]])), "click",
                             start="volumetric"))
    assert volumetric.any() and not np.array_equal(volumetric, got)


def _correct(image, head, marks: Marks, **params):
    """A click on a segment whose head mask is `head`, correcting its slice unless `params`
    say otherwise: (new mask, result)."""
    params = {"start": "slicewise", **params}
    idx = np.argwhere(head)
    bbox = Box(tuple(int(v) for v in idx.min(axis=0)), tuple(int(v) for v in idx.max(axis=0)))
    result = sw.segment(_reader(image), _reader(head), SHAPE, SPACING, marks, None,
                        sw.SlicewiseParams(**params), bbox, SegmentContext("click"))
    new = head.copy()
    new[tuple(slice(lo, hi + 1) for lo, hi in zip(result.roi.lo, result.roi.hi))] = result.mask
    return new, result


def test_a_click_corrects_its_slice_then_re_propagates_the_neighbours_it_changes():
    """The head misses a wedge of the object on slices 6..11; one foreground click in the
    wedge on slice 9 fixes slice 9 in 2D, then the neighbours whose re-propagation changes
    them, both ways, until the wedge ends; every other slice is the head's bit for bit and
    no voxel is removed (a foreground click)."""
    image, mask = _volume(RADII, seed=5)
    head = mask.copy()
    head[6:12, :, 36:] = False
    new, result = _correct(image, head, Marks(fg=np.array([[9, 32, 40]])))
    info = result.info
    assert info["corrected_slices"] == [9]
    assert set(info["repropagated"]["9"]) >= {8, 10}  # neighbours re-propagated from 9
    changed = sorted(set(np.argwhere(new ^ head)[:, 0].tolist()))
    assert changed == info["changed_slices"] and 9 in changed
    assert set(changed) <= set(range(6, 12))  # only where the wedge is missing
    for z in range(SHAPE[0]):
        if z not in changed:
            assert np.array_equal(new[z], head[z]), z  # slices it did not reach: bit for bit
    assert not (head & ~new).any()  # a foreground click never removes a voxel
    assert dice(new[9], mask[9]) > 0.98
    for z in (8, 10):  # the neighbours moved to the object
        assert dice(new[z], mask[z]) > dice(head[z], mask[z]) + 0.05, z
    assert dice(new, mask) > dice(head, mask) + 0.05


def test_a_background_click_removes_a_leak_on_its_slice_and_the_neighbours_only():
    """The head leaks into a bright blob beside the object on slices 7..10; a background
    click in the blob on slice 8 removes the leak around it there (within the click's reach:
    refinement.object_scale_mm bounds it, so not the whole 24-voxel blob) and almost no object;
    it adds nothing, and slices outside 7..10 stay bit for bit."""
    image, mask = _volume(RADII, seed=6)
    leak = np.zeros(SHAPE, dtype=bool)
    leak[7:11, 20:44, 44:52] = True
    leak &= ~mask
    image[leak] = 200.0
    head = mask | leak
    new, result = _correct(image, head, Marks(bg=np.array([[8, 32, 48]])))
    assert not (new & ~head).any()  # a background click never adds a voxel
    assert not new[8, 28:37, 44:52].any()  # the leak next to the click is gone
    assert (new[8] & leak[8]).sum() <= 0.6 * leak[8].sum()
    assert (mask & ~new).sum() <= 0.01 * mask.sum()  # leak went, the object (almost) not
    for z in list(range(0, 7)) + list(range(11, SHAPE[0])):
        assert np.array_equal(new[z], head[z]), z
    assert dice(new, mask) > dice(head, mask)


def test_a_click_the_head_already_agrees_with_changes_nothing():
    image, mask = _volume(RADII, seed=7)
    new, result = _correct(image, mask, Marks(fg=np.array([[8, 32, 30]])))
    assert np.array_equal(new, mask) and result.info["corrected_slices"] == []


def test_auto_refines_with_the_3d_click_that_won():
    image, mask = _volume(RADII, seed=5)
    head = mask.copy()
    head[6:12, :, 36:] = False
    new, result = _correct(image, head, Marks(fg=np.array([[9, 32, 40]])), start="auto")
    assert result.info["start"] == "volumetric" and result.info.get("refined")
    assert not (head & ~new).any() and new[9, 32, 40]


def test_bad_starts_are_refused_with_a_reason():
    image, mask = _volume(RADII)
    with pytest.raises(InvalidPrompt, match="foreground click"):
        _run(image, Marks(bg=np.array([[8, 32, 30]])), "click", start="slicewise")
    with pytest.raises(InvalidPrompt, match="box, points or a click"):
        _run(image, Marks(fg=np.array([[8, 32, 30]])), "scribble")
    with pytest.raises(InvalidPrompt, match="at least 3"):
        _run(image, Marks(points=np.array([[8, 32, 30], [9, 30, 30]])), "points",
             start="slicewise")
    with pytest.raises(ValueError, match="predictor"):
        sw.SlicewiseParams(predictor="nope")
    with pytest.raises(ValueError, match="start"):
        sw.SlicewiseParams(start="nope")
    with pytest.raises(ValueError, match="correct_compare"):
        sw.SlicewiseParams(correct_compare="nope")



def test_a_first_click_re_fits_only_the_slices_propagated_with_low_confidence(monkeypatch):
    """P-Net's re-fit of every propagated slice cost a third of a first click's time; it now
    runs only where the propagation's confidence is below `click_refit_confidence` (and on
    the start slice), every slice above 1 (docs/benchmarks.md, "slicewise first click:
    re-fit uncertain slices only")."""
    image, mask = _volume(RADII, seed=2)
    calls: list[int] = []
    real = sw.bifseg_method.run_box

    def counted(*args, **kwargs):
        calls.append(args[4].index)  # run_box(read_image, shape, spacing, box, plane, ...)
        return real(*args, **kwargs)

    monkeypatch.setattr(sw.bifseg_method, "run_box", counted)
    click = Marks(fg=np.array([[8, 32, 30]]))
    confidences: dict[int, float] = {}
    propagate = sw.propagate_within

    def recorded(*args, **kwargs):
        done = propagate(*args, **kwargs)
        confidences.update(done.confidences)
        return done

    monkeypatch.setattr(sw, "propagate_within", recorded)
    every = _run(image, click, "click", click_refit_confidence=2.0)
    assert sorted(calls) == every.info["slices"] == every.info["refit_slices"]
    # between the lowest and the highest confidence: some slices, not all
    ordered = sorted(confidences[i] for i in every.info["slices"] if i != 8)
    middle = (ordered[0] + ordered[-1]) / 2.0
    assert ordered[0] < middle < ordered[-1]
    calls.clear()
    some = _run(image, click, "click", click_refit_confidence=middle)
    uncertain = [i for i in some.info["slices"] if i == 8 or confidences[i] < middle]
    assert sorted(calls) == some.info["refit_slices"] == uncertain
    assert 1 < len(uncertain) < len(some.info["slices"])
    assert dice(_paste(some), mask) > 0.95 and dice(_paste(every), mask) > 0.95


@pytest.mark.parametrize("kind", ["click", "box"])
def test_worker_threads_give_the_sequential_answer_bit_for_bit(monkeypatch, kind):
    """A first click's (and a box start's) propagation directions and geodesic cue run on
    worker threads (`WORKERS`, docs/benchmarks.md "slicewise first click: ... branch
    sw3fast"); the answer must be the one computed in order on one thread: the same mask,
    stored probability, ROI and info, whatever the scheduling. A spy records that the
    threads really ran the walk towards -z and the cue."""
    image, _ = _volume(RADII, seed=2)
    marks = (Marks(fg=np.array([[8, 32, 30]])) if kind == "click"
             else Marks(boxes=[Box((3, 18, 16), (14, 46, 44))]))
    params = {} if kind == "click" else {"start": "slicewise"}
    ran_on: dict[str, str] = {}
    walk, cue = sw._walk, sw._geodesic_cue

    def spy_walk(*args, **kwargs):
        ran_on[f"walk{args[-2]:+d}"] = threading.current_thread().name
        return walk(*args, **kwargs)

    def spy_cue(*args, **kwargs):
        ran_on["cue"] = threading.current_thread().name
        return cue(*args, **kwargs)

    monkeypatch.setattr(sw, "_walk", spy_walk)
    monkeypatch.setattr(sw, "_geodesic_cue", spy_cue)
    monkeypatch.setattr(sw, "WORKERS", 0)
    alone = _run(image, marks, kind, **params)
    assert set(ran_on.values()) == {threading.current_thread().name}
    monkeypatch.setattr(sw, "WORKERS", 2)
    for _ in range(3):  # a few schedulings
        ran_on.clear()
        pooled = _run(image, marks, kind, **params)
        assert ran_on["walk+1"] == threading.current_thread().name
        assert ran_on["walk-1"].startswith("medseg-slicewise")
        assert ran_on["cue"].startswith("medseg-slicewise")
        assert pooled.roi == alone.roi and pooled.info == alone.info
        assert np.array_equal(pooled.mask, alone.mask)
        assert pooled.probability.dtype == alone.probability.dtype
        assert np.array_equal(pooled.probability, alone.probability)
