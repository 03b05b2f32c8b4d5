"""Issue 14 end to end: import an existing mask (file, label map, copy; geometry mismatch is a
422), the manual tools (paint, erase, fill) and the editing tools (select, brush, adjust) on
the shared data's liver and spleen (ct_3mm), every change a revision that undoes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from medseg.algorithms.metrics import dice
from medseg.engine import imageio
from medseg_protocol import codec
from tests.api.helpers import full_mask, new_segment, upload
from tests.api.test_accuracy_real_data import largest_slice, organ_reference

SEG = "ct_3mm_seg.nii.gz"


@pytest.fixture
def ct(client, totalseg):
    session = upload(client, totalseg / "ct_3mm.nii.gz")
    liver = organ_reference(totalseg, SEG, "liver", session)
    spleen = organ_reference(totalseg, SEG, "spleen", session)
    return session, liver, spleen


def nifti(mask: np.ndarray, session: dict) -> bytes:
    return imageio.save_nifti(mask.astype(np.uint8), np.asarray(session["affine"]))


def import_file(client, sid: str, content: bytes, **params):
    return client.post(f"/v1/sessions/{sid}/segments/import", params=params,
                       files=[("file", ("mask.nii.gz", content, "application/octet-stream"))])


def interact(client, sid, seg, body, revision=None):
    body = {**body}
    if revision is not None:
        body["base_revision"] = revision
    response = client.post(f"/v1/sessions/{sid}/segments/{seg}/interactions", json=body)
    return response


def plane(index: int) -> dict:
    return {"axis": "z", "index": int(index)}


# -- import ------------------------------------------------------------------------------------
def test_import_label_map_binary_and_copy(client, totalseg, ct):
    session, liver, spleen = ct
    sid = session["id"]
    labels = np.zeros(session["shape"], np.uint8)
    labels[liver], labels[spleen] = 5, 1
    response = import_file(client, sid, nifti(labels, session), name="organ")
    assert response.status_code == 201, response.text
    created = {s["label"]: s for s in response.json()}
    assert set(created) == {1, 5} and created[5]["name"] == "organ 5"
    assert created[5]["voxels"] == int(liver.sum()) and created[5]["can_undo"]
    assert np.array_equal(full_mask(client, sid, created[5]["id"]), liver)
    history = client.get(f"/v1/sessions/{sid}/segments/{created[1]['id']}/history").json()
    assert [r["interaction"]["type"] for r in history["revisions"]] == ["create", "import"]
    # a label map of one value is one binary segment; labels= picks values
    response = import_file(client, sid, nifti(labels, session), labels=[1], name="spleen")
    assert response.status_code == 201 and len(response.json()) == 1
    assert response.json()[0]["voxels"] == int(spleen.sum())
    # the original file as it is: a NIfTI in its own orientation, aligned by its affine
    content = (totalseg / SEG).read_bytes()
    response = import_file(client, sid, content, labels=[5, 1])
    assert response.status_code == 201, response.text
    assert [s["voxels"] for s in response.json()] == [int(spleen.sum()), int(liver.sum())]
    # NRRD too
    nrrd = imageio.save_nrrd(spleen.astype(np.uint8), np.asarray(session["affine"]))
    response = client.post(f"/v1/sessions/{sid}/segments/import",
                           files=[("file", ("mask.nrrd", nrrd, "application/octet-stream"))])
    assert response.status_code == 201, response.text
    assert np.array_equal(full_mask(client, sid, response.json()[0]["id"]), spleen)
    # a copy of another segment is a new segment starting from its mask
    copied = client.post(f"/v1/sessions/{sid}/segments/{created[5]['id']}/copy",
                         json={"name": "liver copy"})
    assert copied.status_code == 201, copied.text
    assert copied.json()["voxels"] == int(liver.sum()) and copied.json()["name"] == "liver copy"
    assert np.array_equal(full_mask(client, sid, copied.json()["id"]), liver)


def test_import_refuses_other_grids_and_bad_masks_with_4xx(client, totalseg, ct):
    session, liver, _ = ct
    sid = session["id"]
    before = len(client.get(f"/v1/sessions/{sid}/segments").json())
    other = import_file(client, sid, (totalseg / "mr_3mm_seg.nii.gz").read_bytes())
    assert other.status_code == 422 and other.json()["error"] == "geometry_mismatch"
    assert "grid" in other.json()["message"]
    shifted = np.asarray(session["affine"]).copy()
    shifted[0, 3] += 1.5  # same shape and spacing, origin 1.5 mm away
    moved = import_file(client, sid, imageio.save_nifti(liver.astype(np.uint8), shifted))
    assert moved.status_code == 422 and moved.json()["error"] == "geometry_mismatch"
    empty = import_file(client, sid, nifti(np.zeros(session["shape"], bool), session))
    assert empty.status_code == 422 and "empty" in empty.json()["message"]
    missing = import_file(client, sid, nifti(liver, session), labels=[7])
    assert missing.status_code == 422 and "do not occur" in missing.json()["message"]
    probability = liver.astype(np.float32) * 0.7
    floats = imageio.save_nifti(probability, np.asarray(session["affine"]))
    assert import_file(client, sid, floats).status_code == 422
    assert import_file(client, sid, floats, binary=True).json()[0]["voxels"] == int(liver.sum())
    junk = import_file(client, sid, b"not an image at all")
    assert junk.status_code == 415
    assert client.post(f"/v1/sessions/{sid}/segments/999/copy").status_code == 404
    assert len(client.get(f"/v1/sessions/{sid}/segments").json()) == before + 1


def test_import_png_mask_onto_a_png_image(client):
    image = np.zeros((40, 50), np.uint8)
    image[10:30, 15:35] = 200
    mask = np.zeros((40, 50), np.uint8)
    mask[12:28, 18:33] = 255

    def png(a):
        buffer = io.BytesIO()
        Image.fromarray(a).save(buffer, format="PNG")
        return buffer.getvalue()

    response = client.post("/v1/sessions", files=[("files", ("photo.png", png(image)))])
    sid = response.json()["id"]
    imported = client.post(f"/v1/sessions/{sid}/segments/import",
                           files=[("file", ("mask.png", png(mask)))])
    assert imported.status_code == 201, imported.text
    assert imported.json()[0]["voxels"] == int((mask > 0).sum())
    wrong = client.post(f"/v1/sessions/{sid}/segments/import",
                        files=[("file", ("mask.png", png(mask[:, :45])))])
    assert wrong.status_code == 422 and wrong.json()["error"] == "geometry_mismatch"


# -- manual tools --------------------------------------------------------------------------------
def test_paint_erase_fill_are_revisions_that_undo(client, ct):
    session, liver, _ = ct
    sid, z = session["id"], largest_slice(liver)
    seg = new_segment(client, sid)["id"]
    mask = np.zeros(session["shape"], bool)
    painted = interact(client, sid, seg, {"type": "paint", "plane": plane(z), "radius_mm": 6,
                                          "path": [[z, 30, 30], [z, 30, 70]]})
    assert painted.status_code == 200, painted.text
    change = painted.json()
    mask = codec.apply_delta(mask, change["delta"])
    # 6 mm on 3 mm voxels: the stroke's 41 voxels +-2 rows, rounded ends, on slice z only
    assert set(np.unique(np.nonzero(mask)[0])) == {z}
    assert mask[z, 28:33, 30:71].all() and not mask[z, 27, 40] and not mask[z, 33, 40]
    assert change["roi"] == {"lo": [z, 28, 28], "hi": [z, 32, 72]}
    segment = client.get(f"/v1/sessions/{sid}/segments/{seg}").json()
    assert segment["locked_slices"] == {"z": [z]}  # an edited slice is locked, as 2D clicks
    # erase a hole in the middle, then fill it again: a closed region
    erased = interact(client, sid, seg, {"type": "erase", "plane": plane(z), "radius_mm": 3,
                                         "path": [[z, 30, 50]]}).json()
    mask = codec.apply_delta(mask, erased["delta"])
    assert not mask[z, 30, 50] and mask[z, 28, 50]
    filled = interact(client, sid, seg, {"type": "fill", "plane": plane(z),
                                         "clicks": [[z, 30, 50]]})
    assert filled.status_code == 200, filled.text
    mask = codec.apply_delta(mask, filled.json()["delta"])
    assert np.array_equal(mask, full_mask(client, sid, seg))
    assert mask[z, 29:32, 49:52].all()
    # a fill in open background would flood the slice: refused
    outside = interact(client, sid, seg, {"type": "fill", "plane": plane(z),
                                          "clicks": [[z, 5, 5]]})
    assert outside.status_code == 422 and "not closed" in outside.json()["message"]
    assert interact(client, sid, seg, {"type": "fill", "dim": "3d",
                                       "clicks": [[z, 5, 5]]}).status_code == 422
    # every step undoes to the one before
    for _ in range(3):
        assert client.post(f"/v1/sessions/{sid}/segments/{seg}/undo").status_code == 200
    assert full_mask(client, sid, seg).sum() == 0
    # a 3D ball
    ball = interact(client, sid, seg, {"type": "paint", "dim": "3d", "radius_mm": 6,
                                       "path": [[15, 50, 60]]}).json()
    assert ball["delta"]["changed_voxels"] == 33  # radius 2 voxels
    bad = interact(client, sid, seg, {"type": "paint", "plane": plane(z), "radius_mm": -1,
                                      "path": [[z, 1, 1]]})
    assert bad.status_code == 422
    off_plane = interact(client, sid, seg, {"type": "paint", "plane": plane(z),
                                            "path": [[z + 1, 1, 1]]})
    assert off_plane.status_code == 422
    graphcut = interact(client, sid, seg, {"type": "paint", "method": "geodesic-graphcut",
                                           "plane": plane(z), "path": [[z, 1, 1]]})
    assert graphcut.status_code == 422


def test_an_edit_overrides_the_marks_it_contradicts(client, ct):
    """A model-free click, then an erase over it: the click's foreground mark goes, so the next
    click elsewhere does not bring the erased voxels back."""
    session, liver, _ = ct
    sid, z = session["id"], largest_slice(liver)
    seg = new_segment(client, sid)["id"]
    y, x = (int(v) for v in ndimage.center_of_mass(liver[z]))
    first = interact(client, sid, seg, {"type": "click", "dim": "2d", "plane": plane(z),
                                        "clicks": [{"zyx": [z, y, x]}]})
    assert first.status_code == 200
    interact(client, sid, seg, {"type": "erase", "plane": plane(z), "radius_mm": 9,
                                "path": [[z, y, x]]})
    erased = full_mask(client, sid, seg)
    assert not erased[z, y, x]
    history = client.get(f"/v1/sessions/{sid}/segments/{seg}/history").json()
    assert history["revisions"][-1]["interaction"]["options"] == {"radius_mm": 9.0}
    far = np.argwhere(erased[z])[0]
    interact(client, sid, seg, {"type": "click", "dim": "2d", "plane": plane(z),
                                "clicks": [{"zyx": [z, int(far[0]), int(far[1])],
                                            "foreground": False}]})
    assert not full_mask(client, sid, seg)[z, y, x]


# -- editing tools on imported imperfect masks ------------------------------------------------
def bite(reference2d: np.ndarray, fraction: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """(perturbed, bitten): the slice's reference minus a disc at its boundary that takes about
    `fraction` of its area."""
    ys, xs = np.nonzero(reference2d)
    edge = reference2d & ~ndimage.binary_erosion(reference2d)
    centre = np.argwhere(edge)[np.argmax(np.argwhere(edge)[:, 1])]  # the right-most boundary
    radius = np.sqrt(fraction * reference2d.sum() / np.pi) * 1.3
    yy, xx = np.mgrid[:reference2d.shape[0], :reference2d.shape[1]]
    disc = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2
    return reference2d & ~disc, reference2d & disc


# Dice on the slice after one selection click, share of the bitten-out region recovered (both
# methods; measured: liver 0.985 / 0.72 deep, 0.952 / 0.16 classical; spleen 0.989 / 0.87,
# 0.991 / 0.80): the liver's bite borders tissue of its own intensity
SELECT_FLOORS = {"liver": (0.95, 0.15), "spleen": (0.98, 0.8)}


@pytest.mark.parametrize("method", ["deep-editing", "classical-editing"])
@pytest.mark.parametrize("organ", ["liver", "spleen"])
def test_select_fills_a_missed_region_and_erases_a_false_one(client, ct, method, organ):
    session, liver, spleen = ct
    reference = liver if organ == "liver" else spleen
    sid, z = session["id"], largest_slice(reference)
    start = reference.copy()
    start[z], missed = bite(reference[z], 0.15)
    response = import_file(client, sid, nifti(start, session), name=organ)
    seg, revision = response.json()[0]["id"], response.json()[0]["revision"]
    mask = full_mask(client, sid, seg)
    before = dice(mask[z], reference[z])
    ys, xs = np.nonzero(ndimage.binary_erosion(missed, iterations=2))
    core = np.argwhere(missed)[len(ys) // 2] if len(ys) == 0 else np.array([ys[len(ys) // 2],
                                                                              xs[len(xs) // 2]])
    click = {"zyx": [z, int(core[0]), int(core[1])], "foreground": True}
    response = interact(client, sid, seg, {"type": "select", "method": method,
                                           "plane": plane(z), "clicks": [click]}, revision)
    assert response.status_code == 200, response.text
    mask = codec.apply_delta(mask, response.json()["delta"])
    recovered = (mask[z] & missed).sum() / missed.sum()
    after = dice(mask[z], reference[z])
    print(f"{method} {organ} select: Dice {before:.3f} -> {after:.3f}, "
          f"recovered {recovered:.2f}, {response.json()['timings_ms']}")
    dice_floor, recovered_floor = SELECT_FLOORS[organ]
    assert after > before and after >= dice_floor and recovered >= recovered_floor
    assert np.array_equal(mask[:z], start[:z]) and np.array_equal(mask[z + 1:], start[z + 1:])
    # remove: the same region added back by hand, then erased with one selection click
    undo = client.post(f"/v1/sessions/{sid}/segments/{seg}/undo").json()
    mask = codec.apply_delta(mask, undo["delta"])
    blob = np.zeros(session["shape"], bool)
    ys, xs = np.nonzero(reference[z])
    cy, cx = int(ys.min()) - 6, int(xs.mean())
    if cy < 4:
        cy = int(ys.max()) + 6
    yy, xx = np.mgrid[:blob.shape[1], :blob.shape[2]]
    blob[z] = ((yy - cy) ** 2 + (xx - cx) ** 2 <= 9) & ~reference[z]
    painted = interact(client, sid, seg, {"type": "paint", "plane": plane(z), "radius_mm": 9,
                                          "path": [[z, cy, cx]]}).json()
    mask = codec.apply_delta(mask, painted["delta"])
    false = mask[z] & ~reference[z] & blob[z]
    response = interact(client, sid, seg, {"type": "select", "method": method, "plane": plane(z),
                                           "clicks": [{"zyx": [z, cy, cx],
                                                       "foreground": False}]})
    assert response.status_code == 200, response.text
    mask = codec.apply_delta(mask, response.json()["delta"])
    assert (mask[z] & false).sum() <= 0.2 * false.sum()
    assert (mask[z] & reference[z] & ~missed).sum() >= 0.97 * (start[z]).sum()


def test_brush_and_adjust_on_the_liver(client, ct):
    session, liver, _ = ct
    sid, z = session["id"], largest_slice(liver)
    start = liver.copy()
    start[z], missed = bite(liver[z], 0.2)
    response = import_file(client, sid, nifti(start, session), name="liver")
    seg = response.json()[0]["id"]
    mask = full_mask(client, sid, seg)
    before = dice(mask[z], liver[z])
    # a stroke through the missed region, end to end
    points = np.argwhere(missed)
    a, b = points[np.argmin(points[:, 0])], points[np.argmax(points[:, 0])]
    path = [[z, int(a[0]), int(a[1])], [z, int(b[0]), int(b[1])]]
    path = [p for p in path]
    response = interact(client, sid, seg, {"type": "brush", "plane": plane(z),
                                           "scribbles": [{"path": path}]})
    assert response.status_code == 200, response.text
    mask = codec.apply_delta(mask, response.json()["delta"])
    after = dice(mask[z], liver[z])
    print(f"brush: Dice {before:.3f} -> {after:.3f}")
    assert after > before + 0.03
    # adjust: monotone in the amount, 0 changes nothing, each step undoable
    sizes = []
    for amount in (-0.3, -0.1, 0.0, 0.1, 0.3):
        response = interact(client, sid, seg, {"type": "adjust", "plane": plane(z),
                                               "amount": amount})
        assert response.status_code == 200, response.text
        adjusted = codec.apply_delta(mask, response.json()["delta"])
        sizes.append(adjusted[z])
        if amount == 0.0:
            assert np.array_equal(adjusted, mask)
        assert np.array_equal(adjusted[z + 1:], mask[z + 1:])
        undo = client.post(f"/v1/sessions/{sid}/segments/{seg}/undo").json()
        assert np.array_equal(codec.apply_delta(adjusted, undo["delta"]), mask)
    for smaller, larger in zip(sizes, sizes[1:]):
        assert not (smaller & ~larger).any()
    area = mask[z].sum()
    assert abs(sizes[-1].sum() - 1.3 * area) <= 1 and abs(sizes[0].sum() - 0.7 * area) <= 1
    # 3D adjust of the whole liver
    response = interact(client, sid, seg, {"type": "adjust", "dim": "3d", "amount": 0.1})
    assert response.status_code == 200, response.text
    grown = codec.apply_delta(mask, response.json()["delta"])
    assert abs(grown.sum() - 1.1 * mask.sum()) <= 1 and not (mask & ~grown).any()
    empty = new_segment(client, sid)["id"]
    refused = interact(client, sid, empty, {"type": "adjust", "plane": plane(z), "amount": 0.2})
    assert refused.status_code == 422 and "needs a mask" in refused.json()["message"]


@pytest.mark.parametrize("method", ["deep-editing", "classical-editing"])
def test_a_removed_region_added_back_round_trip(client, ct, method):
    """Erase a disc of the imported spleen, select it back with one click, undo both: each step
    changes only that region, the click recovers most of it, undo gives the import bit for bit."""
    session, _, spleen = ct
    sid, z = session["id"], largest_slice(spleen)
    imported = import_file(client, sid, nifti(spleen, session), name="spleen").json()[0]
    seg = imported["id"]
    y, x = (int(v) for v in ndimage.center_of_mass(spleen[z]))
    erased = interact(client, sid, seg, {"type": "erase", "plane": plane(z), "radius_mm": 9,
                                         "path": [[z, y, x]]}).json()
    mask = codec.apply_delta(spleen.copy(), erased["delta"])
    removed = spleen & ~mask
    assert removed.sum() == erased["delta"]["changed_voxels"] == 29  # a 3-voxel disc
    back = interact(client, sid, seg, {"type": "select", "method": method, "plane": plane(z),
                                       "clicks": [{"zyx": [z, y, x]}]})
    assert back.status_code == 200, back.text
    mask = codec.apply_delta(mask, back.json()["delta"])
    print(f"{method}: recovered {(mask & removed).sum()} of {removed.sum()}, "
          f"{(mask & ~spleen).sum()} voxels added outside")
    assert (mask & removed).sum() >= 0.8 * removed.sum()
    assert (mask & ~spleen).sum() <= 0.2 * removed.sum()
    for _ in range(2):
        client.post(f"/v1/sessions/{sid}/segments/{seg}/undo")
    assert np.array_equal(full_mask(client, sid, seg), spleen)


def test_a_paint_too_large_to_compute_is_refused(client, monkeypatch, ct):
    from medseg.engine import manual_tools

    session, _, _ = ct
    sid = session["id"]
    seg = new_segment(client, sid)["id"]
    monkeypatch.setattr(manual_tools, "MAX_STROKE_BOX_VOXELS", 1000)
    body = {"type": "paint", "dim": "3d", "radius_mm": 30, "path": [[15, 50, 60]]}
    refused = interact(client, sid, seg, body)
    assert refused.status_code == 422 and "smaller radius" in refused.json()["message"]
    body["radius_mm"] = 3  # a 3 x 3 x 3 box
    assert interact(client, sid, seg, body).status_code == 200
    from medseg.engine import editing_method

    monkeypatch.setattr(editing_method, "MAX_ADJUST_VOXELS", 100)
    refused = interact(client, sid, seg, {"type": "adjust", "dim": "3d", "amount": 0.5})
    assert refused.status_code == 422 and "in 2D" in refused.json()["message"]
