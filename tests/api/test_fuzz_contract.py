"""Schemathesis against the live app (in-process ASGI, real Redis): for a bounded number of
generated requests per operation, and for sequences that follow the contract's OpenAPI links
(upload -> segment -> interactions, masks, history, jobs), no answer is a 5xx and every answer
matches the contract: a documented status code, content type, headers and body schema."""

from __future__ import annotations

import collections
import itertools
import os

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from medseg.api.app import create_app
from medseg.engine import imageio
from medseg.store import Store
from tests.conftest import KEYS, ROOT, make_settings

CONTRACT = ROOT / "openapi" / "openapi.json"

CHECKS = [schemathesis.checks.not_a_server_error, status_code_conformance,
          content_type_conformance, response_headers_conformance, response_schema_conformance]
AUTH = {"X-API-Key": KEYS["alice"]}

# bounded for `make test` (about a minute here): examples per operation, stateful scenarios
# and steps per scenario; MEDSEG_FUZZ_SCALE=10 runs ten times as many, for a deeper look
SCALE = int(os.environ.get("MEDSEG_FUZZ_SCALE", "1"))
EXAMPLES_PER_OPERATION = 15 * SCALE
STATEFUL_SCENARIOS = 40 * SCALE
STATEFUL_STEPS = 20


@pytest.fixture(scope="module")
def fuzz_app(redis_url):
    settings_ = make_settings(redis_url)
    return create_app(settings_, Store.connect(redis_url, settings_.session_ttl_s))


# The committed contract (tests/api/test_openapi.py keeps it equal to what the app serves).
schema = schemathesis.openapi.from_path(str(CONTRACT))


# Sequences send valid requests only (invalid ones are the per-operation test's), following
# the links from an upload, never inventing session or segment ids.
STATEFUL = schemathesis.openapi.from_path(
    str(CONTRACT), config=schemathesis.Config.from_dict({"generation": {"mode": "positive"}}))
UPLOAD_ROOT = "RANDOM__POST_v1_sessions"


def _transport(app) -> dict:
    return {"app": app, "base_url": "http://testserver", "headers": AUTH}


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_its_contract(case, fuzz_app):
    case.call_and_validate(checks=CHECKS, **_transport(fuzz_app))


@schema.parametrize()
@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_operation_documents_its_refusal_without_a_valid_key(case, fuzz_app):
    case.call_and_validate(checks=CHECKS, **{**_transport(fuzz_app),
                                             "headers": {"X-API-Key": "not-a-key"}})


def _images():
    """Small real images the stateful run uploads to open its sessions: a 3D NIfTI and a 2D
    PNG (random bytes, as the per-operation test sends, never open one)."""
    rng = np.random.default_rng(0)
    volume = rng.normal(100, 20, size=(6, 24, 28)).astype(np.float32)
    volume[2:5, 8:16, 9:19] += 200
    nifti = imageio.save_nifti(volume, np.diag([1.0, 1.0, 2.0, 1.0]))
    plane = np.zeros((32, 40), np.uint8)
    plane[8:24, 10:30] = 200
    return [("ct.nii.gz", nifti), ("photo.png", imageio.save_png(plane))]


# Every uploaded image holds voxel [z, y, x] for z < 1, y < 24, x < 28 (the 2D one is 1 x 32 x 40)
INSIDE = (1, 24, 28)
INSIDE_AXES = ("z", "y", "x")


def _into_images(body: dict) -> None:
    """Fold the generated coordinates of an interaction into the images, so that interactions
    get past the bounds check and reach the methods (out-of-range ones are the per-operation
    test's)."""
    def fold(zyx):  # JSON integers may come as 7.0
        if isinstance(zyx, list) and len(zyx) == 3 and all(_whole(v) for v in zyx):
            zyx[:] = [int(v) % n for v, n in zip(zyx, INSIDE)]

    for click in body.get("clicks") or []:
        if isinstance(click, dict):
            fold(click.get("zyx"))
    for scribble in body.get("scribbles") or []:
        if isinstance(scribble, dict):
            for point in scribble.get("path") or []:
                fold(point)
    for point in body.get("points") or []:
        fold(point)
    box = body.get("box")
    if isinstance(box, dict):
        fold(box.get("lo"))
        fold(box.get("hi"))
    plane = body.get("plane")
    if isinstance(plane, dict) and _whole(plane.get("index")) and plane.get("axis") in INSIDE_AXES:
        plane["index"] = int(plane["index"]) % INSIDE[INSIDE_AXES.index(plane["axis"])]


def _whole(value) -> bool:
    return type(value) in (int, float) and float(value).is_integer()


def test_stateful_sequences_keep_the_contract(fuzz_app):
    images = itertools.cycle(_images())
    seen = collections.Counter()

    class Machine(STATEFUL.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case):
            if case.path.endswith("/interactions") and isinstance(case.body, dict):
                _into_images(case.body)
                if hash(case.id) % 2:  # half of them with the default method, as most clients
                    for key in ("method", "params", "propagate"):
                        case.body.pop(key, None)

        def get_call_kwargs(self, case):
            kwargs = _transport(fuzz_app)
            if case.method == "POST" and case.path == "/v1/sessions":
                name, content = next(images)  # replaces the generated form
                kwargs["files"] = [("files", (name, content, "application/octet-stream"))]
            return kwargs

        def after_call(self, response, case):
            seen[(case.method, case.path, response.status_code)] += 1

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    for name in Machine.root_rules - {UPLOAD_ROOT}:  # scenarios start from an upload
        setattr(Machine, name, None)
    Machine.run(settings=settings(max_examples=STATEFUL_SCENARIOS, deadline=None,
                                  stateful_step_count=STATEFUL_STEPS, derandomize=True,
                                  suppress_health_check=list(HealthCheck)))
    # the links took the sequences past the upload, into segments and what they offer
    reached = {(method, path) for method, path, status in seen if status < 300}
    assert ("POST", "/v1/sessions/{session_id}/segments") in reached, seen
    assert any(path.startswith(SEGMENT_PATH) for _, path in reached), seen


SEGMENT_PATH = "/v1/sessions/{session_id}/segments/{segment_id}"
