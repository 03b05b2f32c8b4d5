"""The `medseg` CLI against a real API process: upload/click/export, errors, batch."""

from __future__ import annotations

import csv
import json
import re

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.store.embedded import free_port
from medseg_client.cli import app, held_out_metric
from medseg_client.client import Client
from medseg_client.errors import ConnectionFailed
from tests.clients.test_sdk import CT, liver_box, liver_reference, liver_voxel
from tests.conftest import KEYS

runner = CliRunner()


@pytest.fixture
def medseg(live_server, totalseg):
    def invoke(*args: str, key: str = KEYS["alice"]):
        return runner.invoke(app, ["--url", live_server, "--api-key", key, *map(str, args)])
    return invoke


@pytest.fixture
def reference(live_server, totalseg):
    """The liver on the session grid of ct_3mm (via one SDK upload)."""
    with Client(live_server, api_key=KEYS["alice"]) as sdk:
        session = sdk.create_session(CT)
        sdk.delete_session(session.id)
    return liver_reference(session)


def _session_id(output: str) -> str:
    ids = re.findall(r"\b[0-9a-f]{32}\b", output)
    assert ids, output
    return ids[-1]


def test_upload_click_export_keeps_affine(medseg, reference, tmp_path):
    result = medseg("upload", CT, "--name", "cli-ct")
    assert result.exit_code == 0, result.output
    sid = _session_id(result.output)
    try:
        assert medseg("sessions").exit_code == 0
        result = medseg("segment-add", sid, "--name", "liver", "--label", "5")
        assert result.exit_code == 0, result.output
        seg = re.search(r"segment (\d+)", result.output).group(1)
        z, y, x = liver_voxel(reference)
        result = medseg("click", sid, seg, z, y, x)
        assert result.exit_code == 0, result.output
        assert "revision" in result.output
        first = int(re.search(r"revision (\d+)", re.sub(r"\[/?bold\]|\x1b\[[0-9;]*m", "",
                                                      result.output)).group(1))
        result = medseg("click", sid, seg, z, y, x, "--2d", "--axis", "z", "--index", z)
        assert result.exit_code == 0, result.output
        outside = np.argwhere(~reference[z])[0]  # a non-liver voxel on the same slice
        result = medseg("click", sid, seg, z, *outside, "--background", "--2d")
        assert result.exit_code == 0, result.output
        for command in ("undo", "redo", "undo", "history"):
            result = medseg(command, sid, seg)
            assert result.exit_code == 0, (command, result.output)
        result = medseg("remove-interaction", sid, seg, first)  # the 3D click, replayed without
        assert result.exit_code == 0 and "revision" in result.output, result.output
        assert medseg("remove-interaction", sid, seg, first).exit_code != 0  # removed already
        assert medseg("undo", sid, seg).exit_code == 0
        info = medseg("info", sid)
        assert info.exit_code == 0 and "liver" in info.output

        out = tmp_path / "labels.nii.gz"
        result = medseg("export", sid, "-o", out)
        assert result.exit_code == 0, result.output
        exported, source = nib.load(out), nib.load(CT)
        np.testing.assert_allclose(exported.affine, source.affine, atol=1e-3)
        assert exported.shape == source.shape
        labels = np.asarray(exported.dataobj).transpose(2, 1, 0)
        assert labels[z, y, x] == 5 and set(np.unique(labels)) == {0, 5}
    finally:
        assert medseg("delete", sid).exit_code == 0
    result = medseg("info", sid)
    assert result.exit_code == 2
    assert "not found" in result.output.lower() and "request id" in result.output
    assert "Traceback" not in result.output


def test_wrong_key_prints_error_and_exits_2(medseg):
    result = medseg("sessions", key="wrong-key")
    assert result.exit_code == 2
    assert "invalid API key" in result.output and "Traceback" not in result.output


def test_no_server_there_says_where_the_url_comes_from():
    """The server moved to another port (PORT=9000 make serve) and MEDSEG_URL still names the
    old one: the refusal says how the clients find the server."""
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = runner.invoke(app, ["sessions"], env={"MEDSEG_URL": url})
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"cannot reach {url}" in result.output and "MEDSEG_URL" in result.output
    with pytest.raises(ConnectionFailed, match="MEDSEG_URL"), Client(url) as sdk:
        sdk.health()


@pytest.mark.parametrize("args, option", [
    (["propagate", "0" * 32, "1", "--params", "{bad"], "--params"),
    (["finetune", "0" * 32, "1", "--params", "[10]"], "--params"),
    (["import-mask", "0" * 32, "mask.nii.gz", "--labels", "1,a"], "--labels"),
])
def test_a_malformed_option_is_named_before_anything_is_sent(args, option):
    """Checked before any request (nothing listens at the URL): a usage error naming the
    option, exit code 2, no traceback."""
    result = runner.invoke(app, ["--url", f"http://127.0.0.1:{free_port()}", *args])
    assert result.exit_code == 2, result.output
    assert option in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_batch_manifest(medseg, reference, totalseg, tmp_path):
    lo, hi = liver_box(reference)
    z, y, x = liver_voxel(reference)
    bad = tmp_path / "broken.nii.gz"
    bad.write_text("this is a text file, not NIfTI")
    rows = [
        {"image": str(CT), "box": ",".join(map(str, lo + hi)), "dim": "3d", "name": "liver_box"},
        {"image": "broken.nii.gz", "name": "", "dim": "3d", "box": "0,0,0,5,5,5"},
        {"image": str(CT), "points": f"{z},{y},{x}", "dim": "2d", "axis": "z", "index": str(z),
         "name": "liver_click"},
    ]
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["image", "box", "points", "dim", "axis", "index", "name"])
        writer.writeheader()
        writer.writerows(rows)
    outdir = tmp_path / "out"
    result = medseg("batch", manifest, "-o", outdir)
    assert result.exit_code == 1, result.output
    summary = json.loads((outdir / "summary.json").read_text())
    assert (summary["ok"], summary["failed"]) == (2, 1)
    by_name = {r["name"]: r for r in summary["rows"]}
    assert by_name["broken"]["status"] == "failed" and by_name["broken"]["error"]
    for name in ("liver_box", "liver_click"):
        row = by_name[name]
        assert row["status"] == "ok" and row["voxels"] > 0 and row["seconds"] >= 0
        mask = np.asarray(nib.load(outdir / f"{name}.nii.gz").dataobj).transpose(2, 1, 0) > 0
        assert mask.sum() == row["voxels"]
    box_mask = np.asarray(nib.load(outdir / "liver_box.nii.gz").dataobj).transpose(2, 1, 0) > 0
    lo_, hi_ = liver_box(box_mask)
    assert all(a >= b for a, b in zip(lo_, lo)) and all(a <= b for a, b in zip(hi_, hi))
    assert (box_mask & reference).sum() > 0.5 * reference.sum()  # on the liver, not flipped


def _failed_batch(tmp_path, rows: list[tuple[dict, str]]) -> list[dict]:
    """Run `medseg batch` on the manifest of `rows` (row, expected error) against a port no
    server listens on, into tmp_path/o; every row must fail. Returns the summary's rows."""
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps([row for row, _ in rows]))
    result = runner.invoke(app, ["--url", f"http://127.0.0.1:{free_port()}", "batch",
                                 str(manifest), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1, result.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["failed"] == len(rows)
    return summary["rows"]


def test_batch_rows_are_checked_before_upload_and_errors_name_the_column(tmp_path):
    """Every row names a missing image: each error is about the row's own mistake (found
    before the upload would have failed) and names the column; no server is needed."""
    rows = [({"image": "missing.nii.gz", "box": "1,2,3,4,5"}, "column 'box'"),
            ({"image": "missing.nii.gz", "points": "1,2,3", "dim": "4d"}, "column 'dim'"),
            ({"image": "missing.nii.gz", "points": "1,2,3", "dim": "2d", "index": "abc"},
             "column 'index'"),
            ({"image": "missing.nii.gz", "points": "1,2,3", "dim": "2d", "axis": "q"},
             "column 'axis'"),
            ({"image": "missing.nii.gz", "points": "1,2"}, "column 'points'"),
            ({"image": "missing.nii.gz"}, "needs a 'box' or 'points'"),
            ({"img": "ct.nii.gz", "box": "0,0,0,1,1,1"}, "'img'")]
    for (_, expected), got in zip(rows, _failed_batch(tmp_path, rows)):
        assert expected in got["error"] and "missing.nii.gz" not in got["error"], got


def test_batch_names_stay_in_outdir_and_never_overwrite_each_other(tmp_path):
    """A row's name is its output's file name: one with a folder in it would write outside
    OUTDIR (the manifest may come from someone else), and a name a row before already wrote
    would replace that row's mask. Both fail their row, before any upload; no server needed."""
    outside = tmp_path / "outside"
    rows = [({"image": "missing.nii.gz", "points": "1,2,3", "name": "../outside/x"}, "'name'"),
            ({"image": "missing.nii.gz", "points": "1,2,3", "name": str(outside / "y")},
             "'name'"),
            ({"image": "missing.nii.gz", "points": "1,2,3", "name": ".."}, "'name'"),
            ({"image": "missing.nii.gz", "points": "1,2,3", "name": "a\\b"}, "'name'"),
            ({"image": "missing.nii.gz", "points": "1,2,3", "name": "liver"}, "missing.nii.gz"),
            ({"image": "other.nii.gz", "points": "1,2,3", "name": "liver"}, "row 5's output")]
    for (_, expected), got in zip(rows, _failed_batch(tmp_path, rows)):
        assert expected in got["error"], got
    assert not outside.exists() and sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "summary.json"]


def test_batch_json_manifest_all_ok(medseg, reference, tmp_path):
    z, y, x = liver_voxel(reference)
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps([{"image": str(CT), "points": f"{z},{y},{x}"}]))
    result = medseg("batch", manifest, "-o", tmp_path / "o")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["ok"] == 1
    assert (tmp_path / "o" / "ct_3mm.nii.gz").exists()


def test_points_command_and_models_listing(medseg, reference):
    result = medseg("upload", CT)
    sid = _session_id(result.output)
    try:
        seg = re.search(r"segment (\d+)", medseg("segment-add", sid).output).group(1)
        z, y, x = liver_voxel(reference)
        result = medseg("points", sid, seg, f"{z},{y},{x};{z},{y + 5},{x}")
        assert result.exit_code == 2 and "at least 3 interior margin points" in result.output
        result = medseg("models")
        assert result.exit_code == 0 and "encoding" in result.output, result.output
    finally:
        medseg("delete", sid)


def test_models_show_each_cards_held_out_metric_by_name(live_server):
    """editnet, organnet and refinenet name their held-out metrics otherwise than
    dice_held_out: each row still shows one, with its name."""
    with Client(live_server, api_key=KEYS["alice"]) as sdk:
        listed = {m["name"]: m["metrics"] for m in sdk.models()["models"]}
    assert {"editnet-2d", "organnet-2d", "refinenet-2d"} <= set(listed)
    result = runner.invoke(app, ["--url", live_server, "--api-key", KEYS["alice"], "models"],
                           env={"COLUMNS": "250"})  # wide: one line per model
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line for line in result.output.splitlines()
            if len(line.split()) > 1 and line.split()[1] in listed}
    for name, metrics in listed.items():
        shown = held_out_metric(metrics)
        assert shown and shown in rows[name], (name, rows.get(name))


@pytest.mark.parametrize("metrics, shown", [
    ({"dice_seen": 0.8, "dice_held_out": 0.85491}, "Dice 0.855"),
    ({"case": "ct_dicom", "dice": {"liver": 0.94}, "mean_dice": 0.5329},
     "mean Dice 0.533 on ct_dicom"),
    ({"case": "ct_dicom", "dice_after_0_clicks": 0.8184, "dice_after_1_clicks": 0.8948,
      "dice_after_3_clicks": 0.8989}, "Dice 0.818 after 0 clicks, 0.899 after 3"),
    ({"protocol": "...", "dice_held_out_start": 0.8646, "dice_held_out_select": 0.9268,
      "changed_held_out_refuse_add": 0.13, "dice_seen_select": 0.88},
     "Dice start 0.865, select 0.927"),
    ({"protocol": "nothing measured"}, ""),
])
def test_held_out_metric_names_what_the_card_measured(metrics, shown):
    assert held_out_metric(metrics) == shown


def test_session_table_is_readable_at_80_columns(live_server):
    """The upload and the session list print the id whole and the shape, spacing and
    modality uncut in an 80-column terminal (they read "30x1…", "unkn…")."""
    def at_80(*args: str):
        result = runner.invoke(app, ["--url", live_server, "--api-key", KEYS["alice"],
                                     *map(str, args)],
                               env={"COLUMNS": "80"})
        assert result.exit_code == 0, result.output
        assert max(map(len, result.output.splitlines())) <= 80, result.output
        return result.output

    printed = at_80("upload", CT, "--name", "a long session name that has to wrap somewhere")
    sid = _session_id(printed)
    try:
        for output in (printed, at_80("sessions"), at_80("info", sid)):
            row = next(line for line in output.splitlines() if sid in line)
            assert "…" not in output, output
            assert row.split()[1:] == ["30x101x122", "3x3x3", "unknown", "0"], row
            assert "a long session name" in output
    finally:
        runner.invoke(app, ["--url", live_server, "--api-key", KEYS["alice"], "delete", sid])


def test_upload_and_info_show_what_the_server_changed(medseg, tmp_path):
    """NaN voxels are replaced on upload and reported: the SDK carries the warning and the CLI
    prints it, so a user learns it without reading JSON."""
    from tests.api.test_bad_uploads import disk_volume, nifti_bytes

    path = tmp_path / "with-nan.nii.gz"
    path.write_bytes(nifti_bytes(disk_volume()))
    result = medseg("upload", path)
    assert result.exit_code == 0, result.output
    sid = _session_id(result.output)
    try:
        printed = " ".join(result.output.split())  # rich wraps at the terminal's width
        assert re.search(r"warning: .*5 of 20480 voxels", printed), result.output
        info = medseg("info", sid)
        assert "5 of 20480 voxels" in " ".join(info.output.split()), info.output
    finally:
        medseg("delete", sid)


def test_help_names_only_flags_the_command_has():
    """`medseg points --help` said "--axis: axis held fixed for --2d", but points is 2D by
    default and has --3d, not --2d: every flag an option's help names must exist."""
    import re

    import typer

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    for name in ("click", "box", "scribble", "points", "paint", "adjust"):
        params = commands[name].params
        offered = {flag for p in params for flag in p.opts}
        for p in params:
            for named in re.findall(r"(?<![\w-])(--[a-z0-9][\w-]*)", getattr(p, "help", "") or ""):
                assert named in offered, (name, p.name, named, sorted(offered))
