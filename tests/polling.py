"""The one way tests wait for something another process does: poll with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(fetch: Callable[[], T], until: Callable[[T], bool], timeout_s: float, what: str,
         hopeless: Callable[[T], bool] = lambda _: False, interval_s: float = 0.02) -> T:
    """Call `fetch()` until `until(value)` and return that value. Fails (AssertionError naming
    `what` and the last value) once `timeout_s` has passed, or at once when `hopeless(value)`:
    what is awaited can no longer happen (a job that has ended, a process that has exited)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = fetch()
        if until(value):
            return value
        assert not hopeless(value), f"{what} can no longer happen: {value}"
        assert time.monotonic() < deadline, f"no {what} within {timeout_s} s: {value}"
        time.sleep(interval_s)
