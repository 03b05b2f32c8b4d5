"""Bad inputs get a clear 4xx naming the problem; the server stays up and no session is harmed."""

from __future__ import annotations

import gzip
import io
import json
import time
import zipfile

import pydicom
import pytest
from fastapi.testclient import TestClient

from medseg.api.app import create_app
from medseg.store import Store
from tests.api.helpers import new_segment, upload
from tests.conftest import KEYS, make_settings


def post_files(client, files):
    return client.post("/v1/sessions", files=[("files", f) for f in files])


def assert_error(response, statuses, *words):
    assert response.status_code in statuses, response.text
    body = response.json()
    assert body["error"] and body["request_id"]
    for word in words:
        assert word.lower() in body["message"].lower(), body["message"]


def test_truncated_nifti(client, totalseg):
    data = (totalseg / "ct_3mm.nii.gz").read_bytes()
    response = post_files(client, [("ct.nii.gz", data[: len(data) // 2])])
    assert_error(response, {400, 422}, "not a valid nifti", "truncated")
    assert "ct.nii" not in response.text


def test_text_named_nifti(client):
    response = post_files(client, [("notes.nii.gz", b"this is not an image\n" * 20)])
    assert_error(response, {400, 415, 422}, "not a valid nifti", "looks like text")
    assert "notes" not in response.text


def test_dicom_zip_with_mixed_series(client, totalseg):
    paths = sorted((totalseg / "ct_dicom").iterdir())[:4]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, path in enumerate(paths):
            ds = pydicom.dcmread(path)
            if i % 2:
                ds.SeriesInstanceUID = pydicom.uid.generate_uid()
            out = io.BytesIO()
            ds.save_as(out)
            archive.writestr(path.name, out.getvalue())
    response = post_files(client, [("series.zip", buffer.getvalue())])
    assert_error(response, {400, 422}, "series")


def test_unsupported_file(client):
    response = post_files(client, [("report.pdf", b"%PDF-1.4 not an image")])
    assert_error(response, {415}, "supported")


def test_two_gigabyte_claim_is_refused_before_reading(client):
    response = client.post("/v1/sessions", content=b"x" * 10,
                           headers={"Content-Length": str(2 << 30),
                                    "Content-Type": "multipart/form-data; boundary=x"})
    assert_error(response, {413}, "limit")
    assert client.get("/healthz").status_code == 200


def test_zip_bomb_and_gzip_bomb(redis_url):
    settings = make_settings(redis_url, max_uncompressed_bytes=50 << 20)
    with TestClient(create_app(settings, Store.connect(redis_url, 60)),
                    headers={"X-API-Key": KEYS["alice"]}) as c:
        zeros = b"\0" * (200 << 20)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("slice0001.dcm", zeros)
        assert len(buffer.getvalue()) < 1 << 20
        assert_error(post_files(c, [("bomb.zip", buffer.getvalue())]), {413}, "zip bomb")
        bomb = gzip.compress(zeros, compresslevel=1)
        response = post_files(c, [("bomb.nii.gz", bomb)])
        assert_error(response, {413, 422})
        assert "bomb.nii" not in response.text
        assert c.get("/healthz").status_code == 200


def test_too_many_voxels(redis_url, totalseg):
    settings = make_settings(redis_url, max_voxels=10_000)
    with TestClient(create_app(settings, Store.connect(redis_url, 60)),
                    headers={"X-API-Key": KEYS["alice"]}) as c:
        response = post_files(c, [("ct.nii.gz", (totalseg / "ct_3mm.nii.gz").read_bytes())])
        assert_error(response, {413}, "10")


@pytest.mark.parametrize("body, words", [
    ({"type": "click", "clicks": [{"zyx": [15, 50, 500]}]}, ["outside", "500"]),
    ({"type": "click", "clicks": [{"zyx": [-1, 50, 50]}]}, ["zyx", "greater than or equal to 0"]),
    ({"type": "click", "clicks": [{"zyx": [15, 50]}]}, ["zyx"]),
    ({"type": "box", "box": {"lo": [20, 60, 60], "hi": [10, 70, 70]}}, ["lo"]),
    ({"type": "click", "dim": "2d", "clicks": [{"zyx": [15, 50, 50]}]}, ["plane"]),
    ({"type": "click", "dim": "2d", "plane": {"axis": "z", "index": 14},
      "clicks": [{"zyx": [15, 50, 50]}]}, ["not on the 2d plane"]),
    ({"type": "click", "method": "magic", "clicks": [{"zyx": [15, 50, 50]}]}, ["unknown method"]),
    ({"type": "click", "params": {"nope": 1}, "clicks": [{"zyx": [15, 50, 50]}]}, ["nope"]),
    ({"type": "lasso"}, ["type"]),
])
def test_bad_interactions_change_nothing(client, totalseg, body, words):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    segment = new_segment(client, session["id"])
    url = f"/v1/sessions/{session['id']}/segments/{segment['id']}"
    response = client.post(f"{url}/interactions", json=body)
    assert_error(response, {422}, *words)
    after = client.get(url).json()
    assert after["revision"] == segment["revision"] and after["voxels"] == 0
    assert len(client.get(f"{url}/history").json()["revisions"]) == 1


# -- numbers: every one finite and bounded (issue 12) -----------------------------------------
# Each of these froze the API process (a NaN weight never lets PyMaxflow finish), burned CPU
# for minutes, or answered 500 before the bounds; now each is a 422 naming the problem, and
# nothing changes.
CLICK = {"type": "click", "clicks": [{"zyx": [15, 50, 50]}]}
HUGE = 2**63  # beyond int64: NumPy raised OverflowError (500)


def post_raw(client, url: str, body: dict):
    """POST `body` as Python's json writes it: NaN and Infinity as the bare words a client
    can send (httpx's own encoder refuses them)."""
    return client.post(url, content=json.dumps(body).encode(),
                       headers={"content-type": "application/json"})


@pytest.mark.parametrize("body, words", [
    ({**CLICK, "params": {"sigma": float("nan")}}, ["sigma", "finite"]),
    ({**CLICK, "params": {"sigma": float("inf")}}, ["sigma", "finite"]),
    ({**CLICK, "params": {"lamb": 1e308}}, ["lamb", "<= 1000"]),
    ({**CLICK, "params": {"sigma": 1e-300}}, ["sigma", ">= 0.001"]),
    ({**CLICK, "params": {"smooth_mm": 170_000}}, ["smooth_mm", "<= 10"]),
    ({**CLICK, "params": {"smooth_mm": 1e12}}, ["smooth_mm"]),
    ({**CLICK, "params": {"margin_mm": 1e300}}, ["margin_mm", "<= 500"]),
    ({**CLICK, "params": {"seed_radius_mm": 1e6}}, ["seed_radius_mm"]),
    ({**CLICK, "params": {"intensity_k": 0}}, ["intensity_k"]),
    ({**CLICK, "params": {"coarse_voxels": -5}}, ["coarse_voxels", ">= 0"]),
    ({**CLICK, "params": {"coarse_voxels": float("inf")}}, ["coarse_voxels", "finite"]),
    ({**CLICK, "params": {"coarse_voxels": 2.5}}, ["coarse_voxels", "whole number"]),
    ({**CLICK, "params": {"lamb": "5"}}, ["lamb", "number"]),
    ({"type": "points", "method": "mideepseg", "points": [[15, 50, 50], [15, 60, 60],
      [15, 50, 70]], "params": {"lamb": float("nan")}}, ["lamb", "finite"]),
    ({"type": "click", "clicks": [{"zyx": [15, 50, HUGE]}]}, ["zyx", "less than or equal"]),
    ({"type": "click", "clicks": [{"zyx": [10**30, 50, 50]}]}, ["zyx"]),
    ({"type": "box", "box": {"lo": [0, 0, 0], "hi": [HUGE, HUGE, HUGE]}}, ["box.hi"]),
    ({**CLICK, "dim": "2d", "plane": {"axis": "z", "index": HUGE}}, ["plane.index"]),
    ({"type": "scribble", "scribbles": [{"path": [[15, 50, 50], [15, 50, HUGE]]}]}, ["path"]),
    ({**CLICK, "base_revision": HUGE}, ["base_revision"]),
])
def test_bad_numbers_are_refused(client, totalseg, body, words):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    segment = new_segment(client, session["id"])
    url = f"/v1/sessions/{session['id']}/segments/{segment['id']}"
    response = post_raw(client, f"{url}/interactions", body)
    assert_error(response, {422}, *words)
    assert "np." not in response.json()["message"]  # numbers as people write them
    after = client.get(url).json()
    assert after["revision"] == segment["revision"] and after["voxels"] == 0
    assert client.post(f"{url}/interactions", json=CLICK).status_code == 200  # still serving


@pytest.mark.parametrize("params, words", [
    ({"min_area_mm2": float("nan")}, ["min_area_mm2", "finite"]),
    ({"roi_margin_mm": 1e300}, ["roi_margin_mm"]),
    ({"max_slices": 1e20}, ["max_slices"]),
    ({"dilation_mm": float("inf")}, ["dilation_mm", "finite"]),
    ({"coarse_pixels": -1}, ["coarse_pixels"]),
])
def test_bad_propagation_numbers_are_refused(client, totalseg, params, words):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    segment = new_segment(client, session["id"])
    url = f"/v1/sessions/{session['id']}/segments/{segment['id']}"
    body = {"method": "graphcut-seeds", "params": params, "start_index": 15}
    assert_error(post_raw(client, f"{url}/propagate", body), {422}, *words)
    huge_start = {"method": "graphcut-seeds", "start_index": HUGE}
    assert_error(client.post(f"{url}/propagate", json=huge_start), {422}, "start_index")


def test_oversized_scribble_requests_are_refused_in_milliseconds(client, totalseg):
    """A 100 x 10,000-point scribble request took seconds to parse and minutes to rasterise
    and merge; its size alone refuses it now, before its body is parsed. A request within
    the size limit is refused by the point count or the traced length, before rasterising
    (one scribble of 10,000 points zigzagging across the image took 10 s before its 422)."""
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    segment = new_segment(client, session["id"])
    url = f"/v1/sessions/{session['id']}/segments/{segment['id']}/interactions"
    z, y, x = session["shape"]
    corners = [[15, 0, 0], [15, y - 1, x - 1]]  # every step crosses the slice
    zigzag = [corners[i % 2] for i in range(10_000)]
    cases = [  # (body, status, words), sent as prepared bytes: only the server is timed
        ({"type": "scribble", "scribbles": [{"path": zigzag}] * 100}, 413, ["request limit"]),
        ({"type": "scribble", "scribbles": [{"path": [[15, 5, 5]] * 10_000}] * 6}, 422,
         ["50000 points"]),
        ({"type": "scribble", "scribbles": [{"path": zigzag}]}, 422, ["trace more than"]),
    ]
    for body, status, words in cases:
        raw = json.dumps(body).encode()  # encoded before the clock starts
        start = time.perf_counter()
        response = client.post(url, content=raw, headers={"content-type": "application/json"})
        elapsed = time.perf_counter() - start
        assert_error(response, {status}, *words)
        assert elapsed < 1.0, f"{len(raw)} bytes refused after {elapsed:.2f} s"
    assert client.get(url.removesuffix("/interactions")).json()["voxels"] == 0


def test_chunked_body_over_the_limit_is_refused(client):
    """A body that claims no length is counted as it arrives."""
    def chunks():
        for _ in range(40):
            yield b" " * (100 << 10)  # 4 MB of JSON whitespace in all
    response = client.post("/v1/sessions/" + "0" * 32 + "/segments", content=chunks(),
                           headers={"content-type": "application/json"})
    assert_error(response, {413}, "request limit")


def test_revision_zero_is_revision_zero_not_the_head(client, totalseg):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    segment = new_segment(client, session["id"])
    url = f"/v1/sessions/{session['id']}/segments/{segment['id']}"
    assert client.post(f"{url}/interactions", json=CLICK).status_code == 200
    assert_error(client.get(f"{url}/mask", params={"revision": 0}), {404}, "0")
    assert_error(client.get(f"{url}/delta", params={"from": segment["revision"], "to": 0}),
                 {404}, "0")
    assert_error(client.get(f"{url}/mask", params={"revision": HUGE}), {422}, "revision")
    head = client.get(f"{url}/mask").json()
    assert head["revision"] == segment["revision"] + 1


@pytest.mark.parametrize("header", ['""', "", " "])
def test_empty_if_match_reads_as_absent(client, totalseg, header):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    segment = new_segment(client, session["id"])
    url = f"/v1/sessions/{session['id']}/segments/{segment['id']}"
    response = client.post(f"{url}/interactions", json=CLICK, headers={"If-Match": header})
    assert response.status_code == 200, response.text
    assert_error(client.post(f"{url}/undo", headers={"If-Match": '"abc"'}), {422}, "If-Match")


def test_a_foreground_click_on_the_empty_background_is_refused(client, totalseg):
    """The shared brain MR is skull-stripped: 68 % of it is exactly 0 out to the image's edge.
    A 3D click there answered 200 and marked the flat background (slicewise: 2 million
    voxels); now every method's foreground click on it is a 422 naming the empty region, and
    nothing changes. A click on the brain, and a background click on the empty part (it is
    background), still work."""
    brain = totalseg.parent / "voxelmorph_testscan" / "test_scan_t1_image.nii.gz"
    sid = upload(client, brain)["id"]
    seg = new_segment(client, sid)["id"]
    url = f"/v1/sessions/{sid}/segments/{seg}"
    outside, inside = [112, 5, 80], [112, 96, 80]
    start = client.get(url).json()["revision"]
    for extra in ({"dim": "3d"}, {"dim": "3d", "method": "slicewise"},
                  {"dim": "2d", "plane": {"axis": "z", "index": 112}},
                  {"dim": "2d", "plane": {"axis": "x", "index": 80}}):
        body = {"type": "click", "clicks": [{"zyx": outside}], **extra}
        refused = client.post(f"{url}/interactions", json=body)
        assert_error(refused, {422}, "empty part of the image", "[112, 5, 80]", "(0)")
        assert client.get(url).json()["revision"] == start
    on_brain = {"type": "click", "dim": "2d", "plane": {"axis": "z", "index": 112}}
    started = client.post(f"{url}/interactions", json={**on_brain, "clicks": [{"zyx": inside}]})
    assert started.status_code == 200, started.text
    # a refinement click on the background is refused too, whatever the segment holds
    again = client.post(f"{url}/interactions", json={**on_brain, "clicks": [{"zyx": outside}]})
    assert_error(again, {422}, "empty part of the image")
    background = {**on_brain, "clicks": [{"zyx": outside, "foreground": False}]}
    assert client.post(f"{url}/interactions", json=background).status_code == 200


def test_scribbles_boxes_and_points_wholly_on_the_empty_background_are_refused(client,
                                                                                totalseg):
    """A foreground scribble, a box or MIDeepSeg points placed entirely on the brain MR's flat
    zero background were accepted and segmented it (only clicks were checked); now each is a
    422 naming the empty region, and nothing changes. Marks that touch the brain, and boxes
    and points on the CT (noisy everywhere, air included), still work."""
    brain = totalseg.parent / "voxelmorph_testscan" / "test_scan_t1_image.nii.gz"
    sid = upload(client, brain)["id"]
    seg = new_segment(client, sid)["id"]
    url = f"/v1/sessions/{sid}/segments/{seg}"
    start = client.get(url).json()["revision"]
    axial = {"dim": "2d", "plane": {"axis": "z", "index": 112}}
    refused = [
        ({"type": "scribble", **axial, "scribbles": [{"path": [[112, 170, 20], [112, 170, 140]]}]},
         "scribble (from [112, 170, 20]"),
        ({"type": "scribble", "dim": "3d",
          "scribbles": [{"path": [[100, 170, 20], [120, 175, 140]]},
                        {"path": [[112, 96, 80]], "foreground": False}]}, "wholly on an empty"),
        ({"type": "box", **axial, "box": {"lo": [112, 160, 20], "hi": [112, 185, 140]}},
         "box [112, 160, 20]..[112, 185, 140]"),
        ({"type": "box", "dim": "3d", "box": {"lo": [100, 160, 20], "hi": [120, 185, 140]}},
         "covers only an empty part"),
        ({"type": "points", **axial, "points": [[112, 2, 10], [112, 2, 150], [112, 188, 80]]},
         "all 3 points"),
    ]
    for body, words in refused:
        answer = client.post(f"{url}/interactions", json=body)
        assert_error(answer, {422}, words, "empty part of the image", "(0)")
        assert answer.json()["error"] == "invalid_prompt"
        assert client.get(url).json()["revision"] == start
    accepted = [
        # from the background into the brain: it touches tissue
        {"type": "scribble", **axial, "scribbles": [{"path": [[112, 170, 80], [112, 96, 80]]}]},
        {"type": "box", **axial, "box": {"lo": [112, 40, 40], "hi": [112, 140, 120]}},
        # a box reaching from the background into the brain
        {"type": "box", **axial, "box": {"lo": [112, 140, 20], "hi": [112, 185, 140]}},
        {"type": "points", **axial, "points": [[112, 2, 10], [112, 60, 40], [112, 120, 120]]},
    ]
    for body in accepted:
        answer = client.post(f"{url}/interactions", json=body)
        assert answer.status_code == 200, (body, answer.text)
    ct = upload(client, totalseg / "ct_3mm.nii.gz")["id"]
    liver = new_segment(client, ct)["id"]
    curl = f"/v1/sessions/{ct}/segments/{liver}/interactions"
    for body in (
        {"type": "box", "dim": "3d", "box": {"lo": [0, 25, 41], "hi": [29, 86, 105]}},
        {"type": "box", "dim": "3d", "box": {"lo": [0, 0, 0], "hi": [29, 10, 10]}},  # air
        {"type": "points", "dim": "2d", "plane": {"axis": "z", "index": 24},
         "points": [[24, 35, 80], [24, 62, 100], [24, 70, 60], [24, 50, 58]]},
    ):
        answer = client.post(curl, json=body)
        assert answer.status_code == 200, (body, answer.text)


def test_a_malformed_session_or_job_id_is_named_in_plain_words(client):
    """A session id that is not ours answered 422 "path.session_id: String should match
    pattern '^[0-9a-f]{32}$'": a regex, not what is wrong. Now it says what an id looks like
    and quotes what was sent (cut short), in the usual error envelope."""
    for url in ("/v1/sessions/xyz", "/v1/sessions/XYZ/segments",
                f"/v1/sessions/{'A' * 32}/export"):
        answer = client.get(url)
        assert_error(answer, {422}, "session id in the URL must be 32 lowercase hexadecimal",
                     "POST /v1/sessions", "(got '")
        assert answer.json()["error"] == "validation_error"
        assert "pattern" not in answer.json()["message"] and "^" not in answer.json()["message"]
    long = client.get(f"/v1/sessions/{'z' * 500}").json()["message"]
    assert f"(got '{'z' * 40}...')" in long and "z" * 41 not in long
    answer = client.get("/v1/jobs/not-a-job")
    assert_error(answer, {422}, "job id in the URL must be 24 lowercase hexadecimal",
                 "(got 'not-a-job')")
    restore = client.post("/v1/sessions/restore", json={"session_id": "nope"})
    assert restore.status_code in (404, 422), restore.text  # 404 without an archive configured


def test_a_body_that_is_not_json_says_so_and_where(client, totalseg):
    """A body that is not valid JSON answered "0: JSON decode error" (the offset and no
    reason); now the reason and its line and column, never the body's text."""
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    segment = new_segment(client, session["id"])
    url = f"/v1/sessions/{session['id']}/segments/{segment['id']}/interactions"
    secret = '{"type": "click" "clicks": [{"zyx": [1, 2, 3]}], "note": "patient smith"}'
    answer = client.post(url, content=secret, headers={"content-type": "application/json"})
    assert_error(answer, {422}, "request body is not valid JSON: Expecting ',' delimiter at "
                 "line 1 column 18")
    assert answer.json()["error"] == "validation_error"
    assert "smith" not in answer.text and "JSON decode error" not in answer.text
    two_lines = client.post(f"/v1/sessions/{session['id']}/segments",
                            content='{"name": "liver",\n "color": }',
                            headers={"content-type": "application/json"})
    assert_error(two_lines, {422}, "request body is not valid JSON: Expecting value at line 2 "
                 "column 11")
