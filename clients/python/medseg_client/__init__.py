"""Python SDK for the medseg service: `Client` / `AsyncClient` (httpx), the mask codec, the CLI."""

from medseg_client.client import AsyncClient, Client, upload_parts
from medseg_client.errors import (
    Conflict,
    ConnectionFailed,
    InvalidRequest,
    MedsegError,
    NotFound,
    ServerError,
    TooLarge,
    Unauthorized,
)
from medseg_client.models import (
    AsyncSegmentView,
    Change,
    ExportFile,
    Job,
    JobEvent,
    Segment,
    SegmentView,
    Session,
)

__all__ = [
    "AsyncClient", "AsyncSegmentView", "Change", "Client", "Conflict", "ConnectionFailed",
    "ExportFile", "InvalidRequest", "Job", "JobEvent", "MedsegError", "NotFound", "Segment",
    "SegmentView", "ServerError", "Session", "TooLarge", "Unauthorized", "upload_parts",
]
