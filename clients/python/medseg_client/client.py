"""medseg SDK over httpx: a sync :class:`Client` and an :class:`AsyncClient` with the same methods.

Every endpoint is written once, in :class:`_Endpoints`, as a :class:`_Call` (method, path, body,
parser); ``Client._send`` runs it with ``httpx.Client`` and returns the parsed value, and
``AsyncClient._send`` runs it with ``httpx.AsyncClient`` and returns an awaitable, so
``client.get_session(sid)`` and ``await aclient.get_session(sid)`` share all request code.

Errors raise the tree of :mod:`medseg_client.errors`::

    MedsegError (status, code, message, request_id)
    ├── InvalidRequest (400/415/422)   ├── Unauthorized (401/403)   ├── NotFound (404)
    ├── Conflict (409/423)             ├── TooLarge (413)           ├── ServerError (5xx)
    └── ConnectionFailed (no answer)

``client.view(sid, seg)`` opens a :class:`SegmentView` (see :mod:`medseg_client.models`): a local
mask kept current by the deltas of each change.  Voxel coordinates are ``(z, y, x)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self, TypeGuard

import httpx
import numpy as np

from medseg_client._calls import _Call, _drop_none, _if_match, _json, _none
from medseg_client.editing import EditingEndpoints
from medseg_client.errors import connection_failed, error_from_response
from medseg_client.jobs import AsyncJobMixin, JobEndpoints, SyncJobMixin
from medseg_client.models import (
    AsyncSegmentView,
    Change,
    ExportFile,
    Segment,
    SegmentView,
    Session,
)
from medseg_client.pacs import PacsEndpoints
from medseg_protocol import codec

__all__ = ["AsyncClient", "AsyncSegmentView", "Client", "SegmentView", "upload_parts"]

DEFAULT_URL = "http://127.0.0.1:8000"
Zyx = Sequence[int]
Upload = str | os.PathLike | tuple[str, bytes]


def _named_bytes(x: object) -> TypeGuard[tuple[str, bytes | bytearray]]:
    """A (filename, content) pair."""
    return isinstance(x, tuple) and len(x) == 2 and isinstance(x[1], (bytes, bytearray))


def upload_parts(files: Upload | Sequence[Upload]) -> list[tuple[str, bytes]]:
    """(filename, bytes) for each input; a directory stands for all its files (a DICOM series)."""
    items: list[object]
    if isinstance(files, (str, os.PathLike)) or _named_bytes(files):
        items = [files]
    else:
        items = list(files)
    parts: list[tuple[str, bytes]] = []
    for item in items:
        if _named_bytes(item):
            parts.append((str(item[0]), bytes(item[1])))
            continue
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"cannot upload {item!r}: give a path or a (filename, bytes) pair")
        path = Path(item)
        if path.is_dir():
            members = sorted(p for p in path.iterdir()
                             if p.is_file() and not p.name.startswith("."))
            if not members:
                raise ValueError(f"directory {path} has no files to upload")
            parts.extend((p.name, p.read_bytes()) for p in members)
        else:
            parts.append((path.name, path.read_bytes()))
    if not parts:
        raise ValueError("nothing to upload")
    return parts


def _point(p: Zyx) -> list[int]:
    if len(p) != 3:
        raise ValueError(f"a voxel is (z, y, x), got {p!r}")
    return [int(v) for v in p]


def _labels(foreground: bool | Sequence[bool], n: int) -> list[bool]:
    if isinstance(foreground, (bool, np.bool_)):
        return [bool(foreground)] * n
    labels = [bool(v) for v in foreground]
    if len(labels) != n:
        raise ValueError(f"{len(labels)} foreground labels for {n} marks")
    return labels


def _plane(plane: Any, dim: str, first: Zyx) -> dict[str, Any] | None:
    if plane is None:  # 2d without a plane: the axial slice of the first mark
        return {"axis": "z", "index": int(first[0])} if dim == "2d" else None
    if isinstance(plane, dict):
        return {"axis": plane["axis"], "index": int(plane["index"])}
    axis, index = plane
    return {"axis": str(axis), "index": int(index)}


class _Endpoints:
    """The API, once. ``_send`` returns the parsed answer (sync) or an awaitable of it (async)."""

    def _send(self, call: _Call) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- service ------------------------------------------------------------------------------
    def health(self):
        return self._send(_Call("GET", "/healthz", _json))

    def ready(self):
        return self._send(_Call("GET", "/readyz", _json))

    def capabilities(self):
        return self._send(_Call("GET", "/v1/capabilities", _json))

    def models(self):
        """The trained models the server runs: ``{"models": [...], "problems": {...}}``."""
        return self._send(_Call("GET", "/v1/models", _json))

    # -- sessions -----------------------------------------------------------------------------
    def create_session(self, files: Upload | Sequence[Upload], name: str | None = None):
        parts = [("files", (n, b, "application/octet-stream")) for n, b in upload_parts(files)]
        return self._send(_Call("POST", "/v1/sessions", _session, files=parts,
                                data={"name": name} if name else None))

    def list_sessions(self):
        return self._send(_Call("GET", "/v1/sessions", lambda r: [Session.from_json(s)
                                                                   for s in r.json()]))

    def get_session(self, sid: str):
        return self._send(_Call("GET", f"/v1/sessions/{sid}", _session))

    def delete_session(self, sid: str):
        return self._send(_Call("DELETE", f"/v1/sessions/{sid}", _none))

    def keepalive(self, sid: str):
        """Start the session's idle expiry again: ``{"id", "expires_in_s", "expires_at",
        "archived"}`` (any request on the session does the same)."""
        return self._send(_Call("POST", f"/v1/sessions/{sid}/keepalive", _json))

    def archived_sessions(self):
        """The caller's expired sessions kept in the server's archive, newest first."""
        return self._send(_Call("GET", "/v1/sessions/archived", _json))

    def restore_session(self, sid: str):
        """Bring an archived session back under its own id (the same tenant only)."""
        return self._send(_Call("POST", "/v1/sessions/restore", _session,
                                json={"session_id": sid}))

    def export(self, sid: str, format: str = "nifti", per_segment: bool = False):
        return self._send(_Call("GET", f"/v1/sessions/{sid}/export",
                                lambda r: ExportFile.from_response(r, f"{sid}.{format}"),
                                params={"format": format, "per_segment": per_segment}))

    # -- segments -----------------------------------------------------------------------------
    def _seg(self, sid: str, seg: int | None = None, tail: str = "") -> str:
        base = f"/v1/sessions/{sid}/segments"
        return base + tail if seg is None else f"{base}/{int(seg)}{tail}"

    def create_segment(self, sid: str, name: str | None = None, label: int | None = None,
                       color: str | None = None):
        body = _drop_none(name=name, label=label, color=color)
        return self._send(_Call("POST", self._seg(sid), _segment, json=body))

    def list_segments(self, sid: str):
        return self._send(_Call("GET", self._seg(sid), lambda r: [Segment.from_json(s)
                                                                   for s in r.json()]))

    def get_segment(self, sid: str, seg: int):
        return self._send(_Call("GET", self._seg(sid, seg), _segment))

    def update_segment(self, sid: str, seg: int, name: str | None = None,
                       label: int | None = None, color: str | None = None,
                       reviewed: bool | None = None):
        body = _drop_none(name=name, label=label, color=color, reviewed=reviewed)
        return self._send(_Call("PATCH", self._seg(sid, seg), _segment, json=body))

    def delete_segment(self, sid: str, seg: int):
        return self._send(_Call("DELETE", self._seg(sid, seg), _none))

    # -- interactions -------------------------------------------------------------------------
    def interact(self, sid: str, seg: int, body: dict[str, Any]):
        """POST a raw interaction body (see the API schema); answers a :class:`Change`."""
        return self._send(_Call("POST", self._seg(sid, seg, "/interactions"), _change, json=body))

    def _interaction(self, sid, seg, kind, payload, first, dim, plane, method, params,
                     base_revision):
        body: dict[str, Any] = {"type": kind, **payload, "dim": dim}
        if (p := _plane(plane, dim, first)) is not None:
            body["plane"] = p
        if method:
            body["method"] = method
        if params:
            body["params"] = dict(params)
        if base_revision is not None:
            body["base_revision"] = int(base_revision)
        return self.interact(sid, seg, body)

    def click(self, sid: str, seg: int, points: Sequence[Zyx],
              foreground: bool | Sequence[bool] = True, dim: str = "3d", plane: Any = None,
              method: str | None = None, params: dict | None = None,
              base_revision: int | None = None):
        """Clicks at ``points`` [(z, y, x), ...]; ``foreground`` one bool or one per point."""
        pts = [_point(p) for p in points]
        if not pts:
            raise ValueError("click needs at least one point")
        clicks = [{"zyx": p, "foreground": f} for p, f in zip(pts, _labels(foreground, len(pts)))]
        return self._interaction(sid, seg, "click", {"clicks": clicks}, pts[0], dim, plane,
                                 method, params, base_revision)

    def scribble(self, sid: str, seg: int, paths: Sequence,
                 foreground: bool | Sequence[bool] = True, dim: str = "3d", plane: Any = None,
                 method: str | None = None, params: dict | None = None,
                 base_revision: int | None = None):
        """Scribbles: one polyline [(z, y, x), ...] or a list of them."""
        if paths and len(paths[0]) == 3 and isinstance(paths[0][0], (int, np.integer)):
            paths = [paths]  # a single polyline
        polylines = [[_point(p) for p in path] for path in paths]
        if not polylines or not all(polylines):
            raise ValueError("scribble needs at least one non-empty polyline")
        marks = [{"path": path, "foreground": f}
                 for path, f in zip(polylines, _labels(foreground, len(polylines)))]
        return self._interaction(sid, seg, "scribble", {"scribbles": marks}, polylines[0][0],
                                 dim, plane, method, params, base_revision)

    def box(self, sid: str, seg: int, lo: Zyx, hi: Zyx, dim: str = "3d", plane: Any = None,
            method: str | None = None, params: dict | None = None,
            base_revision: int | None = None):
        """A box with inclusive corners ``lo`` and ``hi`` (z, y, x)."""
        box = {"lo": _point(lo), "hi": _point(hi)}
        return self._interaction(sid, seg, "box", {"box": box}, box["lo"], dim, plane, method,
                                 params, base_revision)

    def points(self, sid: str, seg: int, points: Sequence[Zyx], dim: str = "2d",
               plane: Any = None, method: str | None = "mideepseg", params: dict | None = None,
               base_revision: int | None = None):
        """Interior margin points [(z, y, x), ...] (inside the object, near its boundary, at
        least 3): start the segment afresh with MIDeepSeg; refine with :meth:`click`
        (``method="mideepseg"``)."""
        pts = [_point(p) for p in points]
        if not pts:
            raise ValueError("points needs at least one point")
        return self._interaction(sid, seg, "points", {"points": pts}, pts[0], dim, plane,
                                 method, params, base_revision)

    def undo(self, sid: str, seg: int, revision: int | None = None):
        """Undo the head; ``revision`` (If-Match) makes it fail with Conflict when stale."""
        return self._send(_Call("POST", self._seg(sid, seg, "/undo"), _change,
                                headers=_if_match(revision)))

    def redo(self, sid: str, seg: int, revision: int | None = None):
        return self._send(_Call("POST", self._seg(sid, seg, "/redo"), _change,
                                headers=_if_match(revision)))

    def remove_interaction(self, sid: str, seg: int, interaction_revision: int,
                           revision: int | None = None):
        """Remove the interaction that made ``interaction_revision`` from the history: a new
        head revision, the rest replayed without it (one undo brings it back). ``revision``
        (If-Match) makes it fail with Conflict when stale."""
        return self._send(_Call("DELETE", self._seg(sid, seg,
                                                    f"/interactions/{int(interaction_revision)}"),
                                _change, headers=_if_match(revision)))

    # -- revisions ----------------------------------------------------------------------------
    def history(self, sid: str, seg: int):
        return self._send(_Call("GET", self._seg(sid, seg, "/history"), _json))

    def hints(self, sid: str, seg: int, k: int = 3):
        """The regions of the segment's head revision most likely wrong, ranked: a dict with
        `revision` and `hints` (each `rank`, `kind` missing/extra, `centre` [z, y, x], `box`,
        `voxels`, `volume_ml`, `likelihood`)."""
        return self._send(_Call("GET", self._seg(sid, seg, "/hints"), _json, params={"k": k}))

    def mask(self, sid: str, seg: int, revision: int | None = None):
        """The mask of a revision (head by default) as a bool (Z, Y, X) numpy array."""
        return self._send(_Call("GET", self._seg(sid, seg, "/mask"),
                                lambda r: codec.decode_mask(r.json()),
                                params={"revision": revision}))

    def mask_file(self, sid: str, seg: int, revision: int | None = None, format: str = "nifti"):
        return self._send(_Call("GET", self._seg(sid, seg, "/mask"),
                                lambda r: ExportFile.from_response(r, f"segment-{seg}.{format}"),
                                params={"revision": revision, "format": format}))

    def delta(self, sid: str, seg: int, from_revision: int, to_revision: int | None = None):
        """The ``rle-xor/1`` delta between two revisions (dict; apply with codec.apply_delta)."""
        return self._send(_Call("GET", self._seg(sid, seg, "/delta"), _json,
                                params={"from": from_revision, "to": to_revision}))


def _session(r: httpx.Response) -> Session:
    return Session.from_json(r.json())


def _segment(r: httpx.Response) -> Segment:
    return Segment.from_json(r.json())


def _change(r: httpx.Response) -> Change:
    return Change.from_json(r.json())


def _settings(base_url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    url = (base_url or os.environ.get("MEDSEG_URL") or DEFAULT_URL).rstrip("/")
    key = api_key if api_key is not None else os.environ.get("MEDSEG_API_KEY")
    headers = {"User-Agent": "medseg-client/0.1"}
    if key:
        headers["X-API-Key"] = key
    return url, headers


def _finish(call: _Call, response: httpx.Response) -> Any:
    if response.is_error:
        raise error_from_response(response)
    return call.parse(response)


class Client(_Endpoints, JobEndpoints, PacsEndpoints, EditingEndpoints, SyncJobMixin):
    """Synchronous client; use as a context manager or call :meth:`close`."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 120.0, **httpx_kwargs: Any):
        self.base_url, headers = _settings(base_url, api_key)
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout,
                                  **httpx_kwargs)

    def _send(self, call: _Call) -> Any:
        try:
            response = self._http.request(call.method, call.path, **call.request_kwargs())
        except httpx.TransportError as exc:
            raise connection_failed(self.base_url, exc) from exc
        return _finish(call, response)

    def view(self, sid: str, seg: int) -> SegmentView:
        return SegmentView.open(self, sid, seg)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Endpoints, JobEndpoints, PacsEndpoints, EditingEndpoints, AsyncJobMixin):
    """Asynchronous client: the same methods as :class:`Client`, each to be awaited."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 120.0, **httpx_kwargs: Any):
        self.base_url, headers = _settings(base_url, api_key)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout,
                                       **httpx_kwargs)

    async def _send(self, call: _Call) -> Any:
        try:
            response = await self._http.request(call.method, call.path, **call.request_kwargs())
        except httpx.TransportError as exc:
            raise connection_failed(self.base_url, exc) from exc
        return _finish(call, response)

    async def view(self, sid: str, seg: int) -> AsyncSegmentView:
        return await AsyncSegmentView.open(self, sid, seg)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
