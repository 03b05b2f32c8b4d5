"""One place that maps domain errors to HTTP answers: {"error", "message", "request_id"}."""

from __future__ import annotations

import redis
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from medseg import errors as domain
from medseg.api.logging import where_it_failed
from medseg.api.schemas import HEX_COLOR_PATTERN, JOB_ID_PATTERN, SESSION_ID_PATTERN
from medseg.usecases.metrics import ERRORS

log = structlog.get_logger("medseg.api")

# The HTTP answer of each domain error: the domain names what went wrong, only this table
# knows HTTP. A subclass answers as its nearest listed ancestor (UnknownName as InvalidPrompt).
HTTP_STATUS: dict[type[domain.MedsegError], int] = {
    domain.MedsegError: 400,
    domain.UnsupportedFormat: 415,
    domain.CorruptImage: 422,
    domain.ImageTooLarge: 413,
    domain.InvalidPrompt: 422,
    domain.EmptySegment: 422,
    domain.SessionNotFound: 404,
    domain.SessionLive: 409,
    domain.ArchiveNotConfigured: 404,  # 404 as before: the viewer hides its archive list on it
    domain.UnsupportedExportFormat: 422,
    domain.SegmentNotFound: 404,
    domain.RevisionNotFound: 404,
    domain.JobNotFound: 404,
    domain.RevisionConflict: 409,
    domain.NothingToUndo: 409,
    domain.NothingToRedo: 409,
    domain.SessionBusy: 423,
    domain.DeadlineExceeded: 504,
    domain.ModelUnavailable: 422,
    domain.QuotaExceeded: 429,
    domain.StorageFull: 507,
    domain.SeriesMismatch: 422,
    domain.GeometryMismatch: 422,
    domain.NoDicomSource: 422,
    domain.EmptyResult: 422,  # a job's failure code; never an HTTP answer today
    domain.PacsError: 502,  # the upstream archive failed: a gateway error, not the caller's
    domain.PacsNotFound: 404,
}

STORE_FULL_RETRY_S = 60  # Redis at maxmemory: space comes back as sessions expire or are deleted


UNPARSABLE_BODY = "There was an error parsing the body"  # FastAPI's HTTPException(400) detail
# Starlette's HTTPException(400) details for a multipart body it cannot parse (request.form()
# turns its MultiPartException into one; the import endpoint reads its form itself)
UNPARSABLE_DETAILS = {UNPARSABLE_BODY, "Invalid multipart data."}


def http_status(exc: domain.MedsegError) -> int:
    return next(HTTP_STATUS[cls] for cls in type(exc).__mro__ if cls in HTTP_STATUS)


def error_response(request: Request, status: int, code: str, message: str,
                   headers: dict | None = None) -> JSONResponse:
    ERRORS.labels(code=code).inc()
    body = {"error": code, "message": message,
            "request_id": getattr(request.state, "request_id", None)}
    return JSONResponse(body, status_code=status, headers=headers)


# What a pattern-checked value must look like, in words, for the patterns whose regex would
# say nothing to a person; `shown`: the value sent is quoted back (an id of ours or a colour,
# never a DICOM UID or other value that may come from a patient's data)
PATTERN_WORDS: dict[str, tuple[str, str, bool]] = {
    SESSION_ID_PATTERN: ("session id", "32 lowercase hexadecimal characters (0-9, a-f), the `id` "
                         "POST /v1/sessions answers", True),
    JOB_ID_PATTERN: ("job id", "24 lowercase hexadecimal characters (0-9, a-f), the `id` a job "
                     "submission answers", True),
    HEX_COLOR_PATTERN: ("color", "'#' and six hexadecimal digits, e.g. '#e6194b'", True),
}
SHOWN_CHARS = 40  # a value quoted back is cut to this many characters


def _quoted(value: object) -> str:
    text = str(value)
    return repr(text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "...")


def _describe_error(err: dict) -> str:
    loc = tuple(err.get("loc", ()))
    where = ".".join(str(p) for p in loc if p != "body") or "request"
    kind = err.get("type")
    ctx = err.get("ctx") or {}
    if kind == "json_invalid":
        # FastAPI's "0: JSON decode error": loc holds the character offset, ctx the reason
        return f"request body is not valid JSON: {ctx.get('error', 'cannot be decoded')}"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") in PATTERN_WORDS:
        name, words, shown = PATTERN_WORDS[ctx["pattern"]]
        got = f" (got {_quoted(err.get('input'))})" if shown else ""
        if loc and loc[0] == "path":
            return f"the {name} in the URL must be {words}{got}"
        field = ".".join(str(p) for p in loc if p not in ("body", "query", "header"))
        return f"{field or name}: a {name} must be {words}{got}"
    return f"{where}: {err.get('msg', 'invalid')}"


def _json_position(exc: RequestValidationError) -> str:
    """' at line L column C' for a JSON decode error (FastAPI gives the character offset and
    keeps the text as exc.body), else ''. Positions only: the body's text is never quoted."""
    for err in exc.errors():
        if err.get("type") == "json_invalid" and isinstance(exc.body, str | bytes):
            loc = tuple(err.get("loc", ()))
            offset = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
            if offset is None:
                return ""
            doc = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else exc.body
            line = doc.count("\n", 0, offset) + 1
            column = offset - (doc.rfind("\n", 0, offset) + 1) + 1
            return f" at line {line} column {column}"
    return ""


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        text = _describe_error(err)
        if err.get("type") == "json_invalid":
            text += _json_position(exc)
        parts.append(text)
    return "; ".join(parts)


def install(app: FastAPI) -> None:
    @app.exception_handler(domain.MedsegError)
    async def domain_error(request: Request, exc: domain.MedsegError):
        headers = ({"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None
                   else None)
        return error_response(request, http_status(exc), exc.code, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return error_response(request, 422, "validation_error", _describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400 and exc.detail in UNPARSABLE_DETAILS:
            # FastAPI's answer to a body it could not even decode (JSON that is not UTF-8, a
            # broken multipart form): a request validation error like any other, so 422
            return error_response(request, 422, "validation_error", "the request body could not "
                                  "be parsed: send UTF-8 JSON, or a well-formed multipart form")
        code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
                413: "too_large"}.get(exc.status_code, "http_error")
        return error_response(request, exc.status_code, code, str(exc.detail),
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(redis.exceptions.ConnectionError)
    async def redis_down(request: Request, exc: Exception):
        log.error("redis_unreachable", error=str(exc))
        return error_response(request, 503, "store_unavailable", "session store unreachable; retry")

    @app.exception_handler(redis.exceptions.ResponseError)
    async def redis_refused(request: Request, exc: Exception):
        # Redis at maxmemory refuses writes (noeviction); a MULTI it refused wrote nothing. A
        # refusal inside a Lua script (the session lock) arrives as a plain ResponseError.
        if not isinstance(exc, redis.exceptions.OutOfMemoryError) and "OOM" not in str(exc):
            return await unexpected(request, exc)
        log.error("redis_out_of_memory")
        return error_response(request, 507, domain.StorageFull.code,
                              "the session store is full; nothing was changed. Retry later, "
                              "or delete sessions you no longer need",
                              {"Retry-After": str(STORE_FULL_RETRY_S)})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        # where it failed, not what the exception says: its message may quote patient data
        log.error("unhandled_error", error_type=type(exc).__name__, where=where_it_failed(exc))
        return error_response(request, 500, "internal_error", "internal error; see server logs "
                              "with this request_id")
