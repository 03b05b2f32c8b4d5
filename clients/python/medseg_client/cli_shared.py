"""What every `medseg` command shares: the Typer app with its global options (`--url` /
MEDSEG_URL, `--api-key` / MEDSEG_API_KEY), the consoles, the client that turns server errors
into a red message and exit code 2, and the parsing of z,y,x arguments. The commands live in
cli.py (sessions, interactions, export, batch) and cli_jobs.py (jobs, locks)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from medseg_client.client import Client
from medseg_client.errors import MedsegError

app = typer.Typer(help="Interactive medical image segmentation (medseg service) client.",
                  no_args_is_help=True, pretty_exceptions_enable=False)

Background = Annotated[bool, typer.Option("--background", help="mark background, not foreground")]
TwoD = Annotated[bool, typer.Option("--2d", help="segment one slice (see --axis/--index)")]
# a 2D interaction: --2d for most commands, the default for points and the editing tools
Axis = Annotated[str, typer.Option(help="axis held fixed in 2D: z, y or x")]
Index = Annotated[int | None, typer.Option(help="slice index in 2D (default: first mark's)")]
Method = Annotated[str | None, typer.Option(help="segmentation method (see capabilities)")]


def _out() -> Console:
    return Console()


def _err() -> Console:
    return Console(stderr=True)


@app.callback()
def main(ctx: typer.Context,
         url: Annotated[str, typer.Option(envvar="MEDSEG_URL", help="server base URL")]
         = "http://127.0.0.1:8000",
         api_key: Annotated[str | None, typer.Option(envvar="MEDSEG_API_KEY", help="API key")]
         = None) -> None:
    ctx.obj = {"url": url, "api_key": api_key}


def _fail(message: str, code: int = 2) -> NoReturn:
    """Print ``message`` in red on stderr (unwrapped, no markup parsing) and exit with ``code``."""
    _err().print(Text(message, style="red"), soft_wrap=True)
    raise typer.Exit(code) from None


@contextmanager
def _client(ctx: typer.Context) -> Iterator[Client]:
    """A client; server errors become a red message and exit code 2, without a traceback."""
    try:
        with Client(ctx.obj["url"], ctx.obj["api_key"]) as client:
            yield client
    except MedsegError as exc:
        rid = f"  (request id {exc.request_id})" if exc.request_id else ""
        status = f"{exc.status} " if exc.status else ""
        _fail(f"error {status}{exc.code}: {exc.message}{rid}")
    except (OSError, ValueError) as exc:
        _fail(f"error: {exc}")


def _zyx(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        raise typer.BadParameter(f"expected z,y,x integers, got {text!r}") from None
    if len(values) != 3:
        raise typer.BadParameter(f"expected z,y,x (3 integers), got {text!r}")
    return values


def _points(text: str) -> list[list[int]]:
    return [_zyx(p) for p in text.split(";") if p.strip()]


def _json_params(text: str | None) -> dict[str, Any] | None:
    """--params: a JSON object of parameter overrides. Checked here, so a typo is reported as
    --params's (a bare JSON decoder message names neither the option nor what it expects)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"--params must be a JSON object such as "
                                 f"'{{\"iterations\": 10}}': {exc}") from None
    if not isinstance(value, dict):
        raise typer.BadParameter(f"--params must be a JSON object, got {text!r}")
    return value


def _ints(text: str, option: str) -> list[int]:
    """A comma-separated list of integers given to `option` (e.g. --labels 1,5)."""
    try:
        return [int(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        raise typer.BadParameter(f"{option} takes integers separated by commas (e.g. 1,5), "
                                 f"got {text!r}") from None
