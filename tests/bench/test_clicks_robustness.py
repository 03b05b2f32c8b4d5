"""The robustness table of medseg_bench.clicks (issue 13): collapse rate, worst drop and NoC
from Dice traces, and one real robot session on a held-out lesion."""

from __future__ import annotations

from medseg_bench.clicks import RobustTrace, lesion_objects, robust_row, run_robust


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def test_collapse_rate_worst_drop_and_noc_from_traces():
    traces = [
        RobustTrace([0.80, 0.90, 0.70, 0.95], 1, [0.010, 0.020, 0.030]),  # one drop of 0.20
        RobustTrace([0.86, 0.84, 0.83, 0.84], 4, [0.005, 0.005, 0.005]),  # drops of 0.02, 0.01
    ]
    cells = _cells(robust_row("m", "box", traces, 3))
    assert cells[:4] == ["m", "box", "2", "0.830"]
    assert cells[4:8] == ["0.870", "0.895", "0.895", "0.895"]  # @1, @3, @5, @10 (last kept)
    assert cells[8:10] == ["3.0", "4.5"]  # NoC@85: 1 + 1 and 4 + 0; NoC@90: 2 and cap 3 + 4
    assert cells[10] == "16.7 % (1/6)" and cells[11] == "0.200"
    assert cells[12] == "8"  # median ms
    refused = RobustTrace([0.8], 1, [], refused="no result to refine")
    assert "refused: no result to refine" in robust_row("m", "box", [refused], 3)


def test_a_robot_session_on_a_held_out_lesion():
    obj = next(o for o in lesion_objects(2) if o.organ == "brats21 oedema")
    assert obj.spacing == (3.0, 3.0, 3.0) and obj.mask[0].sum() > 100  # downsampled 1.5 -> 3 mm
    trace = run_robust(obj, "click", "geodesic-graphcut", "geodesic-graphcut", 3, 0)
    assert len(trace.dices) == 4 and trace.refused is None and len(trace.seconds) == 3
    assert trace.dices[-1] > 0.7
