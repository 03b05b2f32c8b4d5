"""Plugging in: a method is one module plus one registration line (tests/plugins/
threshold_method.py, docs/plugins.md); the registries list it, the API serves it, and a bad
plug-in stops the server from starting."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from medseg import builtin
from medseg.api.app import create_app
from medseg.errors import UnknownName
from tests.api.helpers import full_mask, new_segment, upload
from tests.conftest import KEYS
from tests.plugins import threshold_method


def test_every_registry_has_the_same_shape_and_error(plugins):
    for registry in (plugins.methods, plugins.predictors, plugins.job_kinds, plugins.models.cards):
        names = registry.names()
        assert names and registry.get(names[0]).name == names[0]
        with pytest.raises(UnknownName, match=rf"unknown {registry.kind} 'nope'; available: "):
            registry.get("nope")
    assert plugins.methods.get().name == builtin.DEFAULT_METHOD == plugins.methods.names()[0]
    assert plugins.predictors.names()[0] == builtin.DEFAULT_PREDICTOR


def test_a_method_is_one_file_and_one_line(settings, store, totalseg):
    plugins = builtin.build()
    assert "threshold" not in plugins.methods
    plugins.methods.register(threshold_method.METHOD)  # the one line

    app = create_app(settings, store, plugins)
    with TestClient(app, headers={"X-API-Key": KEYS["alice"]}) as client:
        listed = {m["name"]: m for m in client.get("/v1/capabilities").json()["methods"]}
        assert listed["threshold"]["params"] == {"tolerance": 100.0, "radius": 20}
        session = upload(client, totalseg / "ct_3mm.nii.gz")
        seg = new_segment(client, session["id"], "liver")["id"]
        url = f"/v1/sessions/{session['id']}/segments/{seg}/interactions"
        click = {"type": "click", "method": "threshold", "clicks": [{"zyx": [15, 50, 60]}],
                 "params": {"radius": 5}}
        change = client.post(url, json=click)
        assert change.status_code == 200, change.text
        mask = full_mask(client, session["id"], seg)
        assert mask[15, 50, 60] and 0 < mask.sum() <= 11 ** 3
        assert not mask[:9].any() and not mask[22:].any()  # nothing beyond the radius
        bad = client.post(url, json={**click, "params": {"radius": 0}})
        assert bad.status_code == 422 and "radius" in bad.json()["message"]


def test_plugins_load_from_settings_and_bad_ones_stop_the_start():
    plugins = builtin.build("tests.plugins.threshold_method, tests.jobs.demo_kinds")
    assert "threshold" in plugins.methods and "paint" in plugins.job_kinds
    with pytest.raises(ValueError, match="cannot be imported"):
        builtin.build("tests.plugins.nope")
    with pytest.raises(ValueError, match=r"has no register\(plugins\)"):
        builtin.build("tests.plugins")



def test_descriptions_are_for_users(plugins):
    """What /v1/capabilities shows names the method, not our issue tracker."""
    entries = [*plugins.methods, *plugins.predictors, *plugins.job_kinds]
    for entry in entries:
        assert entry.description and not re.search(r"\bissue \d", entry.description), entry.name
