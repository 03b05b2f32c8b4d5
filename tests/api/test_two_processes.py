"""Two API processes on one Redis serve the same session interchangeably."""

from __future__ import annotations

import gzip

import httpx
import nibabel as nib
import numpy as np

from medseg_protocol import codec
from tests.conftest import KEYS
from tests.live import api_server


def test_create_on_one_click_on_other_export_on_first(redis_url, totalseg):
    headers = {"X-API-Key": KEYS["alice"]}
    source = totalseg / "ct_3mm.nii.gz"
    with api_server(redis_url) as first, api_server(redis_url) as second:
        created = httpx.post(f"{first}/v1/sessions", headers=headers, timeout=60,
                             files=[("files", (source.name, source.read_bytes()))])
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        segment = httpx.post(f"{second}/v1/sessions/{sid}/segments", headers=headers,
                             json={"name": "liver"}).json()
        url = f"/v1/sessions/{sid}/segments/{segment['id']}"
        change = httpx.post(f"{second}{url}/interactions", headers=headers, timeout=60,
                            json={"type": "click", "clicks": [{"zyx": [15, 50, 40]}]})
        assert change.status_code == 200, change.text
        got = httpx.get(f"{first}{url}/mask", headers=headers)
        assert got.status_code == 200, got.text
        mask_first = codec.decode_mask(got.json())
        assert np.array_equal(mask_first, codec.apply_delta(np.zeros_like(mask_first),
                                                            change.json()["delta"]))
        exported = httpx.get(f"{first}/v1/sessions/{sid}/export", headers=headers)
        labels = nib.Nifti1Image.from_bytes(gzip.decompress(exported.content))
        assert np.allclose(labels.affine, nib.load(source).affine)
        assert (np.asarray(labels.dataobj).transpose(2, 1, 0) > 0).sum() == mask_first.sum()
        # undo on the first process sees the second's revision
        undo = httpx.post(f"{first}{url}/undo", headers=headers)
        assert undo.status_code == 200 and undo.json()["revision"] == segment["revision"]
