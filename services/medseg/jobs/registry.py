"""Job kinds: name -> function. Adding a kind is registering it (issue 4 adds "finetune").

A kind's function is called in the worker's job process as `run(ctx, params)` with a
`JobContext` (progress reporter, cancellation check, event emitter, one-revision commit) and
its parameters validated into `params_type`. It returns a small JSON-able result summary, or
commits its revision through `ctx.commit(...)` (which records the summary with it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from medseg.engine.errors import InvalidPrompt


@dataclass(frozen=True)
class JobKind:
    name: str
    description: str
    params_type: type[BaseModel]
    run: Callable[..., dict[str, Any] | None]  # run(ctx: JobContext, params) -> result summary
    needs_segment: bool = True
    timeout_s: int = 3600  # RQ kills the job process after this long
    warm: Callable[[], None] | None = None  # run once by a worker before it forks job processes

    def parse_params(self, params: dict[str, Any]) -> BaseModel:
        try:
            return self.params_type.model_validate(params)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}"
                                 for e in exc.errors()[:5])
            raise InvalidPrompt(f"invalid parameters for job {self.name!r}: {problems}") from None


_KINDS: dict[str, JobKind] = {}
_BUILTIN_MODULES = ("medseg.jobs.builtin", "medseg.usecases.propagation",
                    "medseg.usecases.finetune")


def register(kind: JobKind) -> JobKind:
    _KINDS[kind.name] = kind
    return kind


def load_modules(modules: str | list[str] = "") -> None:
    """Import the built-in kinds and any plugin modules (comma-separated names)."""
    names = modules.split(",") if isinstance(modules, str) else list(modules)
    for name in (*_BUILTIN_MODULES, *(n.strip() for n in names if n.strip())):
        importlib.import_module(name)


def get_kind(name: str) -> JobKind:
    load_modules()
    try:
        return _KINDS[name]
    except KeyError:
        raise InvalidPrompt(f"unknown job kind {name!r}; available: {sorted(_KINDS)}") from None


def all_kinds() -> list[JobKind]:
    load_modules()
    return [_KINDS[k] for k in sorted(_KINDS)]
