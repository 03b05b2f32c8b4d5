"""The robot user lives in medseg_bench.robot (the click benchmark uses it too)."""

from medseg_bench.robot import robot_click

__all__ = ["robot_click"]
