"""The one DICOMweb client of the service (dicomweb-client over requests): find a series'
instances (QIDO-RS), retrieve them (WADO-RS), ask whether an instance is stored, store one
(STOW-RS). Every failure is a `PacsError` naming the archive by its configured name: never its
URL, its credentials or the UIDs asked for (identifiers of a patient's study)."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient

from medseg.errors import PacsAuthFailed, PacsError, PacsNotFound, PacsUnavailable
from medseg.pacs.config import BasicAuth, BearerAuth, PacsEndpoint

# dicomweb-client logs request URLs (which carry study and series UIDs) at INFO / DEBUG
logging.getLogger("dicomweb_client").setLevel(logging.WARNING)

ORIGINAL_TRANSFER_SYNTAX = (("application/dicom", "*"),)  # no transcoding by the archive


class PacsClient:
    def __init__(self, endpoint: PacsEndpoint):
        self.endpoint = endpoint
        session = requests.Session()
        headers = {}
        if isinstance(endpoint.auth, BasicAuth):
            session.auth = (endpoint.auth.username, endpoint.auth.password.get_secret_value())
        elif isinstance(endpoint.auth, BearerAuth):
            headers["Authorization"] = f"Bearer {endpoint.auth.token.get_secret_value()}"
        self._client = DICOMwebClient(endpoint.url, session=session, headers=headers,
                                      timeout=endpoint.timeout_s)
        # one attempt per call: the push job retries with its own back-off, and a viewer
        # waiting for a session wants a clear answer, not a minute of silent retries
        self._client.set_http_retry_params(retry=False)

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        name = self.endpoint.name
        try:
            yield
        except requests.exceptions.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status in (401, 403):
                raise PacsAuthFailed(f"PACS {name!r} refused the credentials configured for it "
                                     f"(HTTP {status}) while {doing}; check MEDSEG_PACS on "
                                     "the server") from None
            if status == 404:
                raise PacsNotFound(f"PACS {name!r} has no such study or series (HTTP 404) "
                                   f"while {doing}") from None
            if status >= 500 or status in (408, 429):
                raise PacsUnavailable(f"PACS {name!r} failed (HTTP {status}) while {doing}; "
                                      "retry later") from None
            raise PacsError(f"PACS {name!r} refused the request (HTTP {status}) while "
                            f"{doing}") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):
            raise PacsUnavailable(f"PACS {name!r} cannot be reached (connection refused or "
                                  f"timed out) while {doing}; retry later") from None
        except requests.exceptions.RequestException as exc:
            raise PacsUnavailable(f"PACS {name!r}: {type(exc).__name__} while {doing}") from None

    def series_instances(self, study_uid: str, series_uid: str) -> list[dict[str, Any]]:
        """The QIDO-RS records (DICOM JSON) of the series' instances; PacsNotFound if none."""
        with self._errors("searching the series"):
            found = self._client.search_for_instances(
                study_uid, series_uid, fields=["00280010", "00280011", "00280008"],
                get_remaining=True)
        if not found:
            raise PacsNotFound(f"PACS {self.endpoint.name!r} has no instances for the given "
                               "study and series UIDs")
        return found

    def retrieve_series(self, study_uid: str, series_uid: str,
                        progress: Callable[[int], None] | None = None) -> list[pydicom.Dataset]:
        """Every instance of the series (WADO-RS, in the archive's own transfer syntax)."""
        datasets = []
        with self._errors("retrieving the series"):
            for ds in self._client.iter_series(study_uid, series_uid,
                                               media_types=ORIGINAL_TRANSFER_SYNTAX):
                datasets.append(ds)
                if progress is not None:
                    progress(len(datasets))
        return datasets

    def instance_exists(self, study_uid: str, series_uid: str, sop_uid: str) -> bool:
        with self._errors("looking for a stored instance"):
            try:
                found = self._client.search_for_instances(
                    study_uid, series_uid, search_filters={"SOPInstanceUID": sop_uid})
            except requests.exceptions.HTTPError as exc:
                if exc.response is not None and exc.response.status_code == 404:
                    return False
                raise
        return any(_value(r, "00080018") == sop_uid for r in found)

    def store(self, content: bytes, study_uid: str) -> None:
        """STOW-RS one Part 10 object; PacsError when the archive reports it failed."""
        dataset = pydicom.dcmread(io.BytesIO(content))
        with self._errors("storing the segmentation"):
            answer = self._client.store_instances([dataset], study_instance_uid=study_uid)
        failed = answer.get("FailedSOPSequence") if answer is not None else None
        if failed:
            reason = failed[0].get("FailureReason", "unknown")
            raise PacsError(f"PACS {self.endpoint.name!r} did not store the segmentation "
                            f"(failure reason {reason})")


def _value(record: dict[str, Any], tag: str) -> Any:
    values = record.get(tag, {}).get("Value") or [None]
    return values[0]


def qido_value(record: dict[str, Any], tag: str) -> Any:
    return _value(record, tag)
