"""Issue 13: slice-correcting 3D clicks (`slicewise`, `start: slicewise`) do not collapse
(docs/benchmarks.md, "A first click and slice-correcting clicks"). Robot sessions of the
robustness benchmark (medseg_bench.clicks --robustness, rows "slicewise click + slicewise
clicks" and "slicewise box + slicewise clicks") on shared-data volumes, block-downsampled to
~3 mm.

Diagnosed on main (ad854c2, medseg_bench.collapses): 18 of the 19 collapsing clicks of these
rows re-propagated their slice's change through 5-49 slices, drifting off the clicked error
(`bg-bite`: mr_3mm pancreas, a background click in the first click's 4,800-voxel leak took 644
object voxels over 19 slices, Dice 0.303 -> 0.193), or carried a leaking 2D correction to the
neighbours (`fg-leak`: ct_3mm aorta, a foreground click added 1,113 wrong voxels, 0.677 ->
0.514). Now a re-propagated slice changes only inside the corrected slice's change (its column)
and within its equivalent radius along the axis (`correct_reach_ratio`), follows the click's
sign (a foreground click only adds, a background click only removes, on every slice), and the
2D correction adds only where geodesic-graphcut's 3D click changes (`correct_slice` "both").
"""

from __future__ import annotations

import pytest

from medseg.algorithms.metrics import dice
from medseg.engine.prompts import Marks
from medseg_bench.clicks import (
    REFINE_PARAMS,
    EngineSegment,
    _click_marks,
    _downsampled,
    _robot_box,
)
from medseg_bench.robot import robot_click
from medseg_train.data import load_case


@pytest.mark.parametrize("case_name, organ, start, kind", [
    ("mr_3mm", "pancreas", "click", "bg"),  # main: 0.110 (click 2), 0.059 (click 10)
    ("ct_3mm", "aorta", "box", "fg"),  # main: 0.163 (click 4, fg), 0.252 (click 6)
])
def test_slice_correcting_clicks_do_not_collapse(case_name, organ, start, kind):
    case = load_case(case_name)
    obj = _downsampled(case.image, case.mask(organ), case.spacing, 3, "test", case_name, organ)
    assert obj is not None and obj.plane is None
    ref = obj.mask
    segment = EngineSegment(obj.image, obj.spacing, obj.plane)
    if start == "click":
        zyx, foreground = robot_click(segment.mask, ref)
        segment.interact("click", "slicewise", _click_marks(zyx, foreground))
    else:
        segment.interact("box", "slicewise", Marks(boxes=[_robot_box(obj)]))
    dices = [dice(segment.mask, ref)]
    kinds = []
    for _ in range(10):
        before = segment.mask.copy()
        zyx, foreground = robot_click(before, ref)
        kinds.append("fg" if foreground else "bg")
        segment.interact("click", "slicewise", _click_marks(zyx, foreground),
                         REFINE_PARAMS["slicewise"])
        after = segment.mask
        assert segment.last_info.get("corrected") == "slice"  # the slice-correcting path
        if foreground:  # on every slice, not only the clicked one
            assert not (before & ~after).any(), "a foreground click removed voxels"
        else:
            assert not (after & ~before).any(), "a background click added voxels"
        dices.append(dice(after, ref))
    print("\n" + " ".join(f"{k}:{d:.3f}" for k, d in zip(["start"] + kinds, dices)))
    assert kind in kinds  # the replayed kind of click happened (and kept its sign)
    drops = [a - b for a, b in zip(dices, dices[1:])]
    assert max(drops) < 0.05
    assert dices[-1] > dices[0]


def test_a_bad_slice_correction_is_refused_with_a_reason():
    from medseg.engine.slicewise_method import SlicewiseParams
    with pytest.raises(ValueError, match="correct_slice"):
        SlicewiseParams(correct_slice="4d")
    with pytest.raises(ValueError, match="correct_reach_ratio"):
        SlicewiseParams(correct_reach_ratio=-1.0)
