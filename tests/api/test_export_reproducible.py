"""Exports are byte-reproducible: two exports of the same revisions, made on different clock
seconds, are the same bytes in every format (NIfTI, NRRD, PNG, and the per-segment zip), and no
file carries the time it was written (gzip mtime, an NRRD date comment, zip member times, a PNG
tIME chunk)."""

from __future__ import annotations

import gzip
import io
import time
import zipfile

import pytest

from tests.api.helpers import new_segment
from tests.api.test_two_d_images import disc_png
from tests.polling import poll

FORMATS = ["nifti", "nrrd", "png"]


def _gzip_mtime(member: bytes) -> int:
    assert member[:3] == b"\x1f\x8b\x08", member[:10]  # gzip, deflate
    return int.from_bytes(member[4:8], "little")


def _exports(client, sid: str, segment_id: int, revision: int) -> dict[str, bytes]:
    urls = {}
    for fmt in FORMATS:
        urls[f"labels.{fmt}"] = (f"/v1/sessions/{sid}/export", {"format": fmt})
        urls[f"segments.{fmt}.zip"] = (f"/v1/sessions/{sid}/export",
                                       {"format": fmt, "per_segment": "true"})
        urls[f"mask.{fmt}"] = (f"/v1/sessions/{sid}/segments/{segment_id}/mask",
                               {"format": fmt, "revision": revision})
    out = {}
    for name, (url, params) in urls.items():
        response = client.get(url, params=params)
        assert response.status_code == 200, (name, response.text)
        out[name] = response.content
    return out


@pytest.fixture
def clicked_session(client) -> tuple[str, int, int]:
    content, _ = disc_png()
    response = client.post("/v1/sessions", files=[("files", ("photo.png", content))])
    assert response.status_code == 201, response.text
    sid = response.json()["id"]
    segment = new_segment(client, sid)
    new_segment(client, sid, "second")  # the zip holds two members
    change = client.post(f"/v1/sessions/{sid}/segments/{segment['id']}/interactions",
                         json={"type": "click", "dim": "2d", "clicks": [{"zyx": [0, 80, 90]}]})
    assert change.status_code == 200, change.text
    return sid, segment["id"], change.json()["revision"]


def test_two_exports_seconds_apart_are_identical(client, clicked_session):
    first = _exports(client, *clicked_session)
    # the next even second: NRRD dates have 1 s resolution, zip member times 2 s
    bucket = int(time.time()) // 2
    poll(lambda: int(time.time()) // 2, lambda now: now != bucket, 3, "next clock bucket")
    second = _exports(client, *clicked_session)
    differing = [name for name in first if first[name] != second[name]]
    assert differing == [], differing


def test_no_export_carries_a_time(client, clicked_session):
    files = _exports(client, *clicked_session)
    for name, content in files.items():
        members = [content]
        if name.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                infos = archive.infolist()
                assert len(infos) == 2, name
                assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}, name
                members = [archive.read(info) for info in infos]
        for member in members:
            if ".nifti" in name:
                assert _gzip_mtime(member) == 0, name
                assert gzip.decompress(member)[344:348] == b"n+1\x00"  # still a NIfTI-1
            elif ".nrrd" in name:
                header, _, data = member.partition(b"\n\n")
                assert header.startswith(b"NRRD0005\n"), name
                assert b"\n#" not in header, header  # pynrrd's "# on <date>(GMT)." is gone
                assert b"encoding: gzip" in header
                assert _gzip_mtime(data) == 0, name
            else:
                assert member.startswith(b"\x89PNG\r\n\x1a\n"), name
                assert b"tIME" not in member, name
