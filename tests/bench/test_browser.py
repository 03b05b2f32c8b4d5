"""The browser latency benchmark runs end to end (a few clicks) and prints its table."""

from __future__ import annotations

from medseg_bench import browser as bench
from tests.web.conftest import CHROMIUM


def test_browser_benchmark_prints_a_table(capsys, totalseg):
    bench.main(["--clicks", "3", "--chromium", str(CHROMIUM)])
    out = capsys.readouterr().out
    assert "| 2D click on a 512x512 slice -> painted overlay | 3 |" in out
    assert "| undo (Ctrl+Z) -> painted overlay | 3 |" in out
    assert "| next 512x512 slice (ArrowUp), not cached -> painted image | 3 |" in out
