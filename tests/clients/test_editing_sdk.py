"""The SDK and CLI calls of issue 14 against a real API process: import a mask file (and a
copy), the manual tools and the editing tools on the ct_3mm liver."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from medseg.engine import imageio
from medseg_client.cli import app
from medseg_client.editing import EditingEndpoints
from medseg_client.errors import InvalidRequest
from tests.clients.test_sdk import CT, liver_reference, liver_voxel, sdk  # noqa: F401
from tests.conftest import KEYS, TOTALSEG


@pytest.fixture
def ct_session(sdk):  # noqa: F811 - the fixture of test_sdk
    session = sdk.create_session(CT, name="ct")
    yield session
    sdk.delete_session(session.id)


def test_sdk_imports_and_edits(sdk, ct_session):  # noqa: F811
    sid = ct_session.id
    reference = liver_reference(ct_session)
    content = (TOTALSEG / "ct_3mm_seg.nii.gz").read_bytes()
    [liver] = sdk.import_mask(sid, content, name="liver", labels=[5])
    assert liver.voxels == int(reference.sum()) and liver.name == "liver 5"
    copy = sdk.copy_segment(sid, liver.id, name="work")
    assert copy.voxels == liver.voxels
    z, y, x = liver_voxel(reference)
    erased = sdk.erase(sid, copy.id, [(z, y, x)], radius_mm=9)
    yy, xx = np.mgrid[:reference.shape[1], :reference.shape[2]]
    disc = (yy - y) ** 2 + (xx - x) ** 2 <= 9  # 9 mm on 3 mm voxels
    assert erased.changed_voxels == int((reference[z] & disc).sum()) == int(disc.sum())
    filled = sdk.fill(sid, copy.id, [(z, y, x)])
    assert filled.changed_voxels == erased.changed_voxels  # the hole closes again
    grown = sdk.adjust(sid, copy.id, 0.1, plane=("z", z))
    assert grown.changed_voxels == round(0.1 * int(reference[z].sum()))
    shrunk = sdk.adjust(sid, copy.id, -0.2, dim="3d", method="classical-editing")
    assert shrunk.changed_voxels > 0
    painted = sdk.paint(sid, copy.id, [(z, 2, 2), (z, 2, 6)], radius_mm=1)
    assert painted.changed_voxels == 5
    selected = sdk.select(sid, copy.id, [(z, 2, 4)], foreground=False,
                          method="classical-editing")
    assert selected.changed_voxels >= 5
    brushed = sdk.brush(sid, copy.id, [(z, y, x - 2), (z, y, x + 2)],
                        method="classical-editing")
    assert brushed.revision > selected.revision
    with pytest.raises(InvalidRequest):
        sdk.import_mask(sid, (TOTALSEG / "mr_3mm_seg.nii.gz").read_bytes())


def test_cli_import_and_paint(live_server, tmp_path, sdk):  # noqa: F811
    session = sdk.create_session(CT, name="ct")
    reference = liver_reference(session)
    path = tmp_path / "liver.nii.gz"
    path.write_bytes(imageio.save_nifti(reference.astype(np.uint8), np.asarray(session.affine)))
    runner = CliRunner()
    base = ["--url", live_server, "--api-key", KEYS["alice"]]
    result = runner.invoke(app, [*base, "import-mask", session.id, str(path), "--name", "liver"])
    assert result.exit_code == 0, result.output
    assert f"{int(reference.sum())} voxels" in result.output
    seg = sdk.list_segments(session.id)[0].id
    result = runner.invoke(app, [*base, "paint", session.id, str(seg), "--points", "3,2,2;3,2,6",
                                 "--radius-mm", "1"])
    assert result.exit_code == 0, result.output
    assert "5 voxels changed" in result.output
    result = runner.invoke(app, [*base, "adjust", session.id, str(seg), "0.1", "--index", "12"])
    assert result.exit_code == 0, result.output
    grown = sdk.get_segment(session.id, seg).voxels
    # a shrink is a negative AMOUNT, as the help says; options may come before or after it
    result = runner.invoke(app, [*base, "adjust", session.id, str(seg), "-0.1", "--3d"])
    assert result.exit_code == 0, result.output
    assert sdk.get_segment(session.id, seg).voxels < grown
    result = runner.invoke(app, [*base, "adjust", session.id, str(seg), "-0.1", "--3D"])
    assert result.exit_code == 2 and "--3D" in result.output  # a mistyped option still fails
    result = runner.invoke(app, [*base, "fill", session.id, str(seg), "--at", "3,50,2"])
    assert result.exit_code == 2 and "not closed" in result.output
    sdk.delete_session(session.id)


def test_sdk_and_cli_hints(live_server, sdk, ct_session):  # noqa: F811
    """The ct_3mm spleen with a ball bitten out of its edge: the first hint covers the bite,
    from the SDK and in the CLI (table and --json)."""
    import json

    from tests.api.test_accuracy_real_data import organ_reference

    sid = ct_session.id
    session = {"affine": ct_session.affine, "shape": list(ct_session.shape)}
    spleen = organ_reference(TOTALSEG, "ct_3mm_seg.nii.gz", "spleen", session)
    edge = np.argwhere(spleen & ~ndimage.binary_erosion(spleen))
    centre = edge[len(edge) // 2]
    grid = np.ogrid[tuple(slice(0, n) for n in spleen.shape)]
    bite = spleen & (sum((g - c) ** 2 for g, c in zip(grid, centre)) <= 9)
    content = imageio.save_nifti((spleen & ~bite).astype(np.uint8), np.asarray(ct_session.affine))
    [segment] = sdk.import_mask(sid, content, name="spleen")
    answer = sdk.hints(sid, segment.id, k=2)
    assert 1 <= len(answer["hints"]) <= 2 and answer["revision"] == segment.revision
    top = answer["hints"][0]
    box = tuple(slice(a, b + 1) for a, b in zip(top["box"]["lo"], top["box"]["hi"]))
    assert top["kind"] == "missing" and bite[box].sum() >= 0.5 * bite.sum()
    assert top["voxels"] <= 20 * bite.sum()  # an estimate of the error, not the organ
    base = ["--url", live_server, "--api-key", KEYS["alice"]]
    result = CliRunner().invoke(app, [*base, "hints", sid, str(segment.id), "--k", "1",
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["hints"][0]["centre"] == top["centre"]
    result = CliRunner().invoke(app, [*base, "hints", sid, str(segment.id)])
    assert result.exit_code == 0 and "missing" in result.output, result.output


def test_sdk_and_cli_organ_start(live_server, sdk, ct_session):  # noqa: F811
    """RefineNet's automatic start by name (SDK and CLI); an unknown organ is refused naming
    the known ones. ct_3mm is a training volume of the organ network: this checks the calls,
    the held-out accuracy is tests/api/test_refinenet_api.py's."""
    sid = ct_session.id
    reference = liver_reference(ct_session)
    segment = sdk.create_segment(sid, name="liver")
    change = sdk.organ(sid, segment.id, "liver")
    assert abs(change.changed_voxels - int(reference.sum())) < 0.3 * reference.sum()
    with pytest.raises(InvalidRequest, match="spleen"):
        sdk.organ(sid, segment.id, "brain")
    runner = CliRunner()
    base = ["--url", live_server, "--api-key", KEYS["alice"]]
    other = sdk.create_segment(sid, name="spleen")
    result = runner.invoke(app, [*base, "organ", sid, str(other.id), "spleen"])
    assert result.exit_code == 0, result.output
    assert "voxels changed" in result.output
    result = runner.invoke(app, [*base, "organ", sid, str(other.id), "brain"])
    assert result.exit_code != 0 and "kidney_left" in result.output


def test_organ_sends_its_method_params_and_base_revision():
    """`organ` builds its body with the editing tools' `_edit`: every optional field there."""

    class Sent(EditingEndpoints):
        def interact(self, sid, seg, body):
            return body

    assert Sent().organ("s", 1, "liver") == {"type": "organ", "organ": "liver", "dim": "3d"}
    assert Sent().organ("s", 1, "liver", method="refinenet", params={"threshold": 0.4},
                        base_revision=3) == {
        "type": "organ", "organ": "liver", "dim": "3d", "method": "refinenet",
        "params": {"threshold": 0.4}, "base_revision": 3}
