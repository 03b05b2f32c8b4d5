"""Domain errors of the engine, the store and the jobs. Each carries a stable `code` (what a
client can branch on) and a message for people; the API layer (`medseg.api.errors`) alone
decides which HTTP status each code gets.

    MedsegError
    ├── UnsupportedFormat, CorruptImage, ImageTooLarge     an upload that cannot be served
    ├── InvalidPrompt                                      a request the engine cannot act on
    │   └── UnknownName                                    a method / predictor / job kind / model
    ├── SessionNotFound, SegmentNotFound, RevisionNotFound, JobNotFound
    ├── ArchiveNotConfigured                               no archive of expired sessions
    ├── UnsupportedExportFormat                            an export format unfit for the image
    ├── RevisionConflict, SessionBusy                      the state moved or is in use
    ├── NothingToUndo, NothingToRedo                       an empty undo / redo stack
    ├── DeadlineExceeded                                   a request's compute ran too long
    ├── ModelUnavailable                                   a trained model is missing or corrupt
    ├── QuotaExceeded: TooManySessions, TooManyJobs        a tenant's quota is used up (retry)
    ├── StorageFull: TenantStorageFull                     no room to store more (retry)
    ├── SeriesMismatch, NoDicomSource                      DICOM SEG for another series / none
    ├── GeometryMismatch                                   an imported mask on another grid
    ├── EmptyResult                                        a job's result would wipe the mask
    └── PacsError                                          a configured PACS (DICOMweb) failed
        └── PacsUnavailable, PacsAuthFailed, PacsNotFound

Messages are for people: numbers as they are written (`plain`), never an object's or NumPy's
repr, never an uploaded file's name (it can carry patient data): a file is "file 3 of 20".
"""

import math
from typing import Any


class MedsegError(Exception):
    """Base class: `code` names the kind of failure, `message` says what to do about it."""

    code = "bad_request"
    retry_after_s: int | None = None  # when set, the answer says when to try again

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class UnsupportedFormat(MedsegError):
    code = "unsupported_format"


class CorruptImage(MedsegError):
    code = "corrupt_image"


class ImageTooLarge(MedsegError):
    code = "image_too_large"


class InvalidPrompt(MedsegError):
    code = "invalid_prompt"


class UnknownName(InvalidPrompt):
    """A name that no registry holds (every registry raises this one, see medseg.registry)."""

    code = "unknown_name"


class SessionNotFound(MedsegError):
    code = "session_not_found"


class ArchiveNotConfigured(MedsegError):
    """The archive of expired sessions is asked for, but the server keeps none (the setting
    that enables it is unset): not a missing session."""

    code = "archive_not_configured"


class UnsupportedExportFormat(MedsegError):
    """An export format the server does not write, or one that cannot hold this image (PNG of
    a volume): a request for the wrong format, not a bad upload (415) or prompt."""

    code = "unsupported_export_format"


class SessionLive(MedsegError):
    """A restore of a session that has not expired (nothing to restore)."""

    code = "session_live"


class SegmentNotFound(MedsegError):
    code = "segment_not_found"


class EmptySegment(MedsegError):
    """An operation that reads a segment's mask (hints) on a segment with no voxels."""

    code = "empty_segment"


class RevisionNotFound(MedsegError):
    code = "revision_not_found"


class RevisionConflict(MedsegError):
    code = "revision_conflict"


class NothingToUndo(MedsegError):
    code = "nothing_to_undo"


class NothingToRedo(MedsegError):
    """A redo with an empty redo stack (nothing undone since the last change)."""

    code = "nothing_to_redo"


class EmptyResult(MedsegError):
    """A job computed an empty mask (or one that loses essentially all of the segment's):
    not applied, so the segment keeps its head; the job fails with this code."""

    code = "empty_result"


class SessionBusy(MedsegError):
    code = "session_busy"


class DeadlineExceeded(MedsegError):
    """A request's computation passed the per-request deadline and was stopped."""

    code = "deadline_exceeded"


class JobNotFound(MedsegError):
    code = "job_not_found"


class ModelUnavailable(MedsegError):
    """The request needs a trained model this server does not have (or whose file is bad)."""

    code = "model_unavailable"


class QuotaExceeded(MedsegError):
    """A tenant's quota is used up; it frees up by itself (sessions expire, jobs finish), so the
    answer says when to try again."""

    code = "quota_exceeded"

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = max(1, int(retry_after_s))


class TooManySessions(QuotaExceeded):
    code = "too_many_sessions"


class TooManyJobs(QuotaExceeded):
    code = "too_many_jobs"


class TooManyStreams(QuotaExceeded):
    """The tenant follows as many job event streams (on this API process) as it may."""

    code = "too_many_streams"


class StorageFull(QuotaExceeded):
    """No room to store more: the session store is at its memory limit."""

    code = "storage_full"


class TenantStorageFull(StorageFull):
    """The tenant's sessions hold as many bytes as its quota allows."""

    code = "tenant_storage_full"


class GeometryMismatch(MedsegError):
    """An imported mask whose voxel grid is not the session image's (shape, spacing, origin or
    direction differ beyond axis order and flips)."""

    code = "geometry_mismatch"


class SeriesMismatch(MedsegError):
    """A DICOM SEG that references another series than the session's image."""

    code = "series_mismatch"


class NoDicomSource(MedsegError):
    """DICOM SEG export, import or push on a session whose image did not come from DICOM."""

    code = "no_dicom_source"


class PacsError(MedsegError):
    """A configured PACS failed. Messages name the PACS by its configured name only: never its
    URL, credentials or the UIDs asked for."""

    code = "pacs_error"


class PacsUnavailable(PacsError):
    """The PACS cannot be reached, timed out or answered with a server error."""

    code = "pacs_unavailable"


class PacsAuthFailed(PacsError):
    """The PACS refused the credentials configured for it (HTTP 401 / 403)."""

    code = "pacs_auth_failed"


class PacsNotFound(PacsError):
    """The PACS has no such study / series (or no instance in it)."""

    code = "pacs_not_found"


def plain(value: Any) -> str:
    """A number or a (nested) sequence of numbers as people write it, for messages: -249.5,
    1e+12, [15, 50, 40]. NumPy scalars and arrays read as Python's (no `np.float64(...)`),
    floats with at most 6 significant digits, NaN and infinities as JSON spells them."""
    if hasattr(value, "tolist"):  # NumPy scalar or array
        value = value.tolist()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(plain(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return f"{value:.6g}"
    return str(value)
