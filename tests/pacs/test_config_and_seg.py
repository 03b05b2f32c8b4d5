"""Without an archive: the PACS configuration (secrets never shown, tenants kept apart), the
SEG builder and reader on the shared series' headers (organ codes, provenance, label-map
overlaps, another series refused), and DICOM SEG on a session that did not come from DICOM."""

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
    assert session["source"] is None
