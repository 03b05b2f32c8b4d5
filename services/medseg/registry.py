"""The one registry shape: methods, slice predictors, job kinds and models are each a
`Registry` of named entries, filled by the composition root (`medseg.builtin`) and read by
the use cases, the worker and the capability endpoints.

A registry only maps names to entries. It imports none of them: an entry's module imports
its interface (e.g. `medseg.engine.method`), never the registry, so plug-ins cannot form an
import circle with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

from medseg.errors import UnknownName


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    """Named entries of one kind ("method", "propagation method", "job kind", "model").

    `default` names the entry a request gets when it names none; `entries()` lists it first,
    then the rest by name (clients that offer the first entry offer the default)."""

    def __init__(self, kind: str, default: str | None = None):
        self.kind = kind
        self.default = default
        self._entries: dict[str, T] = {}

    def register(self, entry: T) -> T:
        """Add an entry; a second entry of the same name replaces the first (a plug-in may
        override a built-in on purpose)."""
        self._entries[entry.name] = entry
        return entry

    def get(self, name: str | None = None) -> T:
        """The entry called `name` (the default when None); UnknownName names the known ones."""
        wanted = self.default if name is None else name
        if wanted is None or wanted not in self._entries:
            raise UnknownName(f"unknown {self.kind} {wanted!r}; available: {self.names()}")
        return self._entries[wanted]

    def entries(self) -> list[T]:
        return [self._entries[k] for k in self.names()]

    def names(self) -> list[str]:
        return sorted(self._entries, key=lambda k: (k != self.default, k))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(self.entries())

    def __len__(self) -> int:
        return len(self._entries)
