"""A session from a real Orthanc (QIDO-RS + WADO-RS), and every way it can fail: each a clear
error, no session left half-made, and neither a credential nor a UID in a message."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from medseg.engine import imageio
from medseg.store.dicom_source import DicomSourceStore
from tests.pacs.orthanc import PASSWORD


def _open(client, series, pacs="main", **extra):
    return client.post("/v1/sessions/from-pacs", json={
        "pacs": pacs, "study_uid": series.study_uid, "series_uid": series.series_uid, **extra})


def _sessions(client) -> set[str]:
    return {s["id"] for s in client.get("/v1/sessions").json()}


def test_session_from_pacs_matches_the_uploaded_series(pacs_client, ct_series, ct_folder):
    answer = _open(pacs_client, ct_series, reuse=False)
    assert answer.status_code == 201, answer.text
    session = answer.json()
    source = session["source"]
    assert source["pacs"] == "main" and source["instances"] == 20 and not source["reused"]
    assert source["series_instance_uid"] == ct_series.series_uid
    assert source["study_instance_uid"] == ct_series.study_uid
    frame = str(ct_series.datasets[0].FrameOfReferenceUID)
    assert source["frame_of_reference_uid"] == frame
    # the same volume, voxel for voxel and in the same geometry, as an upload of the files
    files = [(p.name, p.read_bytes()) for p in sorted(ct_folder.iterdir())]
    uploaded = imageio.load_image(files)
    assert session["shape"] == list(uploaded.shape)
    np.testing.assert_allclose(session["affine"], uploaded.affine, atol=1e-6)
    meta = pacs_client.store.sessions.get(session["id"])
    image = pacs_client.store.sessions.read_image(meta, _full(meta.shape))
    np.testing.assert_array_equal(image, uploaded.array)
    # the instances in slice order: slice k's header is instance k, at slice k's position
    dicom = DicomSourceStore(pacs_client.store.sessions)
    kept = dicom.source(meta)
    assert sorted(kept.sop_instance_uids) == sorted(ct_series.sop_uids)
    headers = [pydicom.dcmread(__import__("io").BytesIO(h))
               for h in dicom.headers(meta, len(kept.sop_instance_uids))]
    z = [float(h.ImagePositionPatient[2]) for h in headers]
    affine = np.asarray(session["affine"])
    expected_z = [float((affine @ [0, 0, k, 1])[2]) for k in range(20)]
    np.testing.assert_allclose(z, expected_z, atol=1e-3)  # z is the same in RAS and LPS
    assert [str(h.SOPInstanceUID) for h in headers] == kept.sop_instance_uids
    assert all("PixelData" not in h for h in headers)
    info = pacs_client.get(f"/v1/sessions/{session['id']}/dicom").json()
    assert info["source"]["sop_instance_uids"] == kept.sop_instance_uids
    assert info["exports"] == []


def _full(shape):
    from medseg.store.chunks import full_box

    return full_box(tuple(shape))


def test_second_request_reuses_the_pulled_image(pacs_client, ct_series):
    first = _open(pacs_client, ct_series).json()
    second = _open(pacs_client, ct_series)
    assert second.status_code == 201
    again = second.json()
    assert again["id"] != first["id"] and again["source"]["reused"] is True
    assert "retrieve" not in again["source"]["timings_ms"]
    store = pacs_client.store
    a, b = (store.sessions.get(s["id"]) for s in (first, again))
    np.testing.assert_array_equal(store.sessions.read_image(a, _full(a.shape)),
                                  store.sessions.read_image(b, _full(b.shape)))
    # once the pulling session is gone, the next request pulls again
    pacs_client.delete(f"/v1/sessions/{again['id']}")
    pacs_client.delete(f"/v1/sessions/{first['id']}")
    third = _open(pacs_client, ct_series).json()
    assert third["source"]["reused"] is False and "retrieve" in third["source"]["timings_ms"]


def test_configured_archives_are_listed_by_name_only(pacs_client):
    listed = pacs_client.get("/v1/pacs")
    assert listed.status_code == 200
    assert [p["name"] for p in listed.json()] == ["badauth", "down", "main"]  # not bob's
    assert "127.0.0.1" not in listed.text and PASSWORD not in listed.text


@pytest.mark.parametrize("case, status, code", [
    ("down", 502, "pacs_unavailable"),
    ("badauth", 502, "pacs_auth_failed"),
    ("wrong-series", 404, "pacs_not_found"),
    ("wrong-study", 404, "pacs_not_found"),
    ("bobs", 422, "unknown_name"),
    ("nosuch", 422, "unknown_name"),
    ("mixed-sizes", 422, "corrupt_image"),
    ("mixed-orientations", 422, "corrupt_image"),
])
def test_failures_are_clear_and_leave_no_session(pacs_client, ct_series, bad_series, case,
                                                 status, code):
    before = _sessions(pacs_client)
    body = {"pacs": "main", "study_uid": ct_series.study_uid,
            "series_uid": ct_series.series_uid, "reuse": False}
    if case in ("down", "badauth", "bobs", "nosuch"):
        body["pacs"] = case
    elif case == "wrong-series":
        body["series_uid"] = ct_series.series_uid + ".9"
    elif case == "wrong-study":
        body["study_uid"] = ct_series.study_uid + ".9"
    else:
        body["series_uid"] = bad_series[case].series_uid
        body["study_uid"] = bad_series[case].study_uid
    answer = pacs_client.post("/v1/sessions/from-pacs", json=body)
    assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
    message = answer.json()["message"]
    for secret in (PASSWORD, "wrong-password-xyz", body["study_uid"], body["series_uid"],
                   "MEDSEG-TEST-0001", "Test^Pacs", "127.0.0.1"):
        assert secret not in message
    if case == "mixed-sizes":
        assert "differ in size" in message or "pixels" in message
    if case == "mixed-orientations":
        assert "ImageOrientationPatient" in message
    if case in ("down", "badauth"):
        assert f"PACS {case!r}" in message
    assert _sessions(pacs_client) == before


def test_uids_are_checked_before_anything_is_asked(pacs_client):
    answer = pacs_client.post("/v1/sessions/from-pacs", json={
        "pacs": "main", "study_uid": "1.2.3; DROP", "series_uid": "1.2"})
    assert answer.status_code == 422 and "study_uid" in answer.json()["message"]
