"""`medseg` commands for jobs (cli.py registers them on its app): `propagate`,
`finetune`, `job`, `job-wait`, `job-cancel`, `locks`, `lock`, `unlock`. Waiting shows a
progress bar (rich) fed by the job's progress; a failed or cancelled job exits with code 1."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from medseg_client.cli_shared import _client, _json_params, _out, _points
from medseg_client.client import Client
from medseg_client.models import Job

Wait = Annotated[bool, typer.Option("--wait/--no-wait", help="follow the job with a progress bar")]
_COMMANDS: list[tuple[Callable, str | None]] = []


def _command(name: str | None = None) -> Callable[[Callable], Callable]:
    def collect(fn: Callable) -> Callable:
        _COMMANDS.append((fn, name))
        return fn
    return collect


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`, in the order they are defined."""
    for fn, name in _COMMANDS:
        app.command(name)(fn)


def _describe(job: Job) -> str:
    text = f"job {job.id} ({job.kind}): {job.state}"
    if job.result_revision is not None:
        text += f", revision {job.result_revision}"
    if job.error:
        text += f" — {job.error['code']}: {job.error['message']}"
    if job.queue_text():
        text += f" ({job.priority}: {job.queue_text()})"
    return text


def follow(client: Client, job: Job) -> Job:
    """Wait for the job with a progress bar; exit code 1 unless it succeeded."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[message]}"), TimeElapsedColumn())
    with Progress(*columns, console=_out()) as progress:
        task = progress.add_task(f"{job.kind} {job.state}", total=None, message="")

        def show(current: Job) -> None:
            p = current.progress
            loss = f" loss {p['loss']:.4g}" if p.get("loss") is not None else ""
            where = current.queue_text()  # queue position and ETA while it waits or runs
            message = " ".join(filter(None, [p.get("message") or "", loss.strip(),
                                             f"[{where}]" if where else ""]))
            progress.update(task, description=f"{current.kind} {current.state}",
                            completed=p.get("step") or 0, total=p.get("total"), message=message)

        job = client.wait_job(job.id, on_progress=show)
    _out().print(_describe(job))
    if job.state == "succeeded" and job.result.get("flags"):
        slices = ", ".join(str(f["index"]) for f in job.result["flags"])
        _out().print(f"worth a second look: slices {slices}")
    if job.state != "succeeded":
        raise typer.Exit(1)
    return job


@_command()
def propagate(ctx: typer.Context, sid: str, seg: int,
              axis: Annotated[str, typer.Option(help="z, y or x")] = "z",
              start: Annotated[int | None,
                               typer.Option(help="start slice (default: largest)")] = None,
              method: Annotated[str | None, typer.Option(
                  help="propagation method (default: the server's)")] = None,
              params: Annotated[str | None, typer.Option(help="JSON parameter overrides")] = None,
              wait: Wait = True) -> None:
    """Propagate a slice's mask along an axis (a job); shows a progress bar."""
    overrides = _json_params(params)
    with _client(ctx) as c:
        job = c.propagate(sid, seg, axis=axis, start_index=start, method=method,
                          params=overrides)
        _out().print(f"queued job {job.id}")
        if wait:
            follow(c, job)


@_command()
def finetune(ctx: typer.Context, sid: str, seg: int,
             scribble: Annotated[list[str] | None, typer.Option(
                 help='"fg:z,y,x;z,y,x;..." or "bg:..." (repeat for more scribbles)')] = None,
             mode: Annotated[str | None, typer.Option(
                 help="supervised | unsupervised (default: supervised with scribbles)")] = None,
             params: Annotated[str | None, typer.Option(
                 help='JSON overrides, e.g. \'{"iterations": 10, "weighted": false}\'')] = None,
             wait: Wait = True) -> None:
    """Fine-tune BIFSeg on the segment's box result (a job); shows a progress bar with the loss."""
    marks = []
    for text in scribble or []:
        label, _, points = text.partition(":")
        if label not in ("fg", "bg") or not _points(points):
            raise typer.BadParameter(f'--scribble must be "fg:z,y,x;..." or "bg:...", got {text!r}')
        marks.append({"path": _points(points), "foreground": label == "fg"})
    overrides = _json_params(params)
    with _client(ctx) as c:
        job = c.finetune(sid, seg, marks, mode=mode, params=overrides)
        _out().print(f"queued job {job.id}")
        if wait:
            follow(c, job)


@_command("job")
def job_status(ctx: typer.Context, job_id: str) -> None:
    """Show a job's state, progress and result as JSON (with its queue position and ETA while
    it waits or runs, under "queue"), then the position and ETA in words."""
    with _client(ctx) as c:
        job = c.get_job(job_id)
        _out().print_json(json.dumps(job.raw))
        if job.queue_text():
            _out().print(f"{job.priority} queue: {job.queue_text()}")


@_command("job-wait")
def job_wait(ctx: typer.Context, job_id: str) -> None:
    """Follow a job to its end with a progress bar."""
    with _client(ctx) as c:
        follow(c, c.get_job(job_id))


@_command("job-cancel")
def job_cancel(ctx: typer.Context, job_id: str) -> None:
    """Cancel a queued or running job."""
    with _client(ctx) as c:
        _out().print(_describe(c.cancel_job(job_id)))


@_command()
def locks(ctx: typer.Context, sid: str, seg: int) -> None:
    """Show the locked slices of a segment."""
    with _client(ctx) as c:
        _out().print_json(json.dumps(c.locks(sid, seg)))


@_command()
def lock(ctx: typer.Context, sid: str, seg: int, axis: str, index: int) -> None:
    """Lock a slice: propagation never overwrites it."""
    with _client(ctx) as c:
        _out().print_json(json.dumps(c.lock(sid, seg, axis, index)))


@_command()
def unlock(ctx: typer.Context, sid: str, seg: int, axis: str, index: int) -> None:
    """Unlock a slice."""
    with _client(ctx) as c:
        _out().print_json(json.dumps(c.unlock(sid, seg, axis, index)))
