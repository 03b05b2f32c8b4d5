"""Request plumbing shared by the endpoint mixins: one `_Call` describes one HTTP request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class _Call:
    method: str
    path: str
    parse: Callable[[httpx.Response], Any]
    params: dict[str, Any] | None = None
    json: Any = None
    files: list | None = None
    data: dict[str, str] | None = None
    headers: dict[str, str] | None = None

    def request_kwargs(self) -> dict[str, Any]:
        params = {k: v for k, v in (self.params or {}).items() if v is not None}
        return {"params": params or None, "json": self.json, "files": self.files,
                "data": self.data, "headers": self.headers}


def _json(r: httpx.Response) -> Any:
    return r.json()


def _none(r: httpx.Response) -> None:
    return None


def _drop_none(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _if_match(revision: int | None) -> dict[str, str] | None:
    return None if revision is None else {"If-Match": f'"{int(revision)}"'}
