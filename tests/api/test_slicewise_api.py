"""The `slicewise` 3D start (issue 13 item 2) end to end through the API on a real Redis: a 3D
box and 3D interior margin points on a natively anisotropic volume (mirp_sts: a soft-tissue
sarcoma, CT, 0.98 x 0.98 x 3.27 mm; no shipped network was trained on it), with the shipped
P-Net, propagation network and MIDeepSeg 2D model; a geodesic-graphcut click then refines the
start under the refinement contract instead of discarding it. A 3D click starts it too, and
`slicewise` clicks then correct their slice and re-propagate the neighbours they change (undo
and redo exact). 2D, scribbles and a first background click are refused. A 3D box on a
held-out organ of a shared volume (a kidney of ct_3mm and mr_3mm: no shipped network saw a
kidney) starts the model-free way there (`auto`: 3 mm isotropic) above a Dice floor."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from medseg.algorithms.metrics import dice
from medseg.engine.imageio import reorient_to
from medseg_protocol import codec
from medseg_train.objects import largest_component
from medseg_train.simulate import interior_margin_points
from tests.api.helpers import full_mask, new_segment, upload
from tests.api.test_accuracy_real_data import organ_reference
from tests.conftest import SHARED_DATA
from tests.robot import robot_click

STS = SHARED_DATA / "mirp_sts"
# a little under what these tests measured (docs/benchmarks.md, "3D from the 2D networks")
FLOORS = {"box": 0.80, "points": 0.75,  # measured: box 0.879, points 0.813 (start=slicewise)
          "click": 0.55}  # measured: click 0.590 (geodesic-graphcut's 3D click there: 0.612)


@pytest.fixture(scope="module")
def sts_files():
    image, mask = STS / "STS_002_ct_image.nii.gz", STS / "STS_002_ct_mask.nii.gz"
    if not image.exists():
        pytest.skip(f"shared data {STS} is absent")
    return image, mask


def _reference(mask_path, session: dict) -> np.ndarray:
    seg = nib.load(mask_path)
    data = np.asarray(seg.dataobj).transpose(2, 1, 0) == 1
    on_grid = reorient_to(np.asarray(session["affine"]), tuple(session["shape"]), data,
                          seg.affine)
    return largest_component(on_grid)


def _post(client, url: str, body: dict):
    response = client.post(f"{url}/interactions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("start", ["box", "points"])
def test_slicewise_start_on_an_anisotropic_tumour_then_a_click_refines_it(client, sts_files,
                                                                          start):
    session = upload(client, sts_files[0])
    sid, shape = session["id"], tuple(session["shape"])
    reference = _reference(sts_files[1], session)
    assert 100 < reference.sum() < 200_000
    seg = new_segment(client, sid, "sarcoma")["id"]
    url = f"/v1/sessions/{sid}/segments/{seg}"
    if start == "box":
        idx = np.argwhere(reference)
        lo = np.maximum(idx.min(axis=0) - 3, 0).tolist()
        hi = np.minimum(idx.max(axis=0) + 3, np.asarray(shape) - 1).tolist()
        body: dict = {"type": "box", "method": "slicewise", "dim": "3d",
                      "box": {"lo": lo, "hi": hi}, "params": {"start": "slicewise"}}
    else:
        points = interior_margin_points(reference, np.random.default_rng(0), extra=(0, 0))
        body = {"type": "points", "method": "slicewise", "dim": "3d",
                "points": points.tolist(), "params": {"start": "slicewise"}}
    change = _post(client, url, body)
    mask = codec.apply_delta(np.zeros(shape, bool), change["delta"])
    assert np.array_equal(mask, full_mask(client, sid, seg))
    first = dice(mask, reference)
    # a corrective click refines the slice-by-slice start; it does not start over
    point, fg = robot_click(mask, reference)
    change = _post(client, url, {"type": "click", "method": "geodesic-graphcut", "dim": "3d",
                                 "clicks": [{"zyx": list(point), "foreground": fg}]})
    refined = codec.apply_delta(mask, change["delta"])
    after = dice(refined, reference)
    kept = (mask & refined).sum() / mask.sum() if fg else 1.0
    print(f"\nsts-2 CT slicewise {start}: Dice {first:.3f}, after one "
          f"{'fg' if fg else 'bg'} click {after:.3f}, start voxels kept {kept:.3f}")
    assert first >= FLOORS[start]
    assert after >= first - 0.02
    assert kept == 1.0  # a foreground click never removes a voxel (refinement contract)
    history = client.get(f"{url}/history").json()["revisions"]
    assert [r["interaction"].get("method") for r in history[1:]] == ["slicewise",
                                                                      "geodesic-graphcut"]


# measured through the API (docs/benchmarks.md, "3D box start on held-out organs"): the box's
# centre third holds the renal sinus' fat, which the centre's mean/std model let in (main before
# this: 0.729 / 0.647); its median/MAD model keeps it out
KIDNEY_FLOORS = {("ct_3mm", "kidney_left"): 0.86, ("mr_3mm", "kidney_right"): 0.84}


@pytest.mark.parametrize("case,organ", sorted(KIDNEY_FLOORS))
def test_a_3d_box_on_a_held_out_kidney_starts_above_a_floor(client, totalseg, case, organ):
    session = upload(client, totalseg / f"{case}.nii.gz")
    sid, shape = session["id"], tuple(session["shape"])
    reference = largest_component(organ_reference(totalseg, f"{case}_seg.nii.gz", organ,
                                                  session))
    idx = np.argwhere(reference)
    box = {"lo": np.maximum(idx.min(axis=0) - 3, 0).tolist(),
           "hi": np.minimum(idx.max(axis=0) + 3, np.asarray(shape) - 1).tolist()}
    masks, urls = {}, {}
    for method in ("slicewise", "geodesic-graphcut"):
        seg = new_segment(client, sid, f"{organ} {method}")["id"]
        urls[method] = f"/v1/sessions/{sid}/segments/{seg}"
        change = _post(client, urls[method], {"type": "box", "method": method, "dim": "3d",
                                              "box": box})
        masks[method] = codec.apply_delta(np.zeros(shape, bool), change["delta"])
        assert np.array_equal(masks[method], full_mask(client, sid, seg))
    record = client.get(f"{urls['slicewise']}/history").json()["revisions"][-1]
    assert record["interaction"]["result"]["start"] == "volumetric"  # 3 mm isotropic
    # one method name: slicewise's default on this isotropic volume is the model-free box
    assert np.array_equal(masks["slicewise"], masks["geodesic-graphcut"])
    score = dice(masks["slicewise"], reference)
    print(f"\n{case} {organ} 3D box: Dice {score:.3f}")
    assert score >= KIDNEY_FLOORS[(case, organ)]


def test_slicewise_click_start_then_slice_correcting_clicks_undo_and_redo(client, sts_files):
    """One 3D click starts the tumour slice by slice; two robot clicks with `slicewise` then
    each correct their own slice in 2D and re-propagate the neighbours they change: the slices
    a click did not reach keep the previous revision bit for bit; undo and redo walk back and
    forth through every revision exactly."""
    session = upload(client, sts_files[0])
    sid, shape = session["id"], tuple(session["shape"])
    reference = _reference(sts_files[1], session)
    seg = new_segment(client, sid, "sarcoma")["id"]
    url = f"/v1/sessions/{sid}/segments/{seg}"
    point, fg = robot_click(np.zeros(shape, bool), reference)
    change = _post(client, url, {"type": "click", "method": "slicewise", "dim": "3d",
                                 "clicks": [{"zyx": list(point), "foreground": fg}]})
    masks = [np.zeros(shape, bool), codec.apply_delta(np.zeros(shape, bool), change["delta"])]
    revisions = [change["revision"]]
    start = dice(masks[-1], reference)
    dices = [start]
    for _ in range(2):
        point, fg = robot_click(masks[-1], reference)
        change = _post(client, url, {"type": "click", "method": "slicewise", "dim": "3d",
                                     "clicks": [{"zyx": list(point), "foreground": fg}],
                                     "params": {"start": "slicewise"}})
        mask = codec.apply_delta(masks[-1], change["delta"])
        changed = sorted(set(np.argwhere(mask ^ masks[-1])[:, 0].tolist()))
        record = client.get(f"{url}/history").json()["revisions"][-1]
        result = record["interaction"]["result"]
        assert result["corrected"] == "slice" and result["changed_slices"] == changed
        if changed:
            assert point[0] in result["corrected_slices"]
        untouched = [z for z in range(shape[0]) if z not in changed]
        assert np.array_equal(mask[untouched], masks[-1][untouched])
        if fg:
            assert not (masks[-1] & ~mask).any()
        else:
            assert not (mask & ~masks[-1]).any()
        masks.append(mask)
        revisions.append(change["revision"])
        dices.append(dice(mask, reference))
    print(f"\nsts-2 CT slicewise click start: Dice {start:.3f}, after two slice-correcting "
          f"clicks {dices[-1]:.3f} ({', '.join(f'{d:.3f}' for d in dices)})")
    assert start >= FLOORS["click"]
    assert dices[-1] >= start - 0.02
    for k in range(len(masks) - 1, 0, -1):  # undo back to the empty segment
        assert np.array_equal(full_mask(client, sid, seg), masks[k])
        assert client.post(f"{url}/undo").status_code == 200
    assert not full_mask(client, sid, seg).any()
    for k in range(1, len(masks)):  # redo forward: every revision exactly again
        assert client.post(f"{url}/redo").status_code == 200
        assert np.array_equal(full_mask(client, sid, seg), masks[k])
    for revision, mask in zip(revisions, masks[1:]):
        assert np.array_equal(full_mask(client, sid, seg, revision), mask)


def test_slicewise_refuses_2d_and_bad_clicks_with_a_reason(client, sts_files):
    session = upload(client, sts_files[0])
    sid = session["id"]
    seg = new_segment(client, sid)["id"]
    url = f"/v1/sessions/{sid}/segments/{seg}/interactions"
    plane = {"dim": "2d", "plane": {"axis": "z", "index": 10}}
    r = client.post(url, json={"type": "box", "method": "slicewise", **plane,
                               "box": {"lo": [10, 20, 20], "hi": [10, 60, 60]}})
    assert r.status_code == 422, r.text
    assert "slicewise" in r.text
    r = client.post(url, json={"type": "click", "method": "slicewise", "dim": "3d",
                               "clicks": [{"zyx": [10, 40, 40], "foreground": False}]})
    assert r.status_code == 422, r.text  # a first click must be a foreground one
    assert "foreground click" in r.text
    r = client.post(url, json={"type": "scribble", "method": "slicewise", "dim": "3d",
                               "scribbles": [{"path": [[10, 40, 40], [10, 42, 42]]}]})
    assert r.status_code == 422, r.text
    assert "slicewise" in r.text
    assert not full_mask(client, sid, seg).any()
