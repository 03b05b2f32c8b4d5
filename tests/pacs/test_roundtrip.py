"""The Orthanc round trip through a real API process and its job worker: a session from the
archive, the liver segmented with clicks, both SEG forms pushed back (STOW-RS jobs) and read
back from Orthanc with highdicom: geometry, voxels, references, provenance, idempotence.
Prints the timings the issue asks for (pull, build, push)."""

from __future__ import annotations

import time

import highdicom as hd
import httpx
import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from requests import Session

from medseg.algorithms.metrics import dice
from medseg.store.embedded import EmbeddedRedis
from medseg_protocol import codec
from tests.api.test_accuracy_real_data import largest_slice, organ_reference, run_robot
from tests.conftest import KEYS
from tests.live import api_server
from tests.pacs.conftest import pacs_json
from tests.pacs.orthanc import PASSWORD, USER
from tests.polling import poll

pytestmark = pytest.mark.slow
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def api(orthanc):
    # its own Redis: a job worker of another test's server on the shared one (configured
    # without this archive) could take the push jobs off the shared queue
    with EmbeddedRedis() as redis_url, \
            api_server(redis_url, MEDSEG_PACS=pacs_json(orthanc)) as base_url, \
            httpx.Client(base_url=base_url, headers={"X-API-Key": KEYS["alice"]},
                         timeout=120) as client:
        yield client


def _archive(orthanc) -> DICOMwebClient:
    session = Session()
    session.auth = (USER, PASSWORD)
    return DICOMwebClient(orthanc.dicomweb, session=session)


def _finished(api, job: dict) -> dict:
    return poll(lambda: api.get(f"/v1/jobs/{job['id']}").json(),
                lambda j: j["state"] in ("succeeded", "failed", "cancelled"), 120,
                f"end of job {job['id']}")


@pytest.fixture(scope="module")
def segmented(api, ct_series, totalseg):
    """A session from the archive with the liver (3 clicks, 2D on its largest slice) and the
    spleen (1 click) segmented."""
    start = time.perf_counter()
    answer = api.post("/v1/sessions/from-pacs", json={
        "pacs": "main", "study_uid": ct_series.study_uid, "series_uid": ct_series.series_uid,
        "reuse": False})
    TIMINGS["pull the 20-slice series (API call)"] = time.perf_counter() - start
    assert answer.status_code == 201, answer.text
    session = answer.json()
    for stage, ms in session["source"]["timings_ms"].items():
        TIMINGS[f"  of which {stage}"] = ms / 1000
    liver = organ_reference(totalseg, "ct_dicom_seg.nii.gz", "liver", session)
    index = largest_slice(liver)
    scores, segment = run_robot(api, session, liver, 3, plane=(0, index))
    api.patch(f"/v1/sessions/{session['id']}/segments/{segment['id']}", json={"name": "liver"})
    spleen = organ_reference(totalseg, "ct_dicom_seg.nii.gz", "spleen", session)
    _, other = run_robot(api, session, spleen, 1, plane=(0, largest_slice(spleen)))
    api.patch(f"/v1/sessions/{session['id']}/segments/{other['id']}", json={"name": "spleen"})
    assert max(scores) >= 0.8, scores
    return session, index


def _masks(api, session) -> dict[str, np.ndarray]:
    out = {}
    for segment in api.get(f"/v1/sessions/{session['id']}/segments").json():
        rle = api.get(f"/v1/sessions/{session['id']}/segments/{segment['id']}/mask").json()
        out[segment["name"]] = codec.decode_mask(rle).astype(bool)
    return out


@pytest.mark.parametrize("form, fmt", [("binary", "dicom-seg"),
                                       ("labelmap", "dicom-seg-labelmap")])
def test_push_both_forms_and_read_them_back(api, orthanc, ct_series, segmented, form, fmt):
    session, _ = segmented
    sid = session["id"]
    start = time.perf_counter()
    exported = api.get(f"/v1/sessions/{sid}/export", params={"format": fmt})
    TIMINGS[f"build {form} SEG (export call)"] = time.perf_counter() - start
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"] == "application/dicom"
    before = orthanc.instance_count(ct_series.study_uid)
    job = api.post(f"/v1/sessions/{sid}/push", json={"form": form})
    assert job.status_code == 202, job.text
    done = _finished(api, job.json())
    assert done["state"] == "succeeded", done
    result = done["result"]
    TIMINGS[f"push {form} SEG (job: build)"] = result["timings"]["build_s"]
    TIMINGS[f"push {form} SEG (job: STOW-RS + check)"] = result["timings"]["push_s"]
    uid = result["sop_instance_uid"]
    assert result["stored"] == [uid] and result["already_stored"] == []
    assert orthanc.instance_count(ct_series.study_uid) == before + 1
    # the exported file is the same object (the same revisions make the same UIDs)
    assert pydicom.dcmread(__import__("io").BytesIO(exported.content)).SOPInstanceUID == uid

    stored = _archive(orthanc).retrieve_instance(ct_series.study_uid,
                                                 result["series_instance_uid"], uid)
    seg = hd.seg.Segmentation.from_dataset(stored)
    assert str(seg.SegmentationType) == ("LABELMAP" if form == "labelmap" else "BINARY")
    # references: the source series, every one of its instances
    referenced = stored.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == ct_series.series_uid
    assert {str(i.ReferencedSOPInstanceUID) for i in referenced.ReferencedInstanceSequence} \
        == set(ct_series.sop_uids)
    assert stored.StudyInstanceUID == ct_series.study_uid
    assert stored.FrameOfReferenceUID == ct_series.datasets[0].FrameOfReferenceUID
    # geometry: the source's pixel spacing, orientation and slice positions
    source = {str(d.SOPInstanceUID): d for d in ct_series.datasets}
    shared = stored.SharedFunctionalGroupsSequence[0]
    measures = shared.PixelMeasuresSequence[0]
    np.testing.assert_allclose([float(v) for v in measures.PixelSpacing],
                               [float(v) for v in ct_series.datasets[0].PixelSpacing])
    np.testing.assert_allclose(
        [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient],
        [float(v) for v in ct_series.datasets[0].ImageOrientationPatient])
    for frame in stored.PerFrameFunctionalGroupsSequence:
        ref = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        np.testing.assert_allclose(
            [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient],
            [float(v) for v in source[str(ref)].ImagePositionPatient])
    # voxels: each segment equals the session's mask, in the session's slice order
    order = api.get(f"/v1/sessions/{sid}/dicom").json()["source"]["sop_instance_uids"]
    pixels = seg.get_pixels_by_source_instance(order, combine_segments=False)
    masks = _masks(api, session)
    descriptions = {seg.get_segment_description(n).segment_label: n
                    for n in seg.segment_numbers}
    assert set(descriptions) == set(masks)
    for name, mask in masks.items():
        got = pixels[..., seg.segment_numbers.index(descriptions[name])] > 0
        if form == "labelmap":  # one value per voxel: the later segment wins an overlap
            later = [m for n, m in masks.items() if descriptions[n] > descriptions[name]]
            mask = mask & ~np.any(later, axis=0) if later else mask
        np.testing.assert_array_equal(got, mask)
    # provenance: a person clicked; the method; the organ's SNOMED CT code; the revision
    liver = seg.get_segment_description(descriptions["liver"])
    assert str(liver.algorithm_type.value) == "SEMIAUTOMATIC"
    assert "geodesic-graphcut" in liver.algorithm_identification[0].AlgorithmName
    assert liver.segmented_property_type.value == "10200004"  # SCT Liver
    segments = {s["name"]: s for s in api.get(f"/v1/sessions/{sid}/segments").json()}
    assert liver.tracking_id == f"segment {segments['liver']['id']} revision " \
                                f"{segments['liver']['revision']}"
    assert f"{segments['liver']['id']}@{segments['liver']['revision']}" \
        in stored.ContentDescription

    # a second push of the same revisions stores nothing new
    again = _finished(api, api.post(f"/v1/sessions/{sid}/push", json={"form": form}).json())
    assert again["state"] == "succeeded", again
    assert again["result"]["stored"] == [] and again["result"]["already_stored"] == [uid]
    assert orthanc.instance_count(ct_series.study_uid) == before + 1
    exports = api.get(f"/v1/sessions/{sid}/dicom").json()["exports"]
    assert any(e["sop_instance_uid"] == uid and e["pushed_to"] == "main" for e in exports)


def test_import_the_pushed_seg_and_refuse_another_series(api, orthanc, ct_series, other_series,
                                                         segmented):
    session, _ = segmented
    sid = session["id"]
    masks = _masks(api, session)
    exported = api.get(f"/v1/sessions/{sid}/export", params={"format": "dicom-seg"}).content
    fresh = api.post("/v1/sessions/from-pacs", json={
        "pacs": "main", "study_uid": ct_series.study_uid,
        "series_uid": ct_series.series_uid}).json()
    assert fresh["source"]["reused"] is True  # the same series: the image is not pulled again
    answer = api.post(f"/v1/sessions/{fresh['id']}/import",
                      files={"file": ("seg.dcm", exported, "application/dicom")})
    assert answer.status_code == 201, answer.text
    imported = _masks(api, fresh)
    assert set(imported) == set(masks)
    for name in masks:
        np.testing.assert_array_equal(imported[name], masks[name])
    # an imported segment, exported as it is, is AUTOMATIC as its source declared... the
    # source was SEMIAUTOMATIC, and that is what the export says
    again = api.get(f"/v1/sessions/{fresh['id']}/export", params={"format": "dicom-seg"})
    seg = hd.seg.Segmentation.from_dataset(pydicom.dcmread(__import__("io").BytesIO(
        again.content)))
    assert {str(seg.get_segment_description(n).algorithm_type.value)
            for n in seg.segment_numbers} == {"SEMIAUTOMATIC"}
    # a SEG of another series: a clear 422, nothing added
    other = api.post("/v1/sessions/from-pacs", json={
        "pacs": "main", "study_uid": other_series.study_uid,
        "series_uid": other_series.series_uid}).json()
    refused = api.post(f"/v1/sessions/{other['id']}/import",
                       files={"file": ("seg.dcm", exported, "application/dicom")})
    assert refused.status_code == 422 and refused.json()["error"] == "series_mismatch"
    assert "another series" in refused.json()["message"]
    assert api.get(f"/v1/sessions/{other['id']}/segments").json() == []


def test_push_to_an_archive_that_is_down_fails_after_its_retries(api, segmented):
    session, _ = segmented
    job = api.post(f"/v1/sessions/{session['id']}/push",
                   json={"pacs": "down", "attempts": 3, "backoff_s": 0.05})
    assert job.status_code == 202, job.text
    done = _finished(api, job.json())
    assert done["state"] == "failed"
    assert done["error"]["code"] == "pacs_unavailable"
    assert "gave up after 3 attempts" in done["error"]["message"]
    assert "127.0.0.1" not in done["error"]["message"]


def test_dice_and_timings_report(segmented, totalseg, api):
    """Not a check of its own: prints the timings measured above (pytest -s shows them)."""
    session, index = segmented
    liver = organ_reference(totalseg, "ct_dicom_seg.nii.gz", "liver", session)
    mask = _masks(api, session)["liver"]
    score = dice(mask[index], liver[index])
    assert score >= 0.8
    for what, seconds in TIMINGS.items():
        print(f"{what}: {seconds:.3f} s")


def test_cli_from_pacs_export_push_import_and_batch(api, orthanc, ct_series, tmp_path):
    """The CLI: open from the archive, click, export both SEG forms, push (twice: nothing new
    the second time), import the SEG into a fresh session; a batch row from the archive."""
    import json

    from typer.testing import CliRunner

    from medseg_client.cli import app

    runner = CliRunner()
    args = ["--url", str(api.base_url), "--api-key", KEYS["alice"]]

    def run(*more: str):
        result = runner.invoke(app, [*args, *more])
        assert result.exit_code == 0, result.output
        return result.output

    assert "main" in run("pacs")
    sid = run("from-pacs", "main", ct_series.study_uid, ct_series.series_uid).split()[-1]
    seg = api.post(f"/v1/sessions/{sid}/segments", json={"name": "liver"}).json()["id"]
    run("click", sid, str(seg), "12", "250", "150", "--2d")
    for fmt in ("dicom-seg", "dicom-seg-labelmap"):
        run("export", sid, "--format", fmt, "-o", str(tmp_path / f"{fmt}.dcm"))
        assert pydicom.dcmread(tmp_path / f"{fmt}.dcm").Modality == "SEG"
    before = orthanc.instance_count(ct_series.study_uid)
    first = json.loads(run("push", sid, "--form", "labelmap").strip().splitlines()[-1])
    second = json.loads(run("push", sid, "--form", "labelmap").strip().splitlines()[-1])
    assert first["stored"] == [first["sop_instance_uid"]] and second["stored"] == []
    assert orthanc.instance_count(ct_series.study_uid) == before + 1
    fresh = run("from-pacs", "main", ct_series.study_uid, ct_series.series_uid).split()[-1]
    assert "revision" in run("import-seg", fresh, str(tmp_path / "dicom-seg.dcm"))
    assert len(api.get(f"/v1/sessions/{fresh}/segments").json()) == 1
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps([{"pacs": "main", "study": ct_series.study_uid,
                                     "series": ct_series.series_uid, "points": "12,250,150",
                                     "dim": "2d", "push": "binary"}]))
    run("batch", str(manifest), "-o", str(tmp_path / "out"))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    rows = summary["rows"] if isinstance(summary, dict) else summary
    assert rows[0]["status"] == "ok", rows[0]
    assert rows[0]["push"]["stored"] == [rows[0]["push"]["sop_instance_uid"]]
