"""Without an archive: the PACS configuration (secrets never shown, tenants kept apart), the
SEG builder and reader on the shared series' headers (organ codes, provenance, label-map
overlaps, another series refused), DICOM SEG on a session that did not come from DICOM, and
on an uploaded DICOM series (with its UIDs: as from a PACS; anonymised: the missing UIDs named)."""

from __future__ import annotations

import io
import json

import numpy as np
import pydicom
import pytest

from medseg.engine.imageio.dicom_seg import (
    Algorithm,
    SegIdentity,
    SegmentInput,
    build_seg,
    derived_uid,
    organ_code,
    read_seg,
)
from medseg.errors import SeriesMismatch, UnknownName
from medseg.pacs.config import parse
from tests.conftest import make_settings
from tests.pacs.orthanc import prepared_series

SECRET = "s3cr3t-pw-123"


def test_config_keeps_secrets_and_tenants_apart():
    config = parse(json.dumps({"main": {"url": "http://pacs/dicom-web", "tenants": ["alice"],
                                        "auth": {"type": "basic", "username": "u",
                                                 "password": SECRET}}}))
    endpoint = config.get("main", "alice")
    assert SECRET not in repr(endpoint) and SECRET not in str(endpoint.model_dump())
    with pytest.raises(UnknownName) as refused:
        config.get("main", "bob")  # another tenant's archive reads as unknown
    assert "main" in refused.value.message and "available: none" in refused.value.message
    with pytest.raises(ValueError) as bad:
        parse(json.dumps({"x": {"url": "ftp://nope", "tenants": ["a"],
                                "auth": {"type": "basic", "username": "u",
                                         "password": SECRET}}}))
    assert "'x'" in str(bad.value) and "url" in str(bad.value) and SECRET not in str(bad.value)
    with pytest.raises(ValueError, match="not valid JSON"):
        parse("{nope")


def test_settings_refuse_a_bad_archive_at_start(redis_url):
    with pytest.raises(ValueError, match="tenants"):
        make_settings(redis_url, pacs=json.dumps({"main": {"url": "http://pacs"}}))
    settings = make_settings(redis_url, pacs=json.dumps({"main": {
        "url": "http://pacs", "tenants": ["*"], "auth": {"type": "bearer", "token": SECRET}}}))
    assert SECRET not in repr(settings)
    assert [e.name for e in settings.pacs_config.for_tenant("anyone")] == ["main"]


@pytest.mark.parametrize("name, value", [("liver", "10200004"), ("Kidney_left", "64033007"),
                                         ("vertebrae L1", "51282000"), ("urinary bladder",
                                                                        "89837001"),
                                         ("lesion 3", None)])
def test_organ_codes(name, value):
    code = organ_code(name)
    assert (code.value if code else None) == value


@pytest.fixture(scope="module")
def headers(ct_folder):
    """The shared series' headers (with UIDs) in slice order, without pixel data."""
    series = prepared_series(ct_folder)
    ordered = sorted(series.datasets, key=lambda d: float(d.ImagePositionPatient[2]))
    out = []
    for ds in ordered:
        header = pydicom.Dataset(ds)
        header.file_meta = ds.file_meta
        del header.PixelData
        out.append(header)
    return out


def _segment(number, label, mask, kind="AUTOMATIC"):
    return SegmentInput(number=number, label=label, color="#e6194b", mask=mask,
                        algorithm=Algorithm(kind, "medseg test", "1"),
                        tracking_id=f"segment {number} revision 7",
                        tracking_uid=derived_uid("t", str(number)))


def test_label_map_keeps_the_later_segment_and_reads_back(headers):
    shape = (len(headers), int(headers[0].Rows), int(headers[0].Columns))
    a = np.zeros(shape, bool)
    a[3:9, 100:200, 100:200] = True
    b = np.zeros(shape, bool)
    b[5:12, 150:260, 150:260] = True
    identity = SegIdentity(derived_uid("series"), derived_uid("sop"), 7)
    uids = [str(h.SOPInstanceUID) for h in headers]
    series_uid = str(headers[0].SeriesInstanceUID)
    for form in ("binary", "labelmap"):
        content = build_seg(headers, [_segment(1, "liver", a), _segment(2, "lesion", b,
                                                                         "SEMIAUTOMATIC")],
                            form, identity, "0.1.0")
        read = read_seg(content, series_uid, uids)
        assert read.form == form and [s.label for s in read.segments] == ["liver", "lesion"]
        expected_a = a & ~b if form == "labelmap" else a
        np.testing.assert_array_equal(read.segments[0].mask, expected_a)
        np.testing.assert_array_equal(read.segments[1].mask, b)
        ds = pydicom.dcmread(io.BytesIO(content))
        # (highdicom adds segment 0, "Background", to a label map)
        items = [s for s in ds.SegmentSequence if int(s.SegmentNumber) > 0]
        assert [str(s.SegmentAlgorithmType) for s in items] == ["AUTOMATIC", "SEMIAUTOMATIC"]
        assert items[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"
        assert items[1].SegmentedPropertyTypeCodeSequence[0].CodeValue == "85756007"
        assert ds.SOPInstanceUID == identity.sop_instance_uid  # deterministic identity
        with pytest.raises(SeriesMismatch, match="another series"):
            read_seg(content, series_uid + ".1", uids)


def test_dicom_seg_needs_a_dicom_source(client, totalseg):
    from tests.api.helpers import upload

    session = upload(client, totalseg / "ct_3mm.nii.gz")
    client.post(f"/v1/sessions/{session['id']}/segments", json={"name": "liver"})
    answer = client.get(f"/v1/sessions/{session['id']}/export",
                        params={"format": "dicom-seg"})
    assert answer.status_code == 422 and answer.json()["error"] == "no_dicom_source"
    message = answer.json()["message"]
    assert "holds a nifti image, not a DICOM series" in message
    assert "has none" in message and "UIDs" in message  # why: nothing to reference
    assert "format=nifti" in message and "upload the DICOM series" in message  # what to do
    assert session["source"] is None


def _segment_from_reference(client, sid: str, totalseg) -> dict:
    """The liver of the shared series' reference mask, imported onto the session."""
    path = totalseg / "ct_dicom_seg.nii.gz"
    answer = client.post(f"/v1/sessions/{sid}/segments/import", params={"labels": 5},
                         files={"file": (path.name, path.read_bytes())})
    assert answer.status_code == 201, answer.text
    return answer.json()[0]


def test_an_uploaded_dicom_series_exports_and_imports_dicom_seg(client, totalseg, ct_folder):
    """A PACS integrator uploading a series (the DICOM files, with their UIDs) gets DICOM SEG
    of it as from a PACS pull: it references the uploaded series and every instance, holds the
    session's mask voxel for voxel, and imports back onto the session."""
    from tests.api.helpers import full_mask
    from tests.pacs.orthanc import part10

    series = prepared_series(ct_folder, name="uploaded")
    files = [("files", (f"slice{k}.dcm", part10(ds), "application/dicom"))
             for k, ds in enumerate(series.datasets)]
    answer = client.post("/v1/sessions", files=files)
    assert answer.status_code == 201, answer.text
    session = answer.json()
    sid = session["id"]
    assert session["source"]["kind"] == "upload" and session["source"]["instances"] == 20
    assert session["source"]["series_instance_uid"] == series.series_uid
    liver = _segment_from_reference(client, sid, totalseg)
    mask = full_mask(client, sid, liver["id"])
    assert mask.sum() > 10_000

    source = client.get(f"/v1/sessions/{sid}/dicom").json()["source"]
    assert source["pacs"] is None and sorted(source["sop_instance_uids"]) == \
        sorted(series.sop_uids)
    for fmt in ("dicom-seg", "dicom-seg-labelmap"):
        answer = client.get(f"/v1/sessions/{sid}/export", params={"format": fmt})
        assert answer.status_code == 200, answer.text
        seg = pydicom.dcmread(io.BytesIO(answer.content))
        assert seg.StudyInstanceUID == series.study_uid
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.series_uid
        read = read_seg(answer.content, series.series_uid, source["sop_instance_uids"])
        np.testing.assert_array_equal(read.segments[0].mask, mask)
    imported = client.post(f"/v1/sessions/{sid}/import", files={"file": (
        "seg.dcm", answer.content, "application/dicom")})
    assert imported.status_code == 201, imported.text
    np.testing.assert_array_equal(full_mask(client, sid, imported.json()[0]["id"]), mask)
    # a push needs an archive named: the upload came from none
    pushed = client.post(f"/v1/sessions/{sid}/push", json={})
    assert pushed.status_code == 422 and "name one" in pushed.json()["message"], pushed.text


def test_an_anonymised_series_upload_says_why_it_has_no_dicom_seg(client, totalseg, ct_folder):
    """The shared series as it is (a zip): its Study, Series and SOP Instance UIDs are empty,
    so no SEG can reference it; the answer names the missing UIDs instead of 'not from DICOM'."""
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(ct_folder.iterdir()):
            archive.writestr(path.name, path.read_bytes())
    answer = client.post("/v1/sessions", files={"files": ("ct.zip", buffer.getvalue())})
    assert answer.status_code == 201, answer.text
    sid = answer.json()["id"]
    _segment_from_reference(client, sid, totalseg)
    answer = client.get(f"/v1/sessions/{sid}/export", params={"format": "dicom-seg"})
    assert answer.status_code == 422 and answer.json()["error"] == "no_dicom_source"
    message = answer.json()["message"]
    assert "uploaded as a DICOM series" in message
    assert "StudyInstanceUID" in message and "SeriesInstanceUID" in message
    assert "SOPInstanceUID" in message and "nifti" in message


def _small(headers, size: int = 16) -> list:
    """The series' headers on a size x size grid: a SEG of many segments stays small."""
    out = []
    for header in headers:
        small = pydicom.Dataset(header)
        small.file_meta = header.file_meta
        small.Rows = small.Columns = size
        out.append(small)
    return out


def test_a_seg_of_too_many_segments_is_refused_before_its_frames_are_read(headers):
    """A SEG declares its segments in a few bytes each, and each would be a whole-volume mask:
    more than 255, or more mask bytes than the decode budget, is a 413 before any frame is
    decoded (one voxel per segment here: the file is a few KB)."""
    from medseg.engine.imageio.dicom_seg import MAX_READ_SEGMENTS
    from medseg.errors import ImageTooLarge

    small = _small(headers)
    shape = (len(small), 16, 16)
    segments = []
    for number in range(1, MAX_READ_SEGMENTS + 2):
        mask = np.zeros(shape, bool)
        mask.flat[number * 7] = True
        segments.append(_segment(number, f"part {number}", mask))
    identity = SegIdentity(derived_uid("many"), derived_uid("many-sop"), 1)
    uids = [str(h.SOPInstanceUID) for h in small]
    series_uid = str(small[0].SeriesInstanceUID)
    content = build_seg(small, segments, "labelmap", identity, "0.1.0")
    with pytest.raises(ImageTooLarge, match=f"{MAX_READ_SEGMENTS + 1} segments"):
        read_seg(content, series_uid, uids)
    fewer = build_seg(small, segments[:3], "labelmap", identity, "0.1.0")
    voxels = shape[0] * shape[1] * shape[2]
    assert len(read_seg(fewer, series_uid, uids, max_bytes=3 * voxels).segments) == 3
    with pytest.raises(ImageTooLarge, match="over the limit"):
        read_seg(fewer, series_uid, uids, max_bytes=3 * voxels - 1)
