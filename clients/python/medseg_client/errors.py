"""Typed exceptions of the medseg SDK, one per family of HTTP answers.

::

    MedsegError                 status, code, message, request_id
    ├── InvalidRequest          400, 415, 422 (bad input, unsupported/corrupt image, bad prompt)
    ├── Unauthorized            401, 403 (missing or invalid API key)
    ├── NotFound                404 (session, segment or revision)
    ├── Conflict                409, 423 (stale revision, nothing to undo/redo, session busy)
    ├── TooLarge                413 (upload or image over the server's limits)
    ├── ServerError             5xx (internal error, store unavailable)
    └── ConnectionFailed        no HTTP answer at all (status None): refused, timeout, DNS

The server answers every error as ``{"error": code, "message": text, "request_id": id}``;
:func:`error_from_response` turns such an answer into the matching exception.
"""

from __future__ import annotations

import httpx

__all__ = [
    "Conflict", "ConnectionFailed", "InvalidRequest", "MedsegError", "NotFound", "ServerError",
    "TooLarge", "Unauthorized", "connection_failed", "error_from_response",
]


class MedsegError(Exception):
    """Base of every SDK error. ``status`` is the HTTP status (None without an answer)."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "error",
                 request_id: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id

    def __str__(self) -> str:
        head = f"{self.status} {self.code}" if self.status else self.code
        tail = f" (request id {self.request_id})" if self.request_id else ""
        return f"{head}: {self.message}{tail}"


class InvalidRequest(MedsegError):
    """The request was refused as invalid (400, 415, 422)."""


class Unauthorized(MedsegError):
    """Missing or invalid API key (401, 403)."""


class NotFound(MedsegError):
    """No such session, segment or revision for this caller (404)."""


class Conflict(MedsegError):
    """Stale ``base_revision``/If-Match, nothing to undo or redo, or session busy (409, 423)."""


class TooLarge(MedsegError):
    """Upload or image over the server's limits (413)."""


class ServerError(MedsegError):
    """The server failed (5xx); the request id finds it in the server logs."""


class ConnectionFailed(MedsegError):
    """No HTTP answer: connection refused, timeout, name resolution failure."""


# The first thing a user who moved the server's port (PORT=9000 make serve) meets is a refused
# connection to the default URL: the message says where the clients look for the server.
WHERE_THE_URL_COMES_FROM = ("is the server running there? The clients find it through "
                            "MEDSEG_URL (the CLI: --url; the SDK: base_url=)")


def connection_failed(base_url: str, exc: httpx.TransportError) -> ConnectionFailed:
    """The error for a request that got no answer; a refused or unresolvable address also
    says how to point the clients at the server."""
    hint = f"; {WHERE_THE_URL_COMES_FROM}" if isinstance(exc, httpx.ConnectError) else ""
    return ConnectionFailed(f"cannot reach {base_url}: {exc}{hint}", code="connection_failed")


_BY_STATUS: dict[int, type[MedsegError]] = {
    400: InvalidRequest, 415: InvalidRequest, 422: InvalidRequest,
    401: Unauthorized, 403: Unauthorized, 404: NotFound,
    409: Conflict, 423: Conflict, 413: TooLarge,
}


def error_class(status: int) -> type[MedsegError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return InvalidRequest if 400 <= status < 500 else MedsegError


def error_from_response(response: httpx.Response) -> MedsegError:
    """The exception for a non-2xx answer (the body need not be the JSON error shape)."""
    code, message = "http_error", response.reason_phrase or "error"
    request_id = response.headers.get("X-Request-ID")
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("error") or body.get("status") or code)
        message = str(body.get("message") or body.get("detail") or body)
        request_id = body.get("request_id") or request_id
    elif response.text:
        message = response.text[:500]
    cls = error_class(response.status_code)
    return cls(message, status=response.status_code, code=code, request_id=request_id)
