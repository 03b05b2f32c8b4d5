"""Request parameters as frozen dataclasses: every method and slice predictor declares its
tunables as one, with defaults; a request overrides some of them by name."""

from __future__ import annotations

import dataclasses
from typing import Any

from medseg.errors import InvalidPrompt


def defaults(params_type: type) -> dict[str, Any]:
    """The defaults of a params dataclass as JSON-able values (for /v1/capabilities)."""
    return dataclasses.asdict(params_type())


def parse_dataclass_params(params_type: type, overrides: dict[str, Any], owner: str) -> Any:
    """Defaults of the frozen dataclass `params_type` with the request's overrides; unknown
    names or wrong types -> InvalidPrompt naming `owner` (a method)."""
    fields = {f.name for f in dataclasses.fields(params_type)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise InvalidPrompt(f"unknown parameter(s) {unknown} for {owner!r}; "
                            f"known: {sorted(fields)}")
    values = {}
    for name, value in overrides.items():
        kind = type(getattr(params_type(), name))
        try:
            if isinstance(value, bool) != (kind is bool):  # True is an int: refuse both ways
                raise TypeError
            values[name] = kind(value)
        except (TypeError, ValueError):
            raise InvalidPrompt(f"parameter {name!r} must be a {kind.__name__}, "
                                f"got {value!r}") from None
    try:
        return params_type(**values)
    except ValueError as exc:
        raise InvalidPrompt(f"invalid parameters for {owner!r}: {exc}") from None
