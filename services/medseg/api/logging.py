"""Structured logs (structlog). Only ids, routes, codes and timings: never file names, DICOM
tags or pixel values, which may identify a patient."""

from __future__ import annotations

import logging
import traceback

import structlog


def configure(level: str = "INFO", json: bool = True) -> None:
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )


def where_it_failed(exc: BaseException) -> str:
    """A traceback without messages: the exception types of the chain and, for each, the frames
    (file, line, function) it passed. An exception's message can quote anything it was given
    (an uploaded file's name, a session name, a DICOM tag), so no log line carries one."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = traceback.extract_tb(current.__traceback__)
        parts.append(" <- ".join([type(current).__name__] + [
            f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} {frame.name}"
            for frame in reversed(frames)]))
        current = current.__cause__ or current.__context__
    return " | caused by: ".join(parts)
