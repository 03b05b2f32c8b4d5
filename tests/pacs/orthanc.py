"""A real Orthanc (Debian packages `orthanc`, `orthanc-dicomweb`) for the PACS tests: started
on free loopback ports with its own temporary storage (never the system service), with HTTP
basic authentication on, and the shared 20-slice CT series stored in it.

The shared series is anonymised: its Study, Series and SOP Instance UIDs and its SOP Class UID
are empty, which Orthanc refuses. `prepared_series` writes a copy with deterministic UIDs
(pydicom), as a real archive's data would have; variants of it (one slice resized, one slice
turned) make the series a reader must refuse."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pydicom
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from medseg.store.embedded import die_with_parent, free_port, terminate
from tests.polling import poll

ORTHANC = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
USER, PASSWORD = "medseg", "orthanc-test-secret"
INSTALL_HINT = ("the PACS tests need Orthanc and its DICOMweb plug-in: `make test` installs "
                "them, or `apt-get install orthanc orthanc-dicomweb`")


def uid(*parts: str) -> str:
    """A deterministic UID (pydicom's generate_uid is random under the 2.25 root)."""
    digest = hashlib.sha256("\0".join(["medseg-tests", *parts]).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


@dataclass
class Series:
    study_uid: str
    series_uid: str
    sop_uids: list[str]  # in the order of the shared files
    datasets: list[pydicom.Dataset] = field(repr=False, default_factory=list)


def prepared_series(folder: Path, name: str = "ct", study: str = "study-1",
                    variant: str | None = None) -> Series:
    """The shared series with deterministic UIDs (a fake patient), optionally damaged:
    variant "mixed-sizes" (slice 3 is 256 x 256) or "mixed-orientations" (slice 3 turned)."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    study_uid, series_uid = uid(study), uid(study, name)
    out = Series(study_uid, series_uid, [])
    for index, path in enumerate(files):
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = uid(study, name, str(index))
        ds.SOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.PatientName, ds.PatientID = "Test^Pacs", "MEDSEG-TEST-0001"
        ds.StudyID, ds.SeriesNumber = "1", 2 if variant else 1
        if variant == "mixed-sizes" and index == 3:
            pixels = ds.pixel_array[::2, ::2].copy()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.Rows, ds.Columns = pixels.shape
            ds.PixelData = pixels.astype(np.uint16).tobytes()
        if variant == "mixed-orientations" and index == 3:
            ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
        out.sop_uids.append(str(ds.SOPInstanceUID))
        out.datasets.append(ds)
    return out


def part10(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@dataclass
class Orthanc:
    url: str  # REST root
    folder: Path

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=(USER, PASSWORD), timeout=30)

    def store(self, series: Series) -> None:
        """Through Orthanc's own REST API (not the code under test)."""
        with self.http() as http:
            for ds in series.datasets:
                answer = http.post("/instances", content=part10(ds))
                assert answer.status_code == 200, answer.text

    def instance_count(self, study_uid: str) -> int:
        with self.http() as http:
            found = http.post("/tools/find", json={"Level": "Instance", "Query": {
                "StudyInstanceUID": study_uid}}).json()
        return len(found)

    def pacs_entry(self, tenants=("alice",), password: str = PASSWORD, url: str | None = None,
                   **extra) -> dict:
        return {"url": url or self.dicomweb, "tenants": list(tenants),
                "auth": {"type": "basic", "username": USER, "password": password},
                "timeout_s": 30, **extra}


@contextmanager
def running_orthanc() -> Iterator[Orthanc]:
    if shutil.which(ORTHANC) is None or not Path(DICOMWEB_PLUGIN).exists():
        raise RuntimeError(INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="medseg-orthanc-") as tmp:
        folder = Path(tmp)
        http_port, dicom_port = free_port(), free_port()
        config = {
            "Name": "medseg-tests", "StorageDirectory": str(folder / "db"),
            "IndexDirectory": str(folder / "db"), "HttpPort": http_port,
            "DicomPort": dicom_port, "DicomServerEnabled": False,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: PASSWORD}, "Plugins": [DICOMWEB_PLUGIN],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "HttpCompressionEnabled": False,
        }
        (folder / "orthanc.json").write_text(json.dumps(config))
        with open(folder / "orthanc.log", "wb") as log:
            # it dies with the test run however that ends (a killed run left it serving)
            process = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=log,
                                       stderr=subprocess.STDOUT, cwd=folder,
                                       preexec_fn=die_with_parent)  # noqa: PLW1509
            orthanc = Orthanc(f"http://127.0.0.1:{http_port}", folder)

            def status() -> int | str:
                try:
                    return httpx.get(f"{orthanc.url}/system", auth=(USER, PASSWORD),
                                     timeout=1).status_code
                except httpx.TransportError as exc:
                    return type(exc).__name__

            try:
                poll(status, lambda s: s == 200, 60, "Orthanc answering",
                     hopeless=lambda _: process.poll() is not None, interval_s=0.1)
            except AssertionError as exc:
                process.kill()
                raise RuntimeError(f"{exc}\n{(folder / 'orthanc.log').read_text()}") from None
            try:
                yield orthanc
            finally:
                terminate(process, timeout_s=10)
