"""The fine-tuning job's guard against applying a result that wipes the segment's mask
(usecases/finetune.py check_not_emptied); the real run that ends empty is in
tests/jobs/test_finetune_3d.py."""

from __future__ import annotations

import pytest

from medseg.engine.prompts import Box
from medseg.errors import EmptyResult
from medseg.usecases.finetune import MIN_KEPT_FRACTION, check_not_emptied

ROI = Box((0, 10, 10), (4, 40, 40))


def test_an_empty_network_result_is_refused_even_with_scribbles_or_an_empty_head():
    for result, head in ((0, 500), (12, 500), (0, 0), (12, 0)):  # 12: scribbled voxels only
        with pytest.raises(EmptyResult, match="empty mask in the box's crop"):
            check_not_emptied(0, result, head, ROI, 3, 7)


def test_a_result_that_keeps_almost_nothing_of_the_head_is_refused():
    head = 10_000
    with pytest.raises(EmptyResult, match=r"kept 10 of the 10000 voxels .* stays at revision 7"):
        check_not_emptied(10, 10, head, ROI, 3, 7)
    check_not_emptied(400, int(MIN_KEPT_FRACTION * head), head, ROI, 3, 7)  # the bound: kept
    check_not_emptied(9_000, 9_500, head, ROI, 3, 7)  # an ordinary refinement
    check_not_emptied(50, 50, 0, ROI, 3, 7)  # a head empty there: anything the network found
