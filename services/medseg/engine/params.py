"""Request parameters as frozen dataclasses: every method and slice predictor declares its
tunables as one, with defaults; a request overrides some of them by name.

Every parameter is finite and bounded. Why: the requests carry free-form JSON (`NaN`,
`Infinity` and `1e308` included) and the numbers go straight into NumPy and PyMaxflow, where
a NaN capacity makes the max-flow never finish (holding the GIL), a huge smoothing or margin
costs minutes or all memory, and an overflow raises deep inside a library. `check_params` is
the one check: every float field finite, then each class's ranges from its `__post_init__`.
The shared ranges below carry the reason for each bound once.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medseg.errors import InvalidPrompt, plain


@dataclass(frozen=True)
class Range:
    """Closed interval [lo, hi] (lo excluded when `lo_open`), for messages and checks."""

    lo: float
    hi: float
    lo_open: bool = False

    def holds(self, value: float) -> bool:
        return (self.lo < value if self.lo_open else self.lo <= value) and value <= self.hi

    def describe(self) -> str:
        return f"{'>' if self.lo_open else '>='} {plain(self.lo)} and <= {plain(self.hi)}"


# Pairwise weight of a graph cut. A unary is at most -log(1e-4) = 9.2 per voxel (graphcut.py
# clips p), so beyond ~100 the pairwise term already decides every voxel; 1000 leaves room and
# keeps lamb / (spacing in mm) far below the "hard" t-link (1e9) that makes marks constraints.
LAMB = Range(0.0, 1000.0)
# Intensity scale of the pairwise term on [0, 1] intensities. Below 1e-3 every edge weighs 0
# already, and a smaller sigma squares to 0 (0 / 0 = NaN weights); above 10 every weight is 1.
SIGMA = Range(1e-3, 10.0)
# A margin in mm around marks or a box. 500 mm on each side spans more than a whole torso (an
# ROI is clipped to the image anyway); larger values only risk overflows in voxel arithmetic.
MARGIN_MM = Range(0.0, 500.0)
# Gaussian smoothing before the geodesic distance (noise suppression). Organ edges are a few mm
# wide: 10 mm already blurs a kidney away, and the filter's cost grows with its width in
# voxels (at 170,000 mm one click took 170 s).
SMOOTH_MM = Range(0.0, 10.0)
# A voxel count above which a method switches to a coarse-to-fine path (0: always). Above the
# largest image a server accepts it means "never"; 2**31 keeps it a 32-bit count.
VOXEL_BUDGET = Range(0, 2**31)
FRACTION = Range(0.0, 1.0)
# A width in standard deviations of an intensity model: 0 would divide by zero (NaN
# probabilities), below 0.1 no noisy voxel fits, and 100 std admits every intensity already.
STD_WIDTH = Range(0.1, 100.0)


def check_params(params: Any, ranges: Mapping[str, Range]) -> None:
    """ValueError naming the first float field of the dataclass `params` that is NaN or
    infinite, or the first field outside its range in `ranges`."""
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{f.name} must be a finite number, got {plain(value)}")
    for name, allowed in ranges.items():
        value = getattr(params, name)
        if not allowed.holds(value):
            raise ValueError(f"{name} must be {allowed.describe()}, got {plain(value)}")


def defaults(params_type: type) -> dict[str, Any]:
    """The defaults of a params dataclass as JSON-able values (for /v1/capabilities)."""
    return dataclasses.asdict(params_type())


def _convert(name: str, kind: type, value: Any) -> Any:
    """`value` as the field's type `kind` (bool, int, float or str); TypeError / ValueError
    when it is not one. Strict: JSON numbers only for numbers (no strings), no NaN or
    infinity, no fractional value for an int and no bool for a number (True is an int)."""
    if kind is bool or isinstance(value, bool):
        if kind is not bool or not isinstance(value, bool):
            raise TypeError
        return value
    if kind is str:
        if not isinstance(value, str):
            raise TypeError
        return value
    if not isinstance(value, int | float):
        raise TypeError
    if not math.isfinite(value):
        raise ValueError(f"parameter {name!r} must be a finite number, got {plain(value)}")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise TypeError
        return int(value)
    return float(value)


def parse_dataclass_params(params_type: type, overrides: dict[str, Any], owner: str) -> Any:
    """Defaults of the frozen dataclass `params_type` with the request's overrides; unknown
    names, wrong types, NaN / infinity or values out of range -> InvalidPrompt naming the
    parameter and `owner` (a method)."""
    fields = {f.name for f in dataclasses.fields(params_type)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:10])
        raise InvalidPrompt(f"unknown parameter(s) {shown} for {owner!r}; "
                            f"known: {', '.join(sorted(fields))}")
    values = {}
    base = params_type()
    for name, value in overrides.items():
        kind = type(getattr(base, name))
        try:
            values[name] = _convert(name, kind, value)
        except ValueError as exc:
            raise InvalidPrompt(str(exc)) from None
        except TypeError:
            raise InvalidPrompt(f"parameter {name!r} must be a {_KIND_WORDS.get(kind, 'value')}, "
                                f"got {_shown(value)}") from None
    try:
        return params_type(**values)
    except ValueError as exc:
        raise InvalidPrompt(f"invalid parameters for {owner!r}: {exc}") from None


_KIND_WORDS = {bool: "boolean (true or false)", int: "whole number", float: "number",
               str: "string"}


def _shown(value: Any) -> str:
    """A request value for a message: short, and as the client wrote it (JSON words)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return plain(value)
    if isinstance(value, str):
        return repr(value[:40])
    return f"a JSON {'list' if isinstance(value, list) else 'object'}"
