"""End to end with the committed MIDeepSeg weights: a held-out organ of ct_3mm (never seen in
training) from simulated interior margin points + 2 robot refinement clicks, through the API
and its deltas, 2D (liver, largest axial slice) and 3D (spleen)."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.algorithms.metrics import dice
from medseg.models.loader import WEIGHTS_DIR
from medseg_protocol import codec
from medseg_train.objects import largest_component
from medseg_train.simulate import interior_margin_points
from tests.api.helpers import new_segment, upload
from tests.api.test_accuracy_real_data import largest_slice, organ_reference
from tests.robot import robot_click

# set a little under what `python -m medseg_bench.clicks` and these tests measured
FLOORS = {
    2: 0.90,
    3: 0.78,
}  # measured: 2D 0.927 -> 0.943 (2d-egd 1.0.0), 3D 0.733 -> 0.821 (3d-egd 1.0.0)


def _weights(dims: int) -> None:
    path = WEIGHTS_DIR / f"mideepseg-{dims}d-egd.onnx"
    if not path.exists():
        pytest.skip(f"committed weights {path} are absent (trained models not merged yet)")


@pytest.mark.parametrize("dims, organ", [(2, "liver"), (3, "spleen")])
def test_held_out_organ_from_points_and_two_clicks(client, totalseg, monkeypatch, dims, organ):
    _weights(dims)
    monkeypatch.delenv("MEDSEG_MODELS_DIR", raising=False)
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    sid, shape = session["id"], tuple(session["shape"])
    reference = largest_component(organ_reference(totalseg, "ct_3mm_seg.nii.gz", organ, session))
    seg = new_segment(client, sid, organ)["id"]
    url = f"/v1/sessions/{sid}/segments/{seg}/interactions"
    if dims == 2:
        z = largest_slice(reference)
        view = (slice(z, z + 1), slice(None), slice(None))
        where = {"dim": "2d", "plane": {"axis": "z", "index": z}}
        points = interior_margin_points(reference[z], np.random.default_rng(0), extra=(0, 0))
        points = [[z, int(y), int(x)] for y, x in points]
    else:
        view = (slice(None),) * 3
        where = {"dim": "3d"}
        points = interior_margin_points(reference, np.random.default_rng(0), extra=(0, 0)).tolist()
    r = client.post(url, json={"type": "points", "points": points, **where})
    assert r.status_code == 200, r.text
    mask = codec.apply_delta(np.zeros(shape, bool), r.json()["delta"])
    scores = [dice(mask[view], reference[view])]
    for _ in range(2):
        zyx, fg = robot_click(mask[view], reference[view])
        zyx = [zyx[0] + view[0].start if dims == 2 else zyx[0], *zyx[1:]]
        r = client.post(
            url,
            json={
                "type": "click",
                "method": "mideepseg",
                **where,
                "clicks": [{"zyx": zyx, "foreground": fg}],
            },
        )
        assert r.status_code == 200, r.text
        mask = codec.apply_delta(mask, r.json()["delta"])
        scores.append(dice(mask[view], reference[view]))
    print(
        f"ct_3mm {organ} {dims}D Dice after points, +1, +2 clicks:", [round(s, 3) for s in scores]
    )
    assert max(scores[1:]) >= FLOORS[dims] and scores[-1] >= scores[0] - 0.02
