"""Domain errors of the engine, the store and the jobs. Each carries a stable `code` (what a
client can branch on) and a message for people; the API layer (`medseg.api.errors`) alone
decides which HTTP status each code gets.

    MedsegError
    ├── UnsupportedFormat, CorruptImage, ImageTooLarge     an upload that cannot be served
    ├── InvalidPrompt                                      a request the engine cannot act on
    │   └── UnknownName                                    a method / predictor / job kind / model
    ├── SessionNotFound, SegmentNotFound, RevisionNotFound, JobNotFound
    ├── RevisionConflict, NothingToUndo, SessionBusy       the state moved or is in use
    └── ModelUnavailable                                   a trained model is missing or corrupt
"""


class MedsegError(Exception):
    """Base class: `code` names the kind of failure, `message` says what to do about it."""

    code = "bad_request"

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


class SegmentNotFound(MedsegError):
    code = "segment_not_found"


class RevisionNotFound(MedsegError):
    code = "revision_not_found"


class RevisionConflict(MedsegError):
    code = "revision_conflict"


class NothingToUndo(MedsegError):
    code = "nothing_to_undo"


class SessionBusy(MedsegError):
    code = "session_busy"


class JobNotFound(MedsegError):
    code = "job_not_found"


class ModelUnavailable(MedsegError):
    """The request needs a trained model this server does not have (or whose file is bad)."""

    code = "model_unavailable"
