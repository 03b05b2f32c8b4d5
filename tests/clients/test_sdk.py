"""The Python SDK (sync and async) against a real API process and real data (ct_3mm, liver)."""

from __future__ import annotations

import asyncio
from functools import cache
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from medseg.engine.imageio import reorient_to
from medseg_client.client import AsyncClient, Client, SegmentView, upload_parts
from medseg_client.errors import (
    Conflict,
    InvalidRequest,
    MedsegError,
    NotFound,
    Unauthorized,
)
from medseg_train.simulate import interior_margin_points
from tests.conftest import KEYS, TOTALSEG

CT = TOTALSEG / "ct_3mm.nii.gz"
LIVER = 5


@cache
def _liver_on_file_grid() -> np.ndarray:
    seg = nib.load(TOTALSEG / "ct_3mm_seg.nii.gz")
    return np.asarray(seg.dataobj).transpose(2, 1, 0) == LIVER


def liver_reference(session) -> np.ndarray:
    """The reference liver on the session's voxel grid, bool (Z, Y, X)."""
    seg = nib.load(TOTALSEG / "ct_3mm_seg.nii.gz")
    return reorient_to(np.asarray(session.affine), tuple(session.shape), _liver_on_file_grid(),
                       seg.affine).astype(bool)


def liver_voxel(reference: np.ndarray) -> tuple[int, int, int]:
    """The voxel deepest inside the liver (the volume's border counts as outside)."""
    depth = ndimage.distance_transform_edt(np.pad(reference, 1))[1:-1, 1:-1, 1:-1]
    z, y, x = np.unravel_index(int(depth.argmax()), depth.shape)
    return int(z), int(y), int(x)


def liver_box(reference: np.ndarray) -> tuple[list[int], list[int]]:
    """Inclusive corners of the liver's bounding box."""
    idx = np.nonzero(reference)
    return [int(a.min()) for a in idx], [int(a.max()) for a in idx]


@pytest.fixture
def sdk(live_server, totalseg):
    with Client(live_server, api_key=KEYS["alice"], timeout=120) as client:
        yield client


@pytest.fixture
def ct_session(sdk):
    session = sdk.create_session(CT, name="ct")
    yield session
    try:
        sdk.delete_session(session.id)
    except NotFound:
        pass


def test_upload_parts_expands_a_directory(totalseg):
    parts = upload_parts(totalseg / "ct_dicom")
    assert len(parts) == 20 and all(isinstance(b, bytes) and b for _, b in parts)
    assert upload_parts([("a.nii.gz", b"x")]) == upload_parts(("a.nii.gz", b"x")) == [
        ("a.nii.gz", b"x")]
    files = tuple(sorted((totalseg / "ct_dicom").iterdir()))  # a tuple of paths, not a pair
    assert len(upload_parts(files)) == len(files) == 20


def test_session_and_segment_lifecycle(sdk, ct_session):
    assert sdk.health()["status"] == "ok"
    assert ct_session.shape == (30, 101, 122) and ct_session.name == "ct"
    assert ct_session.id in [s.id for s in sdk.list_sessions()]
    seg = sdk.create_segment(ct_session.id, name="liver", label=5, color="#ff0000")
    assert (seg.name, seg.label, seg.color, seg.voxels, seg.can_undo) == (
        "liver", 5, "#ff0000", 0, False)
    assert [s.id for s in sdk.list_segments(ct_session.id)] == [seg.id]
    renamed = sdk.update_segment(ct_session.id, seg.id, name="hepar")
    assert sdk.get_segment(ct_session.id, seg.id).name == renamed.name == "hepar"
    # the viewer's reviewed flag, from a pipeline that accepts a segment (the API had it, the
    # SDK could not set or read it)
    assert not renamed.reviewed
    accepted = sdk.update_segment(ct_session.id, seg.id, reviewed=True)
    assert accepted.reviewed and sdk.get_segment(ct_session.id, seg.id).reviewed
    assert accepted.name == "hepar"  # a PATCH of one field leaves the others
    assert not sdk.mask(ct_session.id, seg.id).any()
    exported = sdk.export(ct_session.id, "nifti")
    assert exported.filename.endswith(".nii.gz") and exported.content[:2] == b"\x1f\x8b"
    sdk.delete_segment(ct_session.id, seg.id)
    with pytest.raises(NotFound):
        sdk.get_segment(ct_session.id, seg.id)
    sdk.delete_session(ct_session.id)
    with pytest.raises(NotFound) as info:
        sdk.get_session(ct_session.id)
    assert info.value.status == 404 and info.value.request_id


def test_dicom_directory_upload(sdk, totalseg):
    session = sdk.create_session(totalseg / "ct_dicom")
    try:
        assert session.source_format.startswith("dicom") and len(session.shape) == 3
    finally:
        sdk.delete_session(session.id)


def test_errors_are_typed(live_server, sdk, tmp_path):
    for key in ("wrong-key", ""):
        with Client(live_server, api_key=key) as bad, pytest.raises(Unauthorized) as info:
            bad.list_sessions()
        assert info.value.status == 401 and info.value.code == "unauthorized"
    bogus = tmp_path / "bogus.nii.gz"
    bogus.write_text("not an image")
    with pytest.raises(InvalidRequest) as info:
        sdk.create_session(bogus)
    assert info.value.status in (415, 422) and info.value.message
    with pytest.raises(NotFound):
        sdk.get_session("0" * 32)
    assert issubclass(Conflict, MedsegError)


def test_click_on_liver_view_follows_server(sdk, ct_session):
    reference = liver_reference(ct_session)
    z, y, x = liver_voxel(reference)
    assert reference[z, y, x]
    seg = sdk.create_segment(ct_session.id, name="liver")
    view = SegmentView.open(sdk, ct_session.id, seg.id)
    change = view.click([(z, y, x)])
    assert change.previous_revision == seg.revision and view.revision == change.revision
    assert view.mask[z, y, x] and change.changed_voxels == view.mask.sum() > 0
    np.testing.assert_array_equal(view.mask, sdk.mask(ct_session.id, seg.id))

    first = view.revision
    view.undo()
    assert not view.mask.any() and view.revision == seg.revision
    np.testing.assert_array_equal(view.mask, sdk.mask(ct_session.id, seg.id))
    redone = view.redo()
    assert view.revision == first and redone.can_undo and not redone.can_redo
    np.testing.assert_array_equal(view.mask, sdk.mask(ct_session.id, seg.id))

    history = sdk.history(ct_session.id, seg.id)
    assert history["head"] == first and len(history["revisions"]) >= 2
    delta = sdk.delta(ct_session.id, seg.id, seg.revision, first)
    assert delta["changed_voxels"] == int(view.mask.sum())


def test_remove_interaction_through_the_sdk(sdk, ct_session):
    """The second of two clicks removed: the mask is the first click's again, as a new head
    revision that one undo takes back; a stale revision conflicts."""
    zyx = liver_voxel(liver_reference(ct_session))
    seg = sdk.create_segment(ct_session.id)
    first = sdk.click(ct_session.id, seg.id, [zyx])
    after_first = sdk.mask(ct_session.id, seg.id)
    second = sdk.click(ct_session.id, seg.id, [zyx], foreground=[False],
                       base_revision=first.revision)
    assert sdk.mask(ct_session.id, seg.id).sum() < after_first.sum()  # the click took some
    with pytest.raises(Conflict):
        sdk.remove_interaction(ct_session.id, seg.id, second.revision, revision=first.revision)
    removed = sdk.remove_interaction(ct_session.id, seg.id, second.revision,
                                     revision=second.revision)
    assert removed.revision > second.revision and removed.can_undo
    np.testing.assert_array_equal(sdk.mask(ct_session.id, seg.id), after_first)
    assert sdk.history(ct_session.id, seg.id)["revisions"][-1]["interaction"]["removed"] == \
        second.revision


def test_stale_revision_conflicts_and_view_resyncs(sdk, ct_session):
    reference = liver_reference(ct_session)
    zyx = liver_voxel(reference)
    seg = sdk.create_segment(ct_session.id)
    view = sdk.view(ct_session.id, seg.id)
    other = sdk.click(ct_session.id, seg.id, [zyx], base_revision=seg.revision)
    with pytest.raises(Conflict) as info:  # the view's revision is now stale
        view.click([zyx])
    assert info.value.status == 409 and info.value.request_id
    with pytest.raises(Conflict):
        sdk.undo(ct_session.id, seg.id, revision=seg.revision)
    # a change that does not follow the view's revision makes it resync
    lo, hi = liver_box(reference)
    later = sdk.box(ct_session.id, seg.id, lo, hi, base_revision=other.revision)
    view.apply(later)
    assert view.revision == later.revision
    np.testing.assert_array_equal(view.mask, sdk.mask(ct_session.id, seg.id))
    view.click([zyx], foreground=[False])  # the view now holds the head: no conflict
    np.testing.assert_array_equal(view.mask, sdk.mask(ct_session.id, seg.id))


def test_capabilities(sdk):
    caps = sdk.capabilities()
    assert "geodesic-graphcut" in [m["name"] for m in caps["methods"]]
    assert "click" in caps["interaction_types"]


def test_async_client_basic_flow(live_server, totalseg):
    async def flow() -> None:
        async with AsyncClient(live_server, api_key=KEYS["alice"], timeout=120) as client:
            assert (await client.health())["status"] == "ok"
            session = await client.create_session(Path(CT))
            try:
                reference = liver_reference(session)
                zyx = liver_voxel(reference)
                seg = await client.create_segment(session.id, name="liver")
                view = await client.view(session.id, seg.id)
                change = await view.click([zyx])
                assert view.mask[zyx] and change.revision == view.revision
                np.testing.assert_array_equal(view.mask, await client.mask(session.id, seg.id))
                await view.undo()
                assert not view.mask.any()
                with pytest.raises(Conflict):
                    await client.click(session.id, seg.id, [zyx], base_revision=change.revision)
                assert [s.id for s in await client.list_segments(session.id)] == [seg.id]
            finally:
                await client.delete_session(session.id)
            with pytest.raises(NotFound):
                await client.get_session(session.id)
        async with AsyncClient(live_server, api_key="nope") as bad:
            with pytest.raises(Unauthorized):
                await bad.list_sessions()

    asyncio.run(flow())


def test_points_and_mideepseg_refinement_through_the_view(sdk, ct_session):
    """Needs the committed 2D EGD model (the live server reads the default weights folder)."""
    listed = sdk.models()["models"]
    if not any(m["name"] == "mideepseg-2d-egd" for m in listed):
        pytest.skip("committed weights mideepseg-2d-egd are absent")
    reference = liver_reference(ct_session)
    z = liver_voxel(reference)[0]
    simulated = interior_margin_points(reference[z], np.random.default_rng(0), extra=(0, 0))
    points = [(z, int(py), int(px)) for py, px in simulated]
    seg = sdk.create_segment(ct_session.id, name="liver")
    view = SegmentView.open(sdk, ct_session.id, seg.id)
    change = view.points(points, plane=("z", z))
    assert change.changed_voxels > 0 and view.revision == change.revision
    outside = tuple(int(v) for v in np.argwhere(view.mask[z] & ~reference[z])[0]) if (
        view.mask[z] & ~reference[z]).any() else (0, 0)
    view.click([(z, *outside)], foreground=False, dim="2d", plane=("z", z), method="mideepseg")
    assert not view.mask[(z, *outside)]
    np.testing.assert_array_equal(view.mask, sdk.mask(ct_session.id, seg.id))
