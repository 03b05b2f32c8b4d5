"""The robustness table of medseg_bench.clicks (issue 13): collapse rate, worst drop and NoC
from Dice traces, one real robot session on a held-out lesion, and the object set's grouping
(held-out organs / held-out volumes / trained-on, from the model cards)."""

from __future__ import annotations

from medseg_bench.clicks import (
    GROUPS,
    RobustTrace,
    lesion_objects,
    model_cards,
    object_group,
    robust_objects,
    robust_row,
    run_robust,
)
from medseg_train.data import HELD_OUT_ORGANS


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


def test_objects_are_grouped_by_what_the_model_cards_say_was_trained():
    cards = [{"name": "a", "training": {"data": "seen organs of ct_3mm, mr_3mm",
                                        "held_out_organs": ["pancreas", "liver"],
                                        "validation_case": "ct_dicom"}},
             {"name": "b", "training": {"data": "synthetic + ct_3mm",
                                        "held_out_organs": ["pancreas"]}}]
    assert object_group("ct_3mm", "pancreas", cards) == "held-out organs"
    assert object_group("ct_3mm", "liver", cards) == "trained-on organs and volumes"  # b saw it
    assert object_group("mr_3mm", "aorta", cards) == "trained-on organs and volumes"
    assert object_group("ct_dicom", "aorta", cards) == "held-out volumes"  # validation only
    assert object_group("mirp_sts", None, cards) == "held-out volumes"
    # a partly trained set: its cards name the trained scans, the held-out scan stays out
    partly = [{"name": "c", "training": {"training_cases": ["ct_3mm", "mirp_sts/STS_001_ct"],
                                         "held_out_volumes": ["mirp_sts/STS_003_ct"]}}]
    assert object_group("mirp_sts/STS_001_ct", None, partly) == "trained-on organs and volumes"
    assert object_group("mirp_sts/STS_003_ct", None, partly) == "held-out volumes"
    assert object_group("mirp_sts/STS_001_t1", None, partly) == "held-out volumes"
    # the shipped cards: the small structures of the training volumes were trained on
    real = model_cards()
    assert real and object_group("ct_3mm", "adrenal_gland_left", real) == GROUPS[2]
    assert object_group("ct_3mm", "pancreas", real) == GROUPS[0]
    assert object_group("deepmedic_brats2013", None, real) == GROUPS[1]


def test_the_3d_set_has_small_structures_and_every_group():
    objects = robust_objects(3, 3, model_cards())
    groups = {g: [o for o in objects if o.group == g] for g in GROUPS}
    assert all(1 <= len(members) <= 3 for members in groups.values())
    assert {o.organ for o in groups[GROUPS[0]]} <= set(HELD_OUT_ORGANS)
    assert any(o.case.startswith("mirp_") or "brats" in o.case for o in groups[GROUPS[1]])
    every = robust_objects(3, None, model_cards())
    names = {o.organ for o in every}
    assert {"pancreas", "aorta", "adrenal_gland_left", "kidney_left"} <= names
    assert any(n.startswith("vertebrae") for n in names)
    assert {"mirp_sts", "mirp_nsclc", "deepmedic_brats2013"} <= {o.case for o in every}
    assert min(int(o.mask.sum()) for o in every) < 400  # small objects are in
