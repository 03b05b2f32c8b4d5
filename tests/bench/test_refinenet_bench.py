"""The RefineNet benchmark's tuning proxy (`--proxy`) and per-slice diagnosis (`--per-slice`):
slices of training volumes at ~1 mm in-plane, ranked through the served click path."""

from __future__ import annotations

import re

import numpy as np

from medseg_bench import refinenet as bench


def test_proxy_slices_are_fine_training_slices_with_3mm_label_maps(totalseg):
    slices = bench.proxy_slices()
    names = {s[0] for s in slices}
    assert names == {"dcmqi_ct3slice liver", "ct_3mm at 1 mm liver", "ct_3mm at 1 mm spleen"}
    for name, image, reference, spacing, _ in slices:
        assert image.shape == reference.shape and reference.sum() > bench.MIN_AREA
        assert max(spacing) < 1.05  # the resolution where the coarse grid matters
        if name.startswith("ct_3mm"):
            # the held-out volume's labels are a 3 mm label map: these are built the same way
            blocks = reference[::3, ::3]
            assert np.array_equal(np.kron(blocks, np.ones((3, 3), bool)), reference)
    assert sum(s[0].endswith("spleen") for s in slices) == 8


def test_proxy_row_is_a_deterministic_dice_trace(totalseg):
    slices = bench.proxy_slices()
    picked = [slices[0], next(s for s in slices if s[0].endswith("spleen"))]
    row = bench.proxy_row(picked, {}, 2, perturbed=True)
    assert row == bench.proxy_row(picked, {}, 2, perturbed=True)  # fixed seeds
    groups = row.split(" | ")
    assert len(groups) == 2
    for group in groups:
        values = [float(v) for v in re.findall(r"\d\.\d{4}", group)]
        assert len(values) == 3 and all(0.0 <= v <= 1.0 for v in values)
        assert values[0] < 1.0  # the perturbed coarse start has errors to correct
    # another click setting is measured on the same starts (same 0-click Dice), not the same run
    other = bench.proxy_row(picked, {"snap": 0.0}, 2, perturbed=True)
    assert re.findall(r"\((\d+)\): (\d\.\d{4})", other) == re.findall(r"\((\d+)\): (\d\.\d{4})",
                                                                        row)
