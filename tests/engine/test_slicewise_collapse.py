"""Issue 13: slice-correcting 3D clicks (`slicewise`, `start: slicewise`) do not collapse
(docs/benchmarks.md, "A first click and slice-correcting clicks"). A robot session of the
robustness benchmark (medseg_bench.clicks --robustness, row "slicewise click + slicewise
clicks") on a shared-data volume, block-downsampled to ~3 mm.

Diagnosed on main (ad854c2): the second click of this session, a background click in the
first click's 4,800-voxel leak around a 1,171-voxel pancreas, corrected its slice and then
re-propagated the removal through every slice of the object (19 slices), taking 644 object
voxels with it: Dice 0.303 -> 0.193. Now the re-propagation reaches along the slice axis only
as far as the corrected slice's change is wide (`correct_reach_ratio`), and a re-propagated
slice follows the click's sign (a foreground click only adds, a background click only
removes, on every slice).
"""

from __future__ import annotations

import numpy as np

from medseg.algorithms.metrics import dice
from medseg_bench.clicks import REFINE_PARAMS, EngineSegment, _click_marks, _downsampled
from medseg_bench.robot import robot_click
from medseg_train.data import load_case


def test_slice_correcting_clicks_on_a_leaking_pancreas_do_not_collapse():
    case = load_case("mr_3mm")
    obj = _downsampled(case.image, case.mask("pancreas"), case.spacing, 3, "test", "mr_3mm",
                       "pancreas")
    assert obj is not None and obj.plane is None
    ref = obj.mask
    segment = EngineSegment(obj.image, obj.spacing, obj.plane)
    zyx, foreground = robot_click(segment.mask, ref)
    segment.interact("click", "slicewise", _click_marks(zyx, foreground))
    dices = [dice(segment.mask, ref)]
    kinds = []
    for _ in range(10):
        before = segment.mask.copy()
        zyx, foreground = robot_click(before, ref)
        kinds.append("fg" if foreground else "bg")
        segment.interact("click", "slicewise", _click_marks(zyx, foreground),
                         REFINE_PARAMS["slicewise"])
        after = segment.mask
        if foreground:  # on every slice, not only the clicked one
            assert not (before & ~after).any(), "a foreground click removed voxels"
        else:
            assert not (after & ~before).any(), "a background click added voxels"
        dices.append(dice(after, ref))
    print("\n" + " ".join(f"{k}:{d:.3f}" for k, d in zip(["start"] + kinds, dices)))
    assert kinds[0] == "bg"  # the replayed case: a background click in the first click's leak
    drops = [a - b for a, b in zip(dices, dices[1:])]
    assert max(drops) < 0.05  # main: 0.110 (click 2), 0.060 (click 10)
