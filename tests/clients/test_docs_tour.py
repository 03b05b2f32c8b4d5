"""The README's five-minute tour, run as written against a real API process: every command of
its bash blocks (`.venv/bin/medseg ...` through the CLI's Typer app, the `curl` click as the
same HTTP request), its Python snippet and its batch manifest, in a fresh folder; and the Dice
it quotes for the clicks of step 2. A tour step that stops working, or a quoted number that
drifts from what the methods do, fails here instead of on a new user's screen."""

from __future__ import annotations

import re
import shlex

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from medseg_client.cli import app
from medseg_client.client import Client
from tests.clients.test_sdk import liver_reference
from tests.conftest import KEYS, ROOT, SHARED_DATA

README = ROOT / "README.md"
CLIENTS_MD = ROOT / "docs" / "clients.md"
DOCS_URL = "http://127.0.0.1:8000"  # the server the README's curl lines name
CLICK_SLICE = 24  # the slice the tour clicks on, where its Dice is measured


def tour() -> str:
    text = README.read_text()
    start = text.index("## A five-minute tour")
    return text[start:text.index("\n## ", start + 1)]


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def commands(block: str) -> list[str]:
    """A bash block's commands: continuation lines and quotes over several lines joined,
    comments and blank lines dropped."""
    lines: list[str] = []
    for line in re.sub(r"\\\n\s*", " ", block).splitlines():
        if lines and lines[-1].count("'") % 2:  # inside a quoted JSON body
            lines[-1] += " " + line.strip()
        else:
            lines.append(re.sub(r"\s+#.*$", "", line).strip())
    return [line for line in lines if line and not line.startswith("#")]


def local(text: str) -> str:
    """The docs' paths to the shared data, where this run finds it (MEDSEG_SHARED_DATA)."""
    return text.replace("../shared/data", str(SHARED_DATA))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


class Tour:
    """Runs the tour's shell lines with the variables they set (CT=..., SID=$(...))."""

    def __init__(self, base_url: str, tmp_path):
        self.base_url, self.tmp_path = base_url, tmp_path
        self.env = {"MEDSEG_URL": base_url, "MEDSEG_API_KEY": KEYS["alice"]}
        self.vars: dict[str, str] = {}
        self.clicks: list[str] = []  # the step-2 click commands run, in order

    def expand(self, line: str) -> str:
        return re.sub(r"\$(\w+)", lambda m: self.vars[m.group(1)], line)

    def medseg(self, line: str) -> str:
        args = shlex.split(self.expand(line))
        assert args[0] == ".venv/bin/medseg", line
        result = CliRunner().invoke(app, args[1:], env=self.env)
        assert result.exit_code == 0, f"{line}\n{result.output}"
        return result.output

    def curl(self, line: str) -> None:
        args = shlex.split(self.expand(line))
        body = args[args.index("-d") + 1]
        url = args[-1].replace(DOCS_URL, self.base_url)
        answer = httpx.post(url, content=body, headers={"content-type": "application/json",
                                                        "X-API-Key": KEYS["alice"]})
        assert answer.status_code == 200, (line, answer.text)

    def run(self, line: str) -> None:
        assigned = re.fullmatch(r"(\w+)=\$\((.*) \| tail -n 1\)", line)
        if assigned:
            self.vars[assigned.group(1)] = self.medseg(assigned.group(2)).strip().splitlines()[-1]
        elif re.fullmatch(r"\w+=\S+", line):
            name, value = line.split("=", 1)
            self.vars[name] = local(value)
        elif line.startswith("curl "):
            self.curl(line)
        else:
            if line.split()[1:2] == ["click"]:
                self.clicks.append(line)
            self.medseg(line)


def quoted_dice() -> list[float]:
    found = re.search(r"Dice against the reference liver goes ((?:\d\.\d+,?\s*)+)",
                      tour().replace("\n", " "))
    assert found, "the tour no longer quotes the clicks' Dice"
    return [float(v) for v in re.findall(r"\d\.\d+", found.group(1))]


def test_readme_tour_runs_as_written(live_server, totalseg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the tour's outputs (labels.nii.gz, masks/) land here
    for name, value in (("MEDSEG_URL", live_server), ("MEDSEG_API_KEY", KEYS["alice"])):
        monkeypatch.setenv(name, value)
    text = tour()
    run = Tour(live_server, tmp_path)
    bash = blocks(text, "bash")
    assert len(bash) >= 5, "the tour's shell blocks moved: update this test"
    sdk = Client(live_server, api_key=KEYS["alice"])
    session = None
    measured: list[float] = []
    for block in bash:
        if "manifest.csv" in block:  # step 5 needs the manifest written first
            (tmp_path / "manifest.csv").write_text(local(blocks(text, "csv")[0]))
        for line in commands(block):
            run.run(line)
            if run.clicks and line == run.clicks[-1]:
                session = session or sdk.get_session(run.vars["SID"])
                reference = liver_reference(session)[CLICK_SLICE]
                mask = sdk.mask(session.id, 1)[CLICK_SLICE]
                measured.append(round(dice(mask, reference), 2))
    assert (tmp_path / "labels.nii.gz").stat().st_size > 0
    summary = (tmp_path / "masks" / "summary.json").read_text()
    assert '"failed": 0' in summary, summary

    # step 2's numbers, as the tour quotes them (two decimals)
    assert measured == pytest.approx(quoted_dice(), abs=0.011), measured

    # step 4: the Python snippet, as written
    [snippet] = blocks(text, "python")
    exec(compile(local(snippet), str(README), "exec"), {})  # noqa: S102 - the docs' own code
    assert (tmp_path / "labels.nii.gz").exists()
    sdk.close()


def test_clients_page_sdk_snippet_runs_as_written(live_server, totalseg, tmp_path, monkeypatch):
    """docs/clients.md's first Python block (the SDK's walk-through, with base_revision)."""
    monkeypatch.chdir(tmp_path)
    for name, value in (("MEDSEG_URL", live_server), ("MEDSEG_API_KEY", KEYS["alice"])):
        monkeypatch.setenv(name, value)
    snippet = blocks(CLIENTS_MD.read_text(), "python")[0]
    exec(compile(local(snippet), str(CLIENTS_MD), "exec"), {})  # noqa: S102 - the docs' code
    assert (tmp_path / "labels.nii.gz").stat().st_size > 0
