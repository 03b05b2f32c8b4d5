"""Request body limits, enforced before a body is parsed.

An upload (multipart) may be as large as `max_upload_bytes`; every other body (JSON: an
interaction, a job, a segment) at most `max_request_bytes`. Why the second: parsing is the
costly part of an oversized request. A 100 x 10,000-point scribble request is 15 MB of JSON
that takes about 1.5 s to decode and validate before any check of ours could run; the largest
request the schemas admit (50,000 scribble points) is under 1 MB. The claimed Content-Length
is checked in the request middleware (app.py); `BodyLimit` counts the bytes that actually
arrive, for chunked bodies that claim nothing.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medseg.api.settings import Settings
from medseg.engine.imageio import ImageLimits

# multipart framing and the form fields beside the files
UPLOAD_SLACK = 1 << 20


def body_limit(settings: Settings, content_type: str | None) -> tuple[int, str]:
    """(bytes allowed, what they are called in the message) for a body of this type."""
    if (content_type or "").lower().startswith("multipart/"):
        return settings.max_upload_bytes + UPLOAD_SLACK, "the upload limit"
    return settings.max_request_bytes, "the request limit"


def image_limits(settings: Settings) -> ImageLimits:
    """What decoding an uploaded, imported or pulled file may cost, as configured: every path
    that decodes a file gets the same limits (the decode budget too, not its defaults)."""
    return ImageLimits(max_upload_bytes=settings.max_upload_bytes,
                       max_voxels=settings.max_voxels,
                       max_uncompressed_bytes=settings.max_uncompressed_bytes,
                       max_expansion_ratio=settings.max_expansion_ratio,
                       expansion_allowance=settings.expansion_allowance_mb << 20)


def too_large(size: str, limit: int, what: str) -> str:
    return f"request body of {size} bytes exceeds {what} of {limit} bytes"


class BodyLimit:
    """ASGI middleware: 413 as soon as more bytes arrive than the body's limit allows.

    The error is raised from `receive` while the route reads the body; FastAPI lets an
    HTTPException from there through to the app's error handlers (api/errors.py)."""

    def __init__(self, app: ASGIApp, settings: Settings):
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, what = body_limit(self.settings, Headers(scope=scope).get("content-type"))
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, too_large(f"more than {limit}", limit, what))
            return message

        await self.app(scope, counted, send)
