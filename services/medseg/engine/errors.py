"""Domain errors raised by the engine and the store; `medseg.api.errors` maps them to HTTP."""


class MedsegError(Exception):
    """Base class. `status` is the HTTP status the API layer answers with."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class UnsupportedFormat(MedsegError):
    status = 415
    code = "unsupported_format"


class CorruptImage(MedsegError):
    status = 422
    code = "corrupt_image"


class ImageTooLarge(MedsegError):
    status = 413
    code = "image_too_large"


class InvalidPrompt(MedsegError):
    status = 422
    code = "invalid_prompt"


class SessionNotFound(MedsegError):
    status = 404
    code = "session_not_found"


class SegmentNotFound(MedsegError):
    status = 404
    code = "segment_not_found"


class RevisionNotFound(MedsegError):
    status = 404
    code = "revision_not_found"


class RevisionConflict(MedsegError):
    status = 409
    code = "revision_conflict"


class NothingToUndo(MedsegError):
    status = 409
    code = "nothing_to_undo"


class SessionBusy(MedsegError):
    status = 423
    code = "session_busy"


class JobNotFound(MedsegError):
    status = 404
    code = "job_not_found"


class ModelUnavailable(MedsegError):
    """The request needs a trained model this server does not have (or whose file is bad)."""

    status = 422
    code = "model_unavailable"
