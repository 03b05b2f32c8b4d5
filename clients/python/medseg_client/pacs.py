"""PACS endpoints of the SDK (mixed into `Client` and `AsyncClient`): the tenant's archives,
a session from DICOMweb, DICOM SEG import, push-back as a job, the session's DICOM source.
DICOM SEG export is `client.export(sid, format="dicom-seg" | "dicom-seg-labelmap")`."""

from __future__ import annotations

from typing import Any

from medseg_client._calls import _Call, _json
from medseg_client.jobs import _job
from medseg_client.models import Segment, Session


class PacsEndpoints:
    def _send(self, call: _Call) -> Any:  # pragma: no cover - provided by the client
        raise NotImplementedError

    def list_pacs(self):
        """The archives configured on the server for your tenant: ``[{"name", ...}]``."""
        return self._send(_Call("GET", "/v1/pacs", _json))

    def session_from_pacs(self, pacs: str, study_uid: str, series_uid: str,
                          name: str | None = None, reuse: bool = True):
        """Open a session on a series of a configured archive (QIDO-RS + WADO-RS on the
        server); ``reuse`` copies the image of a live session of the same series."""
        body = {"pacs": pacs, "study_uid": study_uid, "series_uid": series_uid,
                "name": name, "reuse": reuse}
        return self._send(_Call("POST", "/v1/sessions/from-pacs",
                                lambda r: Session.from_json(r.json()), json=body))

    def import_seg(self, sid: str, content: bytes, filename: str = "seg.dcm"):
        """Each segment of a DICOM SEG of the session's series becomes a segment."""
        return self._send(_Call(
            "POST", f"/v1/sessions/{sid}/import",
            lambda r: [Segment.from_json(s) for s in r.json()], params={"format": "dicom-seg"},
            files=[("file", (filename, content, "application/dicom"))]))

    def push(self, sid: str, form: str = "binary", pacs: str | None = None,
             attempts: int = 4, backoff_s: float = 1.0):
        """Start a job that stores the segments' current revisions as one DICOM SEG in the
        archive (default: the image's own); idempotent. Its result lists the stored UIDs."""
        body = {"form": form, "pacs": pacs, "attempts": attempts, "backoff_s": backoff_s}
        return self._send(_Call("POST", f"/v1/sessions/{sid}/push", _job,
                                json={k: v for k, v in body.items() if v is not None}))

    def dicom_source(self, sid: str):
        """The session's DICOM source and every DICOM SEG made from it."""
        return self._send(_Call("GET", f"/v1/sessions/{sid}/dicom", _json))
