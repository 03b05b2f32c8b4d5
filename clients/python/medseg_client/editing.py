"""Editing endpoints of the SDK (issue 14; mixed into `Client` and `AsyncClient`): import an
existing mask or copy a segment, the manual tools (paint, erase, fill) and the editing tools
(select, brush, adjust). Each tool is one interaction answered with a :class:`Change`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medseg_client._calls import _Call
from medseg_client.models import Segment

Zyx = Sequence[int]


def _zyx(p: Zyx) -> list[int]:
    z, y, x = (int(v) for v in p)
    return [z, y, x]


def _plane_of(plane: Any, dim: str, first: list[int] | None) -> dict[str, Any] | None:
    if dim != "2d":
        return None
    if plane is None:
        if first is None:
            raise ValueError("a 2D edit without marks needs plane=(axis, index)")
        return {"axis": "z", "index": first[0]}
    if isinstance(plane, dict):
        return {"axis": plane["axis"], "index": int(plane["index"])}
    axis, index = plane
    return {"axis": str(axis), "index": int(index)}


class EditingEndpoints:
    def _send(self, call: _Call) -> Any:  # pragma: no cover - provided by the client
        raise NotImplementedError

    def interact(self, sid: str, seg: int, body: dict[str, Any]):  # pragma: no cover
        raise NotImplementedError

    def import_mask(self, sid: str, content: bytes, filename: str = "mask.nii.gz",
                    name: str | None = None, labels: Sequence[int] | None = None,
                    binary: bool = False):
        """A mask file (NIfTI, NRRD or PNG on the session image's grid) as new segments: one
        for a binary mask, one per label value of a label map (``labels`` picks values;
        ``binary`` makes every voxel > 0 foreground). A file on another grid: 422
        geometry_mismatch."""
        params: dict[str, Any] = {"binary": binary}
        if name is not None:
            params["name"] = name
        if labels is not None:
            params["labels"] = [int(v) for v in labels]
        return self._send(_Call(
            "POST", f"/v1/sessions/{sid}/segments/import",
            lambda r: [Segment.from_json(s) for s in r.json()], params=params,
            files=[("file", (filename, content, "application/octet-stream"))]))

    def copy_segment(self, sid: str, seg: int, revision: int | None = None,
                     name: str | None = None):
        """A new segment whose first revision is this segment's mask (at ``revision``)."""
        body = {k: v for k, v in (("revision", revision), ("name", name)) if v is not None}
        return self._send(_Call("POST", f"/v1/sessions/{sid}/segments/{int(seg)}/copy",
                                lambda r: Segment.from_json(r.json()), json=body))

    def _edit(self, sid, seg, kind, payload, first, dim, plane, method, base_revision,
              params=None):
        body: dict[str, Any] = {"type": kind, **payload, "dim": dim}
        if (p := _plane_of(plane, dim, first)) is not None:
            body["plane"] = p
        if method:
            body["method"] = method
        if params:
            body["params"] = dict(params)
        if base_revision is not None:
            body["base_revision"] = int(base_revision)
        return self.interact(sid, seg, body)

    def paint(self, sid: str, seg: int, path: Sequence[Zyx], radius_mm: float = 2.0,
              dim: str = "2d", plane: Any = None, erase: bool = False,
              base_revision: int | None = None):
        """Paint (or erase) every voxel within ``radius_mm`` of the polyline ``path``: a disc
        on the plane in 2D (default: the z slice of the first point), a ball in 3D."""
        points = [_zyx(p) for p in path]
        if not points:
            raise ValueError("paint needs at least one point")
        return self._edit(sid, seg, "erase" if erase else "paint",
                          {"path": points, "radius_mm": float(radius_mm)}, points[0], dim,
                          plane, None, base_revision)

    def erase(self, sid: str, seg: int, path: Sequence[Zyx], radius_mm: float = 2.0,
              dim: str = "2d", plane: Any = None, base_revision: int | None = None):
        return self.paint(sid, seg, path, radius_mm, dim, plane, True, base_revision)

    def fill(self, sid: str, seg: int, points: Sequence[Zyx], plane: Any = None,
             base_revision: int | None = None):
        """Flood-fill the closed 2D region of background each point lands in."""
        clicks = [_zyx(p) for p in points]
        return self._edit(sid, seg, "fill", {"clicks": clicks}, clicks[0] if clicks else None,
                          "2d", plane, None, base_revision)

    def select(self, sid: str, seg: int, points: Sequence[Zyx], foreground: bool = True,
               dim: str = "2d", plane: Any = None, method: str | None = None,
               base_revision: int | None = None):
        """Selection tool: each click fills (foreground) or erases the region it lands in."""
        clicks = [{"zyx": _zyx(p), "foreground": bool(foreground)} for p in points]
        first = clicks[0]["zyx"] if clicks else None
        return self._edit(sid, seg, "select", {"clicks": clicks}, first, dim, plane, method,
                          base_revision)

    def brush(self, sid: str, seg: int, path: Sequence[Zyx], foreground: bool = True,
              dim: str = "2d", plane: Any = None, method: str | None = None,
              base_revision: int | None = None):
        """Brush tool: a stroke over a boundary error, adding (foreground) or removing."""
        points = [_zyx(p) for p in path]
        scribbles = [{"path": points, "foreground": bool(foreground)}]
        return self._edit(sid, seg, "brush", {"scribbles": scribbles},
                          points[0] if points else None, dim, plane, method, base_revision)

    def adjust(self, sid: str, seg: int, amount: float, dim: str = "2d", plane: Any = None,
               method: str | None = None, base_revision: int | None = None):
        """Adjustment tool: grow (amount > 0) or shrink the boundary to about (1 + amount) x
        the mask's voxels, on ``plane`` in 2D or the whole volume in 3D; monotone."""
        return self._edit(sid, seg, "adjust", {"amount": float(amount)}, None, dim, plane,
                          method, base_revision)

    def organ(self, sid: str, seg: int, organ: str, method: str | None = None,
              params: dict | None = None, base_revision: int | None = None):
        """Automatic start (RefineNet): the organ network segments ``organ`` (e.g. "liver")
        in the whole volume with no clicks; the mask replaces the segment's. Correct it with
        2D clicks of method "refinenet". An unknown organ: 422 naming the known ones."""
        return self._edit(sid, seg, "organ", {"organ": str(organ)}, None, "3d", None, method,
                          base_revision, params)
