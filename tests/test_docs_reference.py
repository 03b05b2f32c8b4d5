"""The reference pages name everything a user can call: every `medseg` command and every SDK
method in docs/clients.md, every error code the API answers in docs/api.md. A command, method
or error added without its line in the docs fails here (the tour found eight CLI commands and
ten SDK methods missing from clients.md, and `unknown_name` from api.md's error table)."""

from __future__ import annotations

import inspect
import re

import typer

from medseg import errors as domain
from medseg_client import AsyncClient, Client
from medseg_client.cli import app
from tests.conftest import ROOT

CLIENTS_MD = (ROOT / "docs" / "clients.md").read_text()
API_MD = (ROOT / "docs" / "api.md").read_text()

# Base classes the API never answers with as such: a subclass names the actual problem.
ABSTRACT_ERRORS = {domain.MedsegError, domain.QuotaExceeded}


def cli_commands() -> list[str]:
    group = typer.main.get_command(app)
    return sorted(group.commands)  # type: ignore[attr-defined]


def public_methods(cls: type) -> list[str]:
    return sorted(name for name, _ in inspect.getmembers(cls, callable)
                  if not name.startswith("_"))


def error_codes() -> list[str]:
    def subclasses(cls: type) -> list[type]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]
    return sorted({cls.code for cls in subclasses(domain.MedsegError)
                   if cls not in ABSTRACT_ERRORS})


def cli_table() -> str:
    start = CLIENTS_MD.index("| command | what it does |")
    return CLIENTS_MD[start:CLIENTS_MD.index("\n\n", start)]


def errors_table() -> str:
    start = API_MD.index("## Errors")
    return API_MD[start:API_MD.index("\n## ", start + 1)]


def test_every_cli_command_is_in_the_clients_page():
    table = cli_table()
    missing = [name for name in cli_commands()
               if not re.search(rf"(`|\\\|){re.escape(name)}( |`|\\\|)", table)]
    assert not missing, f"docs/clients.md's command table lacks {missing}"


def test_every_sdk_method_is_in_the_clients_page():
    for cls in (Client, AsyncClient):
        missing = [name for name in public_methods(cls)
                   if not re.search(rf"[`.]{name}\(", CLIENTS_MD)]
        assert not missing, f"docs/clients.md does not name {cls.__name__}.{missing}"


def test_every_error_code_is_in_the_api_page():
    table = errors_table()
    missing = [code for code in error_codes() if f"`{code}`" not in table]
    assert not missing, f"docs/api.md's error table lacks {missing}"
