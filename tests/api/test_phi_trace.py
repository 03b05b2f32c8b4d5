"""A PHI trace: names that carry patient data (an uploaded file's name, a session's name) are
sent with good and bad requests, and must then appear in no error answer, no log line of the
app and no Redis key name. The file name is not stored at all: it is in no Redis value either.
The session's name is the client's own label: only its own session answers show it (and its
record in Redis holds it).

Faults are injected where the app has no say over the message: a library error that quotes
the file name it was handed (an unexpected exception: 500)."""

from __future__ import annotations

import gzip
import io
import json
import logging
import zipfile

import numpy as np
import pytest
from fastapi.testclient import TestClient

from medseg.engine import imageio
from medseg.usecases import sessions as sessions_usecase
from tests.api.helpers import new_segment
from tests.conftest import KEYS

AUTH = {"X-API-Key": KEYS["alice"]}

FILE_MARKER = "PATIENT_DOE_123"  # in every uploaded file name
NAME_MARKER = "PATIENT_ROE_456"  # in the session names
MARKERS = (FILE_MARKER, NAME_MARKER)


def _volume_bytes() -> bytes:
    volume = np.random.default_rng(0).normal(100, 20, size=(4, 24, 28)).astype(np.float32)
    volume[1:3, 8:16, 9:19] += 200
    return imageio.save_nifti(volume, np.eye(4))


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _bad_uploads(good: bytes) -> list[list[tuple[str, bytes]]]:
    f = FILE_MARKER
    return [
        [(f"{f}.nii.gz", good[: len(good) // 2])],  # truncated gzip
        [(f"{f}.nii.gz", gzip.compress(b"not a nifti header" * 30))],
        [(f"{f}.nii", b"\x00" * 100)],
        [(f"{f}.nrrd", b"NRRD0005\ntype: what\n\n")],
        [(f"{f}.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)],
        [(f"{f}.jpg", b"\xff\xd8\xff" + b"\x01" * 40)],
        [(f"{f}.dcm", b"DICM" * 40)],
        [(f"{f}_1.dcm", b"\x00" * 200), (f"{f}_2.dcm", b"\x00" * 200)],
        [(f"{f}.zip", _zip({f"{f}/slice_1.dcm": b"junk", f"{f}/slice_2.dcm": b"junk"}))],
        [(f"{f}.zip", _zip({f"{f}/{f}.nii.gz": good[:50]}))],
        [(f"{f}.zip", b"PK\x03\x04 broken")],
        [(f"{f}.xyz", b"hello")],
        [(f"{f}.nii.gz", good), (f"{f}.png", b"\x89PNG")],  # two kinds at once
        [(f"{f}.nii.gz", b"")],
    ]


def _bad_interactions(good_plane: dict) -> list[tuple[dict, dict]]:
    """(json body, headers) pairs that are refused. They carry no marker themselves: what a
    client writes into a method name or a parameter is not a name of a patient's, and the
    answers may quote it back; the point is whether the session's names leak into them."""
    click = {"type": "click", "dim": "2d", "plane": good_plane, "clicks": [{"zyx": [1, 10, 10]}]}
    return [
        ({**click, "clicks": [{"zyx": [1, 10, 10**6]}]}, {}),
        ({**click, "clicks": [{"zyx": [9, 10, 10]}]}, {}),
        ({**click, "method": "no-such-method"}, {}),
        ({**click, "params": {"no_such_parameter": 1}}, {}),
        ({**click, "params": {"sigma": "high"}}, {}),
        ({**click, "plane": {"axis": "z", "index": 99}}, {}),
        ({"type": "scribble", "dim": "3d", "scribbles": [{"path": [[0, 0, 0], [3, 99, 99]]}]}, {}),
        ({"type": "box", "dim": "3d", "box": {"lo": [3, 20, 20], "hi": [0, 0, 0]}}, {}),
        ({**click, "type": "tap"}, {}),
        (click, {"If-Match": '"seven"'}),
    ]


@pytest.fixture
def log_lines(capfd, caplog):
    """Every line the app writes: its JSON logs (stdout), anything on stderr, and the records
    of Python's logging (the libraries': pydicom, PIL, uvicorn), at every level."""
    caplog.set_level(logging.DEBUG)

    def read() -> list[str]:
        out, err = capfd.readouterr()
        return (out + err).splitlines() + [record.getMessage() for record in caplog.records]
    return read


def _redis_keys(store) -> list[str]:
    return [key.decode(errors="replace") for key in store.sessions.redis.scan_iter(count=1000)]


def _redis_values(store, key: str) -> bytes:
    r = store.sessions.redis
    kind = r.type(key).decode()
    if kind == "string":
        return r.get(key) or b""
    if kind == "hash":
        return b"".join(k + v for k, v in r.hgetall(key).items())
    if kind == "set":
        return b"".join(r.smembers(key))
    if kind == "zset":
        return b"".join(r.zrange(key, 0, -1))
    if kind == "list":
        return b"".join(r.lrange(key, 0, -1))
    if kind == "stream":
        return json.dumps([[i.decode(), {k.decode(): v.decode(errors="replace")
                                         for k, v in fields.items()}]
                           for i, fields in r.xrange(key)]).encode()
    return b""


def test_markers_in_names_leak_nowhere(client, store, log_lines, monkeypatch):
    good = _volume_bytes()
    answers = []  # (what, response) of every request

    def send(what, response):
        answers.append((what, response))
        return response

    # a good upload under a marked file name and a marked session name
    created = send("upload", client.post("/v1/sessions", data={"name": f"{NAME_MARKER} liver"},
                                         files=[("files", (f"{FILE_MARKER}.nii.gz", good))]))
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    assert created.json()["name"] == f"{NAME_MARKER} liver"  # the client's own label
    segment = new_segment(client, sid, f"{NAME_MARKER} lesion")
    url = f"/v1/sessions/{sid}/segments/{segment['id']}"

    # bad uploads, each with the marked file and session names
    for files in _bad_uploads(good):
        response = send(f"bad upload {[n for n, _ in files]}", client.post(
            "/v1/sessions", data={"name": f"{NAME_MARKER} bad"},
            files=[("files", (name, content)) for name, content in files]))
        assert 400 <= response.status_code < 500, (files[0][0], response.text)
    too_long = send("long name", client.post(
        "/v1/sessions", data={"name": NAME_MARKER * 20},
        files=[("files", (f"{FILE_MARKER}.nii.gz", good))]))
    assert too_long.status_code == 422, too_long.text

    # bad clicks on the good session
    plane = {"axis": "z", "index": 1}
    for body, headers in _bad_interactions(plane):
        response = send(f"bad interaction {body}", client.post(
            f"{url}/interactions", json=body, headers=headers))
        assert 400 <= response.status_code < 500, (body, response.text)
    nan_click = json.dumps({"type": "click", "dim": "2d", "plane": plane,
                            "clicks": [{"zyx": [1, 10, 10]}]})[:-1] + ', "params": {"sigma": NaN}}'
    raw = send("NaN parameter", client.post(
        f"{url}/interactions", headers={"Content-Type": "application/json"}, content=nan_click))
    assert 400 <= raw.status_code < 500, raw.text
    assert send("a good click", client.post(f"{url}/interactions", json={
        "type": "click", "dim": "2d", "plane": plane,
        "clicks": [{"zyx": [1, 12, 14]}]})).status_code == 200
    rename = send("rename", client.patch(url, json={"name": f"{NAME_MARKER} " + "x" * 300}))
    assert rename.status_code == 422

    # injected fault: a library error that quotes the file name it was given (a 500)
    def library_error(store_, files, *args, **kwargs):
        raise OSError(f"cannot read {files[0][0]}: unexpected end of data")

    monkeypatch.setattr(sessions_usecase, "create_session", library_error)
    with TestClient(client.app, headers=AUTH, raise_server_exceptions=False) as plain:
        crashed = send("library error", plain.post(
            "/v1/sessions", data={"name": f"{NAME_MARKER} crash"},
            files=[("files", (f"{FILE_MARKER}.nii.gz", good))]))
    assert crashed.status_code == 500, crashed.text
    monkeypatch.undo()

    # answers: no error answer names either marker; the file name is in no answer at all
    for what, response in answers:
        if response.status_code >= 400:
            for marker in MARKERS:
                assert marker not in response.text, (what, response.text)
        assert FILE_MARKER not in response.text, (what, response.text)
    # logs: the app logged (each request, and the 500 with where it failed), naming neither
    lines = log_lines()
    assert any('"unhandled_error"' in line for line in lines), lines[-5:]
    assert sum('"request"' in line for line in lines) >= len(answers)
    leaking = [line for line in lines if any(marker in line for marker in MARKERS)]
    assert leaking == [], leaking
    # Redis: no key name carries a marker; no value holds the file name
    keys = _redis_keys(store)
    assert keys and not [k for k in keys if any(m in k for m in MARKERS)]
    session_keys = [k for k in keys if sid in k]
    assert session_keys
    assert not [k for k in keys if FILE_MARKER.encode() in _redis_values(store, k)]
    assert any(NAME_MARKER.encode() in _redis_values(store, k) for k in session_keys)

    # a deleted session takes its name with it (the AOF's copy is the data-at-rest suite's)
    assert client.delete(f"/v1/sessions/{sid}").status_code == 204
    assert not [k for k in _redis_keys(store)
                if NAME_MARKER.encode() in _redis_values(store, k)]
