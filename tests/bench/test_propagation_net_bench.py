"""The propagation-network benchmark's table, on made-up rows (the run itself is a command)."""

from __future__ import annotations

from medseg_bench.propagation_net import render


def test_render_groups_organs_and_reports_time():
    rows = [{"case": "ct_3mm", "organ": o, "group": g, "slices": 10, "predicted": 9, "dice": d,
             "ms": 12.0} for o, g, d in [("liver", "held-out", 0.8), ("spleen", "held-out", 0.6),
                                         ("stomach", "seen", 0.9)]]
    table = render(rows, {"spleen": 10.0, "liver": 20.0})
    assert "| ct_3mm | held-out | liver | 10 | 9 | 0.800 | 12.0 |" in table
    assert "| ct_3mm | held-out | 2 | 0.700 | 0.700 |" in table
    assert "held-out organs, all cases: mean Dice 0.700 over 2" in table
    assert "a 100-slice organ: 2.00 s" in table
