"""SDK and CLI for jobs against a real API process with its own worker (`medseg.main` starts
one): propagate, wait with a progress callback, follow events, cancel, locks, progress bar."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from typer.testing import CliRunner

from medseg_client.cli import app
from medseg_client.client import AsyncClient, Client
from medseg_client.errors import InvalidRequest, NotFound
from tests.clients.test_sdk import CT, liver_reference
from tests.conftest import KEYS


@pytest.fixture
def sdk(live_server):
    with Client(live_server, api_key=KEYS["alice"]) as client:
        yield client


def _liver_slice(sdk: Client):
    """A session whose liver segment holds one 2D-clicked slice (z = 14)."""
    session = sdk.create_session(CT)
    seg = sdk.create_segment(session.id, "liver")
    reference = liver_reference(session)
    y, x = np.argwhere(reference[14]).mean(axis=0).round().astype(int)
    sdk.click(session.id, seg.id, [(14, int(y), int(x))], dim="2d")
    return session, seg, reference


def test_propagate_wait_events_and_locks(sdk):
    session, seg, reference = _liver_slice(sdk)
    job = sdk.propagate(session.id, seg.id, axis="z", start_index=14)
    assert job.state in ("queued", "running") and job.kind == "propagate"
    seen = []
    done = sdk.wait_job(job.id, on_progress=seen.append, poll_s=0.05, timeout_s=60)
    assert done.state == "succeeded" and done.result_revision is not None
    assert seen[-1].state == "succeeded" and len(seen) >= 2
    mask = sdk.mask(session.id, seg.id)  # grown from one clicked slice (accuracy: tests/jobs)
    assert mask.any(axis=(1, 2)).sum() > 5
    assert 2 * (mask & reference).sum() / (mask.sum() + reference.sum()) > 0.5
    events = list(sdk.job_events(job.id))
    kinds = [e.event for e in events]
    assert kinds[0] == "state" and kinds[-1] == "end" and "slice" in kinds
    assert events[-1].data["state"] == "succeeded"
    later = list(sdk.job_events(job.id, last_event_id=events[-3].id))
    assert [e.id for e in later] == [e.id for e in events[-2:]]
    assert sdk.locks(session.id, seg.id) == {"z": [14]}
    assert sdk.lock(session.id, seg.id, "z", 3) == {"z": [3, 14]}
    assert sdk.unlock(session.id, seg.id, "z", 3) == {"z": [14]}
    assert [j.id for j in sdk.list_jobs(session.id)] == [job.id]
    assert sdk.cancel_job(job.id).state == "succeeded"  # too late: nothing changes
    with pytest.raises(NotFound):
        sdk.get_job("0" * 24)
    empty = sdk.create_segment(session.id, "empty")
    with pytest.raises(InvalidRequest):
        sdk.propagate(session.id, empty.id)  # nothing to propagate


def test_async_client_waits_and_follows(live_server, sdk):
    session, seg, _ = _liver_slice(sdk)

    async def go():
        async with AsyncClient(live_server, api_key=KEYS["alice"]) as client:
            job = await client.propagate(session.id, seg.id, start_index=14)
            done = await client.wait_job(job.id, poll_s=0.05, timeout_s=60)
            events = [e async for e in client.job_events(job.id)]
            return done, events

    done, events = asyncio.run(go())
    assert done.state == "succeeded" and events[-1].event == "end"


def test_cli_propagate_shows_progress_and_result(live_server, sdk):
    session, seg, _ = _liver_slice(sdk)
    runner = CliRunner()
    args = ["--url", live_server, "--api-key", KEYS["alice"]]
    result = runner.invoke(app, [*args, "propagate", session.id, str(seg.id), "--start", "14"])
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output and "revision" in result.output
    job_id = result.output.split("queued job ")[1].split()[0]
    status = runner.invoke(app, [*args, "job", job_id])
    assert status.exit_code == 0 and '"state": "succeeded"' in status.output
    assert runner.invoke(app, [*args, "job-wait", job_id]).exit_code == 0
    assert runner.invoke(app, [*args, "locks", session.id, str(seg.id)]).exit_code == 0
    empty = sdk.create_segment(session.id, "empty")
    failed = runner.invoke(app, [*args, "propagate", session.id, str(empty.id)])
    assert failed.exit_code == 2 and "invalid_prompt" in failed.output


def test_bifseg_box_and_finetune_from_the_sdk_and_the_cli(live_server, sdk):
    session = sdk.create_session(CT)
    seg = sdk.create_segment(session.id, "liver")
    reference = liver_reference(session)
    z = int(np.argmax(reference.sum(axis=(1, 2))))
    ys, xs = np.nonzero(reference[z])
    change = sdk.box(session.id, seg.id, (z, ys.min(), xs.min()), (z, ys.max(), xs.max()),
                     dim="2d", method="bifseg")
    assert change.delta["changed_voxels"] > 0
    centre = [z, int(ys.mean()), int(xs.mean())]
    job = sdk.finetune(session.id, seg.id, [([centre, [z, centre[1] + 3, centre[2]]], True)],
                       params={"alternations": 2, "iterations": 5})
    assert job.kind == "finetune" and job.base_revision == change.revision
    seen = []
    done = sdk.wait_job(job.id, on_progress=seen.append, poll_s=0.05, timeout_s=120)
    assert done.state == "succeeded", done.raw
    assert done.result["iterations"] == 10 and sdk.mask(session.id, seg.id)[tuple(centre)]
    runner = CliRunner()
    args = ["--url", live_server, "--api-key", KEYS["alice"]]
    result = runner.invoke(app, [*args, "finetune", session.id, str(seg.id), "--scribble",
                                 f"fg:{z},{centre[1]},{centre[2]};{z},{centre[1] + 2},{centre[2]}",
                                 "--params", '{"alternations": 1, "iterations": 4}'])
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output and "loss" in result.output
    bad = runner.invoke(app, [*args, "finetune", session.id, str(seg.id), "--scribble", "xx:1,2,3"])
    assert bad.exit_code == 2
    empty = sdk.create_segment(session.id, "no box")
    with pytest.raises(InvalidRequest):
        sdk.finetune(session.id, empty.id)  # no bifseg result on it
