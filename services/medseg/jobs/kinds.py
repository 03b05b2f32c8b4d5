"""The interface of a job kind. A kind is a value built in its own module and registered by
the composition root (`medseg.builtin`); kinds import this module, never a registry.

A kind's function is called in the worker's job process as `run(ctx, params)` with a
`JobContext` (progress reporter, cancellation check, event emitter, one-revision commit) and
its parameters validated into `params_type`. It returns a small JSON-able result summary, or
commits its revision through `ctx.commit(...)` (which records the summary with it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from medseg.errors import InvalidPrompt
from medseg.store.records import JobPriority


@dataclass(frozen=True)
class JobKind:
    name: str
    description: str
    params_type: type[BaseModel]
    run: Callable[..., dict[str, Any] | None]  # run(ctx: JobContext, params) -> result summary
    needs_segment: bool = True
    timeout_s: int = 3600  # RQ kills the job process after this long
    warm: Callable[[], None] | None = None  # run once by a worker before it forks job processes
    # the queue its jobs wait in (jobs/schedule.py): interactive > normal > batch
    priority: JobPriority = "normal"

    def parse_params(self, params: dict[str, Any]) -> BaseModel:
        try:
            return self.params_type.model_validate(params)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}"
                                 for e in exc.errors()[:5])
            raise InvalidPrompt(f"invalid parameters for job {self.name!r}: {problems}") from None
