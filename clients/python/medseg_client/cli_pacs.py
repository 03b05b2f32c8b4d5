"""`medseg` commands for PACS integration (cli.py registers them): `pacs`, `from-pacs`,
`import-seg`, `push`. DICOM SEG export is `medseg export SID --format dicom-seg` (or
`dicom-seg-labelmap`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from medseg_client.cli_jobs import Wait, follow
from medseg_client.cli_shared import _client, _out

Form = Annotated[str, typer.Option(help="binary (one bit plane per segment) or labelmap "
                                        "(Supplement 243)")]


def register(app: typer.Typer) -> None:
    app.command("pacs")(pacs)
    app.command("from-pacs")(from_pacs)
    app.command("import-seg")(import_seg)
    app.command("push")(push)


def pacs(ctx: typer.Context) -> None:
    """List the PACS archives configured on the server for you."""
    with _client(ctx) as c:
        table = Table("name", "max instances")
        for entry in c.list_pacs():
            table.add_row(entry["name"], str(entry["max_instances"]))
    _out().print(table)


def from_pacs(ctx: typer.Context,
              pacs: Annotated[str, typer.Argument(help="a configured archive (medseg pacs)")],
              study_uid: Annotated[str, typer.Argument(help="StudyInstanceUID")],
              series_uid: Annotated[str, typer.Argument(help="SeriesInstanceUID")],
              name: Annotated[str | None, typer.Option(help="session name")] = None,
              reuse: Annotated[bool, typer.Option(help="reuse an earlier pull of the same "
                                                       "series")] = True) -> None:
    """Open a session on a series of a PACS (the server pulls it by DICOMweb)."""
    with _client(ctx) as c, _out().status("pulling the series..."):
        session = c.session_from_pacs(pacs, study_uid, series_uid, name=name, reuse=reuse)
    source = session.raw.get("source") or {}
    timings = ", ".join(f"{k} {v:.0f} ms" for k, v in (source.get("timings_ms") or {}).items())
    _out().print(f"{source.get('instances')} instances from {pacs}"
                 f"{' (reused)' if source.get('reused') else ''}: {timings}")
    _out().print(session.id)


def import_seg(ctx: typer.Context, sid: str,
               path: Annotated[Path, typer.Argument(help="a DICOM SEG file of the session's "
                                                         "series")]) -> None:
    """Import a DICOM SEG (binary or label map): each of its segments becomes a segment."""
    with _client(ctx) as c:
        segments = c.import_seg(sid, path.read_bytes(), filename="seg.dcm")
    for g in segments:
        _out().print(f"segment {g.id} {g.name!r}: revision {g.revision}, {g.voxels} voxels")


def push(ctx: typer.Context, sid: str, form: Form = "binary",
         pacs: Annotated[str | None, typer.Option(help="archive (default: the image's "
                                                       "own)")] = None,
         wait: Wait = True) -> None:
    """Store the segments as one DICOM SEG in the PACS (a job; a second push of the same
    revisions stores nothing new)."""
    with _client(ctx) as c:
        job = c.push(sid, form=form, pacs=pacs)
        if not wait:
            _out().print(job.id)
            return
        job = follow(c, job)
    # one line of JSON (not wrapped by the console): what scripts read
    typer.echo(json.dumps({k: job.result.get(k) for k in
                           ("stored", "already_stored", "sop_instance_uid", "timings")}))
