"""GET /v1/sessions/{sid}/segments/{seg}/hints (issue 14 item 5): the answer's shape on the
shared data's spleen with a bitten-out region, and the 404 / 422 cases (nothing written)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from tests.api.helpers import new_segment, upload
from tests.api.test_accuracy_real_data import organ_reference
from tests.api.test_editing_api import import_file, nifti


@pytest.fixture
def bitten(client, totalseg):
    """ct_3mm with the spleen imported minus a ball bitten out of its edge."""
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    spleen = organ_reference(totalseg, "ct_3mm_seg.nii.gz", "spleen", session)
    edge = np.argwhere(spleen & ~ndimage.binary_erosion(spleen))
    centre = edge[len(edge) // 2]
    grid = np.ogrid[tuple(slice(0, n) for n in spleen.shape)]
    ball = sum((g - c) ** 2 for g, c in zip(grid, centre)) <= 3 ** 2
    bite = ball & spleen
    response = import_file(client, session["id"], nifti(spleen & ~bite, session), name="spleen")
    assert response.status_code == 201, response.text
    return session, response.json()[0], bite


def test_hints_answer_shape_and_top_hint(client, bitten):
    session, segment, bite = bitten
    sid, seg = session["id"], segment["id"]
    response = client.get(f"/v1/sessions/{sid}/segments/{seg}/hints", params={"k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["segment_id"] == seg and body["revision"] == segment["revision"]
    assert 1 <= len(body["hints"]) <= 3 and body["sources"]
    voxel_ml = float(np.prod(session["spacing"])) / 1000.0
    for rank, hint in enumerate(body["hints"], start=1):
        assert hint["rank"] == rank and hint["kind"] in ("missing", "extra")
        lo, hi = hint["box"]["lo"], hint["box"]["hi"]
        assert all(a <= c <= b for a, c, b in zip(lo, hint["centre"], hi))
        assert all(0 <= a <= b < n for a, b, n in zip(lo, hi, session["shape"]))
        assert hint["volume_ml"] == pytest.approx(hint["voxels"] * voxel_ml, rel=1e-3)
        assert 0.0 <= hint["likelihood"] <= 1.0
    top = body["hints"][0]
    assert top["kind"] == "missing"
    box = tuple(slice(a, b + 1) for a, b in zip(top["box"]["lo"], top["box"]["hi"]))
    assert bite[box].sum() >= 0.5 * bite.sum()
    # read-only: the segment did not move
    after = client.get(f"/v1/sessions/{sid}/segments/{seg}").json()
    assert after["revision"] == segment["revision"]


def test_hints_errors(client, bitten):
    session, segment, _ = bitten
    sid, seg = session["id"], segment["id"]
    base = f"/v1/sessions/{sid}/segments"
    missing = client.get(f"{base}/999/hints")
    assert missing.status_code == 404 and missing.json()["error"] == "segment_not_found"
    assert client.get(f"/v1/sessions/{'0' * 32}/segments/1/hints").status_code == 404
    for k in (0, 21, "x"):
        bad = client.get(f"{base}/{seg}/hints", params={"k": k})
        assert bad.status_code == 422 and bad.json()["error"] == "validation_error", bad.text
    empty = new_segment(client, sid)
    answer = client.get(f"{base}/{empty['id']}/hints")
    assert answer.status_code == 422 and answer.json()["error"] == "empty_segment"
    assert "no voxels" in answer.json()["message"]
