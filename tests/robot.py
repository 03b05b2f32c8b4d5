"""The robot user lives in medseg.bench.robot (the click benchmark uses it too)."""

from medseg.bench.robot import robot_click

__all__ = ["robot_click"]
