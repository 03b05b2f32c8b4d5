"""`medseg` commands for editing an existing mask (issue 14; cli.py registers them):
`import-mask`, `copy-segment`, `hints`, the manual tools `paint`, `erase`, `fill`, the editing
tools `select`, `brush`, `adjust`, and `organ` (RefineNet's automatic start). Tools work on one
slice (--axis/--index, default the z slice of the first point) unless --3d."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from medseg_client.cli_shared import (
    Axis,
    Background,
    Method,
    _client,
    _ints,
    _out,
    _points,
    _zyx,
)
from medseg_client.models import Change

Radius = Annotated[float, typer.Option(help="mm around the stroke")]
ThreeD = Annotated[bool, typer.Option(
    "--3d", help="the whole volume (a ball for paint and erase; the whole mask for adjust)")]
SliceIndex = Annotated[int | None, typer.Option(help="slice index (default: the first point's)")]


def register(app: typer.Typer) -> None:
    app.command("import-mask")(import_mask)
    app.command("copy-segment")(copy_segment)
    app.command("hints")(hints)
    for name, command in (("paint", paint), ("erase", erase), ("fill", fill),
                          ("select", select), ("brush", brush), ("organ", organ)):
        app.command(name)(command)
    # A shrink is a negative AMOUNT: without this, `adjust SID SEG -0.1` is read as an unknown
    # option "-0" and refused. An unknown option still fails (as an extra argument).
    app.command("adjust", context_settings={"ignore_unknown_options": True})(adjust)


def _show(change: Change) -> None:
    total = sum(change.timings_ms.values()) if change.timings_ms else 0.0
    _out().print(f"segment {change.segment_id}: revision [bold]{change.revision}[/bold] "
                 f"(from {change.previous_revision}), {change.changed_voxels} voxels changed, "
                 f"{total:.1f} ms server time")


def _where(three_d: bool, axis: str, index: int | None, first: list[int] | None
           ) -> dict[str, Any]:
    if three_d:
        return {"dim": "3d"}
    if axis not in ("z", "y", "x"):
        raise typer.BadParameter(f"--axis must be z, y or x, got {axis!r}")
    if index is None:
        if first is None:
            raise typer.BadParameter("give --index (the slice to edit)")
        index = first["zyx".index(axis)]
    return {"dim": "2d", "plane": (axis, index)}


def _path(points: str) -> list[list[int]]:
    path = _points(points)
    if not path:
        raise typer.BadParameter("--points needs at least one z,y,x")
    return path


def import_mask(ctx: typer.Context, sid: str,
                path: Annotated[Path, typer.Argument(help="NIfTI / NRRD / PNG mask on the "
                                                          "image's grid")],
                name: Annotated[str | None, typer.Option(help="segment name")] = None,
                labels: Annotated[str | None, typer.Option(help="label values to import, "
                                                                "e.g. 1,5")] = None,
                binary: Annotated[bool, typer.Option(help="every voxel > 0 is foreground, one "
                                                          "segment")] = False) -> None:
    """Import a mask file as new segments (one per label value of a label map)."""
    values = _ints(labels, "--labels") if labels else None
    with _client(ctx) as c:
        segments = c.import_mask(sid, path.read_bytes(), filename=path.name, name=name,
                                 labels=values, binary=binary)
    for g in segments:
        _out().print(f"segment {g.id} {g.name!r} label {g.label}: {g.voxels} voxels")


def copy_segment(ctx: typer.Context, sid: str, seg: int,
                 name: Annotated[str | None, typer.Option(help="the copy's name")] = None,
                 revision: Annotated[int | None, typer.Option(help="revision to copy")] = None,
                 ) -> None:
    """A new segment starting from a copy of SEG's mask."""
    with _client(ctx) as c:
        g = c.copy_segment(sid, seg, revision=revision, name=name)
    _out().print(f"segment {g.id} {g.name!r}: {g.voxels} voxels")


def hints(ctx: typer.Context, sid: str, seg: int,
          k: Annotated[int, typer.Option(help="at most this many regions")] = 3,
          as_json: Annotated[bool, typer.Option("--json", help="print the raw answer")] = False
          ) -> None:
    """Where SEG's mask is most likely wrong: ranked regions with centre, box and size."""
    from rich.table import Table

    with _client(ctx) as c:
        answer = c.hints(sid, seg, k=k)
    if as_json:
        import json

        typer.echo(json.dumps(answer))
        return
    table = Table("rank", "kind", "centre z,y,x", "box lo..hi", "voxels", "mL", "likelihood",
                  title=f"segment {answer['segment_id']} revision {answer['revision']}: "
                        f"{len(answer['hints'])} hints ({answer['ms']:.0f} ms)")
    for h in answer["hints"]:
        table.add_row(str(h["rank"]), h["kind"], ",".join(map(str, h["centre"])),
                      f"{','.join(map(str, h['box']['lo']))}..{','.join(map(str, h['box']['hi']))}",
                      str(h["voxels"]), f"{h['volume_ml']:.2f}", f"{h['likelihood']:.2f}")
    _out().print(table)


def paint(ctx: typer.Context, sid: str, seg: int,
          points: Annotated[str, typer.Option(help='stroke "z,y,x;z,y,x;..."')],
          radius_mm: Radius = 2.0, three_d: ThreeD = False, axis: Axis = "z",
          index: SliceIndex = None) -> None:
    """Paint every voxel within --radius-mm of a stroke (no network)."""
    path = _path(points)
    with _client(ctx) as c:
        _show(c.paint(sid, seg, path, radius_mm, **_where(three_d, axis, index, path[0])))


def erase(ctx: typer.Context, sid: str, seg: int,
          points: Annotated[str, typer.Option(help='stroke "z,y,x;z,y,x;..."')],
          radius_mm: Radius = 2.0, three_d: ThreeD = False, axis: Axis = "z",
          index: SliceIndex = None) -> None:
    """Erase every voxel within --radius-mm of a stroke (no network)."""
    path = _path(points)
    with _client(ctx) as c:
        _show(c.erase(sid, seg, path, radius_mm, **_where(three_d, axis, index, path[0])))


def fill(ctx: typer.Context, sid: str, seg: int, at: Annotated[str, typer.Option(
        help="voxel z,y,x inside the closed region")], axis: Axis = "z",
        index: SliceIndex = None) -> None:
    """Flood-fill the closed 2D region of background a click lands in."""
    point = _zyx(at)
    with _client(ctx) as c:
        _show(c.fill(sid, seg, [point], plane=_where(False, axis, index, point)["plane"]))


def select(ctx: typer.Context, sid: str, seg: int,
           at: Annotated[str, typer.Option(help="voxel z,y,x in the wrong region")],
           background: Background = False, axis: Axis = "z", index: SliceIndex = None,
           method: Method = None) -> None:
    """Selection tool: fill the missed region a click lands in (--background: erase it)."""
    point = _zyx(at)
    with _client(ctx) as c:
        _show(c.select(sid, seg, [point], foreground=not background, method=method,
                       **_where(False, axis, index, point)))


def brush(ctx: typer.Context, sid: str, seg: int,
          points: Annotated[str, typer.Option(help='stroke "z,y,x;z,y,x;..."')],
          background: Background = False, axis: Axis = "z", index: SliceIndex = None,
          method: Method = None) -> None:
    """Brush tool: a stroke over a boundary error adds it (--background: removes it)."""
    path = _path(points)
    with _client(ctx) as c:
        _show(c.brush(sid, seg, path, foreground=not background, method=method,
                      **_where(False, axis, index, path[0])))


def adjust(ctx: typer.Context, sid: str, seg: int,
           amount: Annotated[float, typer.Argument(help="relative size change, e.g. 0.1 or "
                                                        "-0.1")],
           three_d: ThreeD = False, axis: Axis = "z", index: SliceIndex = None,
           method: Method = None) -> None:
    """Adjustment tool: grow (> 0) or shrink (< 0) the boundary on a slice (or --3d)."""
    with _client(ctx) as c:
        _show(c.adjust(sid, seg, amount, method=method, **_where(three_d, axis, index, None)))


def organ(ctx: typer.Context, sid: str, seg: int,
          name: Annotated[str, typer.Argument(help="organ, e.g. liver, spleen, kidney_left")],
          method: Method = None) -> None:
    """Automatic start: segment a named organ in the whole volume, no clicks (RefineNet)."""
    with _client(ctx) as c:
        _show(c.organ(sid, seg, name, method=method))
