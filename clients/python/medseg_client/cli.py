"""`medseg` command line: upload images, segment with clicks/scribbles/boxes, export, batch.

Server errors print the server's message and request id in red and exit with code 2.
"""

from __future__ import annotations

import csv
import json
import re
import time
from contextlib import suppress
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box as rich_box  # (`box` is a command here)
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from rich.text import Text

from medseg_client import cli_editing, cli_jobs, cli_pacs
from medseg_client.cli_shared import (
    Axis,
    Background,
    Index,
    Method,
    TwoD,
    _client,
    _fail,
    _out,
    _points,
    _zyx,
    app,
)
from medseg_client.client import Client
from medseg_client.errors import MedsegError
from medseg_client.models import Change, Session


def _plane(two_d: bool, axis: str, index: int | None, first: list[int]) -> dict[str, Any]:
    if not two_d:
        return {"dim": "3d"}
    if axis not in ("z", "y", "x"):
        raise typer.BadParameter(f"--axis must be z, y or x, got {axis!r}")
    k = index if index is not None else first["zyx".index(axis)]
    return {"dim": "2d", "plane": (axis, k)}


def _session_table(sessions: list[Session]) -> Table:
    """Sessions, readable in an 80-column terminal: the id whole (people copy it) with the name
    folded under it, the shape never cut, no vertical rules, and no idle TTL column (it cut
    the shape and modality to "30x1…", "unkn…"; `medseg info` and `keepalive` say when a
    session expires)."""
    table = Table(Column("id / name", min_width=32, max_width=32, overflow="fold"),
                  Column("shape z,y,x", no_wrap=True), Column("spacing mm", overflow="fold"),
                  Column("modality", overflow="fold"),
                  Column("segs", justify="right", overflow="fold"),
                  box=rich_box.SIMPLE_HEAD, padding=(0, 1, 0, 0))
    for s in sessions:
        id_and_name = Text(s.id)
        if s.name:
            id_and_name.append("\n" + s.name, style="dim")
        table.add_row(id_and_name, "x".join(map(str, s.shape)),
                      "x".join(f"{v:.3g}" for v in s.spacing), s.modality, str(len(s.segments)))
    return table


def _show_warnings(session: Session) -> None:
    for warning in session.warnings:
        _out().print(f"[yellow]warning:[/yellow] {warning}")


def _show_change(change: Change) -> None:
    total = sum(change.timings_ms.values()) if change.timings_ms else 0.0
    _out().print(f"segment {change.segment_id}: revision [bold]{change.revision}[/bold] "
                 f"(from {change.previous_revision}), {change.changed_voxels} voxels changed, "
                 f"{change.timings_ms.get('total', total):.1f} ms, can_undo={change.can_undo}, "
                 f"can_redo={change.can_redo}")


@app.command()
def upload(ctx: typer.Context, paths: Annotated[list[Path], typer.Argument(
               help="image file(s), or a directory holding one DICOM series")],
           name: Annotated[str | None, typer.Option(help="session name")] = None) -> None:
    """Upload an image and open a session."""
    with _client(ctx) as c, _out().status("uploading..."):
        session = c.create_session(paths, name=name)
    _out().print(_session_table([session]))
    _show_warnings(session)
    _out().print(session.id)


@app.command()
def info(ctx: typer.Context, sid: str) -> None:
    """Show a session and its segments."""
    with _client(ctx) as c:
        session = c.get_session(sid)
    _out().print(_session_table([session]))
    if session.expires_at:
        _out().print(f"expires at {session.expires_at} if left idle")
    _show_warnings(session)
    table = Table("segment", "name", "label", "color", "revision", "voxels", "undo", "redo")
    for g in session.segments:
        table.add_row(str(g.id), g.name, str(g.label), f"[{g.color}]{g.color}[/]",
                      str(g.revision), str(g.voxels), str(g.can_undo), str(g.can_redo))
    _out().print(table)


@app.command()
def sessions(ctx: typer.Context) -> None:
    """List your live sessions."""
    with _client(ctx) as c:
        _out().print(_session_table(c.list_sessions()))


@app.command("segment-add")
def segment_add(ctx: typer.Context, sid: str, name: str | None = None, label: int | None = None,
                color: str | None = None) -> None:
    """Add a segment (empty mask); prints its id."""
    with _client(ctx) as c:
        seg = c.create_segment(sid, name=name, label=label, color=color)
    _out().print(f"segment [bold]{seg.id}[/bold] {seg.name!r} label {seg.label} {seg.color}")


@app.command()
def click(ctx: typer.Context, sid: str, seg: int, z: int, y: int, x: int,
          background: Background = False, two_d: TwoD = False, axis: Axis = "z",
          index: Index = None, method: Method = None) -> None:
    """Click at voxel Z Y X (foreground unless --background)."""
    with _client(ctx) as c:
        _show_change(c.click(sid, seg, [(z, y, x)], foreground=not background, method=method,
                             **_plane(two_d, axis, index, [z, y, x])))


@app.command()
def scribble(ctx: typer.Context, sid: str, seg: int,
             points: Annotated[str, typer.Option(help='polyline "z,y,x;z,y,x;..."')],
             background: Background = False, two_d: TwoD = False, axis: Axis = "z",
             index: Index = None, method: Method = None) -> None:
    """Draw a scribble along a polyline."""
    path = _points(points)
    if not path:
        raise typer.BadParameter("--points needs at least one z,y,x")
    with _client(ctx) as c:
        _show_change(c.scribble(sid, seg, [path], foreground=not background, method=method,
                                **_plane(two_d, axis, index, path[0])))


@app.command()
def box(ctx: typer.Context, sid: str, seg: int,
        lo: Annotated[str, typer.Option(help="inclusive corner z,y,x")],
        hi: Annotated[str, typer.Option(help="inclusive corner z,y,x")],
        two_d: TwoD = False, axis: Axis = "z", index: Index = None, method: Method = None) -> None:
    """Segment the object inside a box."""
    lo_zyx, hi_zyx = _zyx(lo), _zyx(hi)
    with _client(ctx) as c:
        _show_change(c.box(sid, seg, lo_zyx, hi_zyx, method=method,
                           **_plane(two_d, axis, index, lo_zyx)))


@app.command()
def points(ctx: typer.Context, sid: str, seg: int,
           points: Annotated[str, typer.Argument(help='interior margin points "z,y,x;z,y,x;..."')],
           three_d: Annotated[bool, typer.Option("--3d", help="3D instead of one slice")] = False,
           axis: Axis = "z", index: Index = None, method: Method = "mideepseg",
           encoding: Annotated[str | None,
                               typer.Option(help="cue encoding (picks the model)")] = None,
           ) -> None:
    """Start a segment from interior margin points (MIDeepSeg; 2D on a slice unless --3d)."""
    pts = _points(points)
    if not pts:
        raise typer.BadParameter("give at least one z,y,x")
    with _client(ctx) as c:
        _show_change(c.points(sid, seg, pts, method=method,
                              params={"encoding": encoding} if encoding else None,
                              **_plane(not three_d, axis, index, pts[0])))


@app.command()
def undo(ctx: typer.Context, sid: str, seg: int) -> None:
    """Undo the last change of a segment."""
    with _client(ctx) as c:
        _show_change(c.undo(sid, seg))


@app.command("remove-interaction")
def remove_interaction(ctx: typer.Context, sid: str, seg: int, revision: int) -> None:
    """Remove the interaction that made REVISION from the segment's history (the later ones
    are made again without it; `undo` brings it back)."""
    with _client(ctx) as c:
        _show_change(c.remove_interaction(sid, seg, revision))


@app.command()
def redo(ctx: typer.Context, sid: str, seg: int) -> None:
    """Redo the last undone change of a segment."""
    with _client(ctx) as c:
        _show_change(c.redo(sid, seg))


@app.command()
def history(ctx: typer.Context, sid: str, seg: int) -> None:
    """Every revision of a segment with the interaction that made it."""
    with _client(ctx) as c:
        hist = c.history(sid, seg)
    table = Table("revision", "parent", "interaction", "voxels", "ms", "head", "undone",
                  title=f"segment {hist['segment_id']} (head {hist['head']})")
    for r in hist["revisions"]:
        kind = r["interaction"].get("type", "") if r["interaction"] else ""
        table.add_row(str(r["revision"]), str(r["parent"] or ""), kind, str(r["voxels"]),
                      f"{sum(r['timings_ms'].values()):.1f}", "*" if r["is_head"] else "",
                      "yes" if r["undone"] else "")
    _out().print(table)


@app.command()
def export(ctx: typer.Context, sid: str,
           output: Annotated[Path, typer.Option("-o", "--output", help="file to write")],
           format: Annotated[str, typer.Option(help="nifti, nrrd, png, dicom-seg or "
                                                    "dicom-seg-labelmap")] = "nifti",
           per_segment: Annotated[bool, typer.Option(help="one mask per segment, zipped")] = False,
           ) -> None:
    """Export the label map (or per-segment masks) of a session."""
    with _client(ctx) as c:
        file = c.export(sid, format=format, per_segment=per_segment)
        file.save(output)
    _out().print(f"wrote {output} ({len(file.content)} bytes, server name {file.filename})")


@app.command()
def models(ctx: typer.Context) -> None:
    """List the trained models the server runs."""
    with _client(ctx) as c:
        listing = c.models()
    table = Table("name", "version", "dims", "encoding", "input", "provider", "held-out metric")
    for m in listing["models"]:
        table.add_row(m["name"], m["version"], str(m["dims"]), m["encoding"],
                      "x".join(map(str, m["input_size"])), m["provider"],
                      held_out_metric(m["metrics"]))
    _out().print(table)


CLICKS_METRIC = re.compile(r"dice_after_(\d+)_clicks")


def held_out_metric(metrics: dict[str, Any]) -> str:
    """A model card's accuracy on data it was not trained on, named: the cards measure it
    differently (Dice on held-out organs; mean Dice over the organs of a never-trained
    volume; Dice before and after robot clicks; Dice after each kind of edit)."""
    numbers = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    if "dice_held_out" in numbers:
        return f"Dice {numbers['dice_held_out']:.3f}"
    if "mean_dice" in numbers:
        case = metrics.get("case")
        return f"mean Dice {numbers['mean_dice']:.3f}" + (f" on {case}" if case else "")
    clicks = sorted((int(m.group(1)), v) for k, v in numbers.items()
                    if (m := CLICKS_METRIC.fullmatch(k)))
    if clicks:
        (first, start), (last, end) = clicks[0], clicks[-1]
        return f"Dice {start:.3f} after {first} clicks, {end:.3f} after {last}"
    edits = {k.removeprefix("dice_held_out_"): v for k, v in numbers.items()
             if k.startswith("dice_held_out_")}
    if edits:  # the editing network: its answer after one edit of each kind
        return "Dice " + ", ".join(f"{kind} {v:.3f}" for kind, v in edits.items())
    return ""


@app.command()
def delete(ctx: typer.Context, sid: str) -> None:
    """Delete a session and all its data."""
    with _client(ctx) as c:
        c.delete_session(sid)
    _out().print(f"deleted {sid}")


@app.command()
def keepalive(ctx: typer.Context, sid: str) -> None:
    """Keep a session alive: its idle expiry starts again."""
    with _client(ctx) as c:
        kept = c.keepalive(sid)
    _out().print(f"{sid} expires at {kept['expires_at']} if left idle"
                 + (" (archived before it expires)" if kept["archived"] else ""))


@app.command()
def archived(ctx: typer.Context) -> None:
    """List your expired sessions kept in the server's archive."""
    with _client(ctx) as c:
        _out().print_json(json.dumps(c.archived_sessions()))


@app.command()
def restore(ctx: typer.Context, sid: str) -> None:
    """Bring an archived session back (under its own id)."""
    with _client(ctx) as c:
        session = c.restore_session(sid)
    _out().print(f"restored {session.id}: {len(session.segments)} segment(s), expires at "
                 f"{session.expires_at}")


def _read_manifest(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        rows = data.get("rows", data.get("items")) if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise ValueError("a JSON manifest is a list of rows (or {\"rows\": [...]})")
        return [dict(r) for r in rows]
    return [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in
            csv.DictReader(text.splitlines())]


def _stem(image: str) -> str:
    name = Path(image.rstrip("/")).name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".zip", ".png", ".jpg", ".jpeg"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _cell_ints(row: dict[str, Any], column: str, count: int | None = None) -> list[int]:
    text = str(row[column])
    try:
        values = [int(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        values = []
    if not values or (count is not None and len(values) != count):
        shape = {1: "an integer", 6: "z0,y0,x0,z1,y1,x1 (six integers)"}.get(count or 0, "")
        raise ValueError(f"column {column!r} must be {shape}, got {text!r}")
    return values


def _cell_points(row: dict[str, Any]) -> list[list[int]]:
    try:
        points = _points(str(row["points"]))
    except typer.BadParameter:
        points = []
    if not points:
        raise ValueError(f"column 'points' must be z,y,x;z,y,x;... (integers), "
                         f"got {row['points']!r}")
    return points


def _row_request(row: dict[str, Any]) -> dict[str, Any]:
    """What one manifest row asks for, checked before anything is uploaded: a mistake names
    its column, and costs no upload."""
    image, pacs = str(row.get("image") or ""), str(row.get("pacs") or "")
    if not image and not pacs:
        raise ValueError(f"row has no 'image' (nor 'pacs', 'study' and 'series'); its columns: "
                         f"{sorted(k for k, v in row.items() if v not in (None, ''))}")
    if pacs and not (row.get("study") and row.get("series")):
        raise ValueError("a pacs row needs a study and a series UID")
    dim = str(row.get("dim") or "3d").lower()
    if dim not in ("2d", "3d"):
        raise ValueError(f"column 'dim' must be 2d or 3d, got {row['dim']!r}")
    axis = str(row.get("axis") or "z").lower()
    if axis not in ("z", "y", "x"):
        raise ValueError(f"column 'axis' must be z, y or x, got {row['axis']!r}")
    index = _cell_ints(row, "index", 1)[0] if str(row.get("index") or "").strip() else None
    push = str(row.get("push") or "").strip().lower()
    if push not in ("", "binary", "labelmap"):
        raise ValueError(f"push must be binary or labelmap, got {push!r}")
    if row.get("box"):
        box = _cell_ints(row, "box", 6)
        marks: dict[str, Any] = {"lo": box[:3], "hi": box[3:]}
        first = box[:3]
    elif row.get("points"):
        marks = {"points": _cell_points(row)}
        first = marks["points"][0]
    else:
        raise ValueError("row needs a 'box' or 'points'")
    name = str(row.get("name") or "") or (_stem(image) if image else f"series-{pacs}")
    return {"image": image, "pacs": pacs, "push": push, **marks, "name": _output_name(name),
            "plane": _plane(dim == "2d", axis, index, first)}


def _output_name(name: str) -> str:
    """The row's name as the stem of its output file in OUTDIR: one plain file name. A name
    with a folder in it ("../x", "/etc/x", "a/b") would write outside OUTDIR, so it is refused
    (a manifest may come from someone else's pipeline)."""
    if name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"column 'name' must be a plain file name (no folder), got {name!r}")
    return name


def _run_row(c: Client, row: dict[str, Any], base: Path, outdir: Path,
             taken: dict[str, int], number: int) -> dict[str, Any]:
    """One manifest row: an `image` file, or a `pacs` archive with a `study` and `series` UID
    (and optionally `push` = binary | labelmap to store the result back as a DICOM SEG).
    `taken`: the output names of the rows before (name -> row number); row `number` never
    overwrites another row's mask."""
    ask = _row_request(row)
    name, push = ask["name"], ask["push"]
    if name in taken:
        raise ValueError(f"column 'name': {name!r} is row {taken[name]}'s output already; "
                         "give each row its own name")
    taken[name] = number
    if ask["pacs"]:
        session = c.session_from_pacs(ask["pacs"], str(row["study"]), str(row["series"]),
                                      name=name)
    else:
        path = Path(ask["image"]) if Path(ask["image"]).is_absolute() else base / ask["image"]
        session = c.create_session(path, name=name)
    try:
        seg = c.create_segment(session.id, name=name)
        if "lo" in ask:
            c.box(session.id, seg.id, ask["lo"], ask["hi"], **ask["plane"])
        else:
            c.click(session.id, seg.id, ask["points"], **ask["plane"])
        voxels = c.get_segment(session.id, seg.id).voxels
        out = outdir / f"{name}.nii.gz"
        c.mask_file(session.id, seg.id, format="nifti").save(out)
        pushed: dict[str, Any] = {}
        if push:
            job = c.wait_job(c.push(session.id, form=push).id)
            if job.state != "succeeded":
                raise ValueError(f"push {job.state}: {(job.error or {}).get('message')}")
            pushed = {"stored": job.result.get("stored"),
                      "sop_instance_uid": job.result.get("sop_instance_uid")}
    finally:
        with suppress(MedsegError):  # best effort: keep the row's own error
            c.delete_session(session.id)
    return {"voxels": voxels, "output": str(out), **({"push": pushed} if push else {})}


def _error_text(exc: Exception) -> str:
    if isinstance(exc, MedsegError):
        rid = f" (request id {exc.request_id})" if exc.request_id else ""
        return f"{exc.status or ''} {exc.code}: {exc.message}{rid}".strip()
    return f"{type(exc).__name__}: {exc}"


@app.command()
def batch(ctx: typer.Context, manifest: Path,
          outdir: Annotated[Path, typer.Option("-o", "--outdir", help="output folder")]) -> None:
    """Segment every row of a CSV/JSON manifest; masks and summary.json go to OUTDIR."""
    try:
        rows = _read_manifest(manifest)
    except (OSError, ValueError) as exc:
        _fail(f"cannot read manifest {manifest}: {exc}")
    outdir.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    taken: dict[str, int] = {}  # output name -> the row that writes it
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with _client(ctx) as c, Progress(*columns, console=_out()) as progress:
        task = progress.add_task("batch", total=len(rows))
        for i, row in enumerate(rows, 1):
            label = str(row.get("name") or _stem(str(row.get("image") or f"row {i}")))
            progress.update(task, description=f"{label}")
            start = time.perf_counter()
            result: dict[str, Any] = {"row": i, "name": label, "image": row.get("image")}
            try:
                result.update(status="ok", **_run_row(c, row, manifest.parent, outdir, taken,
                                                      i))
            except Exception as exc:  # noqa: BLE001 - record the row's error and go on
                result.update(status="failed", error=_error_text(exc))
            result["seconds"] = round(time.perf_counter() - start, 3)
            results.append(result)
            progress.advance(task)
    failed = sum(r["status"] != "ok" for r in results)
    table = Table("row", "name", "status", "voxels", "seconds", "error", title="batch summary")
    for r in results:
        style = "green" if r["status"] == "ok" else "red"
        table.add_row(str(r["row"]), r["name"], f"[{style}]{r['status']}[/]",
                      str(r.get("voxels", "")), f"{r['seconds']:.2f}", r.get("error", ""))
    _out().print(table)
    summary = {"ok": len(results) - failed, "failed": failed, "rows": results}
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2))
    if failed:
        raise typer.Exit(1)


cli_jobs.register(app)
cli_pacs.register(app)
cli_editing.register(app)

if __name__ == "__main__":  # pragma: no cover
    app()
