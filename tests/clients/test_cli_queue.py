"""Queue position and ETA in the SDK and the CLI, against a real API process whose jobs wait
(no job worker runs: MEDSEG_RUN_WORKER=0, and its Redis is its own)."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.store.embedded import EmbeddedRedis
from medseg_client.cli import app
from medseg_client.client import Client
from tests.clients.test_sdk import CT, liver_reference
from tests.conftest import KEYS
from tests.live import api_server


@pytest.fixture(scope="module")
def idle_server():
    with EmbeddedRedis() as url, api_server(url, MEDSEG_RUN_WORKER="0") as base:
        yield base


def test_queued_jobs_report_position_and_supersede(idle_server):
    with Client(idle_server, api_key=KEYS["alice"]) as sdk:
        session = sdk.create_session(CT)
        seg = sdk.create_segment(session.id, "liver")
        y, x = np.argwhere(liver_reference(session)[14]).mean(axis=0).round().astype(int)
        sdk.click(session.id, seg.id, [(14, int(y), int(x))], dim="2d")
        first = sdk.propagate(session.id, seg.id, axis="z", start_index=14)
        assert first.priority == "interactive" and first.queue is not None
        assert first.queue["position"] == 1 and first.queue["workers"] == 0
        assert first.queue_text() == "position 1 (0 ahead), no job worker running"
        # the same user's newer propagation of the segment supersedes the queued one
        runner = CliRunner()
        args = ["--url", idle_server, "--api-key", KEYS["alice"]]
        result = runner.invoke(app, [*args, "propagate", session.id, str(seg.id), "--start",
                                     "14", "--no-wait"])
        assert result.exit_code == 0, result.output
        newer = result.output.split("queued job ")[1].split()[0]
        older = sdk.get_job(first.id)
        assert older.state == "cancelled" and older.error["code"] == "superseded"
        assert newer in older.error["message"] and older.queue is None
        status = runner.invoke(app, [*args, "job", newer])
        assert status.exit_code == 0, status.output
        assert '"position": 1' in status.output
        assert "interactive queue: position 1 (0 ahead), no job worker running" in status.output
        cancelled = runner.invoke(app, [*args, "job-cancel", newer])
        assert "cancelled" in cancelled.output and "position" not in cancelled.output
