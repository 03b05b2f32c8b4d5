"""The 3D path through the service: a `bifseg` box in the volume and a fine-tuning job on it,
with a small untrained PC-Net (no trained PC-Net is committed yet) that both the API and a
real worker process load from MEDSEG_MODELS_DIR. Plumbing, not accuracy: 3D crops, grids,
the 3D adapted weights, one revision."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from medseg.engine import bifseg_method
from tests.api.helpers import full_mask, new_segment, upload
from tests.jobs.helpers import wait_done
from tests.live import job_worker
from tests.models.tiny import write_tiny_pcnet


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    write_tiny_pcnet(folder)
    return folder


def test_3d_box_and_finetuning_job(client, store, redis_url, totalseg, models_dir, monkeypatch):
    monkeypatch.setenv("MEDSEG_MODELS_DIR", str(models_dir))
    seg_nii = nib.load(totalseg / "ct_3mm_seg.nii.gz")
    labels = json.loads((totalseg / "labels.json").read_text())["ct_3mm_seg.nii.gz"]
    label = int(next(k for k, v in labels.items() if v == "spleen"))
    truth = np.asarray(seg_nii.dataobj).transpose(2, 1, 0) == label
    lo, hi = np.argwhere(truth).min(axis=0), np.argwhere(truth).max(axis=0)
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    seg = new_segment(client, session["id"], "spleen")["id"]
    url = f"/v1/sessions/{session['id']}/segments/{seg}"
    change = client.post(f"{url}/interactions", json={
        "type": "box", "method": "bifseg", "dim": "3d",
        "box": {"lo": lo.tolist(), "hi": hi.tolist()}, "params": {"margin": 2}})
    assert change.status_code == 200, change.text
    body = change.json()
    assert body["roi"]["lo"] == np.maximum(lo - 2, 0).tolist()
    assert body["roi"]["hi"] == np.minimum(hi + 2, np.array(truth.shape) - 1).tolist()
    meta = store.sessions.get(session["id"])
    assert store.segments.probability(meta, body["revision"]) is not None
    with job_worker(redis_url, MEDSEG_MODELS_DIR=str(models_dir)):
        job = client.post(f"{url}/finetune", json={
            "mode": "supervised", "params": {"alternations": 2, "iterations": 3},
            "scribbles": [{"path": [[int(v) for v in np.argwhere(truth).mean(axis=0)]]}]})
        assert job.status_code == 202, job.text
        done = wait_done(client, job.json()["id"], timeout_s=120)
    assert done["state"] == "succeeded", done["error"]
    assert done["result"]["dims"] == 3 and done["result"]["iterations"] == 6
    head = store.segments.revision(meta, seg, done["result_revision"])
    assert store.segments.artifact(meta, head, bifseg_method.adapted_block6_name(3)) is not None
    assert store.segments.artifact(meta, head, bifseg_method.adapted_block6_name(2)) is None
    mask = full_mask(client, session["id"], seg)
    centre = tuple(int(v) for v in np.argwhere(truth).mean(axis=0))
    assert mask[centre]  # the scribbled voxel is foreground
    roi = body["roi"]
    outside = np.ones(mask.shape, bool)
    outside[tuple(slice(a, b + 1) for a, b in zip(roi["lo"], roi["hi"]))] = False
    assert not mask[outside].any()  # nothing outside the box's crop


def test_a_finetuning_that_ends_empty_fails_and_keeps_the_head(client, store, redis_url):
    """The committed PC-Net, a 3D box around the sarcoma of mirp_sts STS_001's CT: the box
    gives ~24,000 voxels, and one alternation of unsupervised fine-tuning ends with an EMPTY
    mask (engine/finetune.py, every alternation count tried). The job "succeeded" and made the
    empty mask the head. Now it fails with `empty_result`, saying so, and the head stays."""
    from tests.conftest import SHARED_DATA

    folder = SHARED_DATA / "mirp_sts"
    truth = np.asarray(nib.load(folder / "STS_001_ct_mask.nii.gz").dataobj).transpose(2, 1, 0) > 0
    lo, hi = np.argwhere(truth).min(axis=0), np.argwhere(truth).max(axis=0)
    session = upload(client, folder / "STS_001_ct_image.nii.gz")
    seg = new_segment(client, session["id"], "sarcoma")["id"]
    url = f"/v1/sessions/{session['id']}/segments/{seg}"
    box = client.post(f"{url}/interactions", json={
        "type": "box", "method": "bifseg", "dim": "3d",
        "box": {"lo": lo.tolist(), "hi": hi.tolist()}})
    assert box.status_code == 200, box.text
    head = client.get(url).json()
    assert head["voxels"] > 10_000
    before = full_mask(client, session["id"], seg)
    with job_worker(redis_url):
        job = client.post(f"{url}/finetune", json={
            "mode": "unsupervised", "params": {"alternations": 1, "iterations": 2}})
        assert job.status_code == 202, job.text
        done = wait_done(client, job.json()["id"], timeout_s=120)
    assert done["state"] == "failed", done
    assert done["error"]["code"] == "empty_result"
    message = done["error"]["message"]
    assert "empty mask" in message and f"stays at revision {head['revision']}" in message
    assert "scribbles" in message
    assert done["result_revision"] is None
    after = client.get(url).json()
    assert (after["revision"], after["voxels"]) == (head["revision"], head["voxels"])
    assert np.array_equal(full_mask(client, session["id"], seg), before)
    assert [r["interaction"]["type"] for r in
            client.get(f"{url}/history").json()["revisions"]] == ["create", "box"]
