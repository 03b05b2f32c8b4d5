"""OpenAPI links: how the answer of one operation feeds the parameters of the next.

A client (or a stateful fuzzer such as schemathesis) follows them from an uploaded session to
its segments, from a segment to its interactions, masks and history, and from a started job to
its status. FastAPI has no way to declare links on a route, so they are added to the generated
document here, by path and method (the operation ids FastAPI derives are looked up, not
spelled out)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

SESSION = "/v1/sessions/{session_id}"
SEGMENT = f"{SESSION}/segments/{{segment_id}}"
JOB = "/v1/jobs/{job_id}"

# (source path, method, status) -> {link name: (target path, method, parameters)}
_FROM_SESSION = {"session_id": "$response.body#/id"}
_SESSION_OF_REQUEST = {"session_id": "$request.path.session_id"}
_FROM_SEGMENT = {**_SESSION_OF_REQUEST, "segment_id": "$response.body#/id"}
_SEGMENT_OF_REQUEST = {**_SESSION_OF_REQUEST, "segment_id": "$request.path.segment_id"}
_FROM_JOB = {"job_id": "$response.body#/id"}

LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, dict[str, str]]]] = {
    ("/v1/sessions", "post", "201"): {
        "GetSession": (SESSION, "get", _FROM_SESSION),
        "ExportSession": (f"{SESSION}/export", "get", _FROM_SESSION),
        "ListSegments": (f"{SESSION}/segments", "get", _FROM_SESSION),
        "CreateSegment": (f"{SESSION}/segments", "post", _FROM_SESSION),
        "GetSlice": (f"{SESSION}/slices/{{axis}}/{{index}}", "get", _FROM_SESSION),
        "ListSessionJobs": (f"{SESSION}/jobs", "get", _FROM_SESSION),
        "DeleteSession": (SESSION, "delete", _FROM_SESSION),
    },
    (f"{SESSION}/segments", "post", "201"): {
        "GetSegment": (SEGMENT, "get", _FROM_SEGMENT),
        "UpdateSegment": (SEGMENT, "patch", _FROM_SEGMENT),
        "Interact": (f"{SEGMENT}/interactions", "post", _FROM_SEGMENT),
        "Undo": (f"{SEGMENT}/undo", "post", _FROM_SEGMENT),
        "Redo": (f"{SEGMENT}/redo", "post", _FROM_SEGMENT),
        "History": (f"{SEGMENT}/history", "get", _FROM_SEGMENT),
        "Mask": (f"{SEGMENT}/mask", "get", _FROM_SEGMENT),
        "Delta": (f"{SEGMENT}/delta", "get", _FROM_SEGMENT),
        "Locks": (f"{SEGMENT}/locks", "get", _FROM_SEGMENT),
        "LockSlice": (f"{SEGMENT}/locks/{{axis}}/{{index}}", "put", _FROM_SEGMENT),
        "UnlockSlice": (f"{SEGMENT}/locks/{{axis}}/{{index}}", "delete", _FROM_SEGMENT),
        "Propagate": (f"{SEGMENT}/propagate", "post", _FROM_SEGMENT),
        "Finetune": (f"{SEGMENT}/finetune", "post", _FROM_SEGMENT),
        "DeleteSegment": (SEGMENT, "delete", _FROM_SEGMENT),
    },
    (f"{SEGMENT}/interactions", "post", "200"): {
        "MaskOfRevision": (f"{SEGMENT}/mask", "get",
                           {**_SEGMENT_OF_REQUEST, "revision": "$response.body#/revision"}),
        "DeltaFromPrevious": (f"{SEGMENT}/delta", "get", {
            **_SEGMENT_OF_REQUEST, "from": "$response.body#/previous_revision",
            "to": "$response.body#/revision"}),
        "UndoIt": (f"{SEGMENT}/undo", "post", _SEGMENT_OF_REQUEST),
        "InteractAgain": (f"{SEGMENT}/interactions", "post", _SEGMENT_OF_REQUEST),
    },
    (f"{SEGMENT}/undo", "post", "200"): {
        "RedoIt": (f"{SEGMENT}/redo", "post", _SEGMENT_OF_REQUEST),
    },
    (f"{SEGMENT}/propagate", "post", "202"): {
        "GetPropagationJob": (JOB, "get", _FROM_JOB),
        "CancelPropagationJob": (f"{JOB}/cancel", "post", _FROM_JOB),
    },
    (f"{SEGMENT}/finetune", "post", "202"): {
        "GetFinetuneJob": (JOB, "get", _FROM_JOB),
        "CancelFinetuneJob": (f"{JOB}/cancel", "post", _FROM_JOB),
    },
}


def add_links(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with LINKS added to its responses (in place); a link whose source or target
    operation is missing is an error: the table must follow the routes."""
    paths = document["paths"]
    for (path, method, status), links in LINKS.items():
        response = paths[path][method]["responses"][status]
        response["links"] = {
            name: {"operationId": paths[target][target_method]["operationId"],
                   "parameters": dict(parameters)}
            for name, (target, target_method, parameters) in links.items()}
    return document


def install(app: FastAPI) -> None:
    """Serve (and export) the app's OpenAPI document with its links."""

    generate = app.openapi  # FastAPI's: builds the document once and keeps it

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            return add_links(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
