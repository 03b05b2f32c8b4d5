"""Training: synthetic and real data, interaction simulation, augmentation, the torch networks
and their ONNX export, training loops, model cards.

Run by `medseg-train` (`main` below, then cli.py). Nothing here is imported by the server.
"""

from __future__ import annotations

import importlib.util
import sys


def main(argv: list[str] | None = None) -> None:
    """`medseg-train`: a clear message instead of a traceback when the `train` extra (torch)
    is not installed, then the command line of cli.py."""
    if importlib.util.find_spec("torch") is None:
        sys.exit("medseg-train needs torch: pip install 'medseg[train]' (on a CPU-only machine "
                 "install the CPU build first, e.g. pip install torch==2.13.0)")
    from medseg_train import cli

    cli.main(argv)
