"""The viewer's pure modules (orientation, windowing, job watcher) under `node --test`."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import ROOT

NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="`node` is not on PATH")
def test_viewer_modules_under_node():
    result = subprocess.run([NODE, "--test", "clients/web/test/"], cwd=ROOT, check=False,
                            capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout


@pytest.mark.skipif(NODE is None, reason="`node` is not on PATH")
def test_refinenet_crop_grow_is_shown_with_the_engines_range():
    """The viewer's spec of `crop_grow` (js/paramspec.js, read by node from the module itself)
    has a unit and the range RefineNetParams accepts: its ends pass, just outside them fails."""
    import json

    from medseg.engine.refinenet_method import RefineNetParams

    script = ("import('./clients/web/js/paramspec.js')"
              ".then((m) => console.log(JSON.stringify(m.paramSpec('crop_grow'))))")
    result = subprocess.run([NODE, "--input-type=module", "-e", script], cwd=ROOT, check=True,
                            capture_output=True, text=True, timeout=60)
    spec = json.loads(result.stdout)
    assert spec and spec["unit"] and spec["hint"]
    assert RefineNetParams().crop_grow <= spec["max"]
    for inside in (spec["min"], spec["max"]):
        RefineNetParams(crop_grow=inside)
    for outside in (spec["min"] - 0.01, spec["max"] + 0.01):
        with pytest.raises(ValueError, match="crop_grow"):
            RefineNetParams(crop_grow=outside)


def viewer_param_specs() -> dict:
    """js/paramspec.js's PARAM_SPECS, read by node from the module itself."""
    import json

    script = ("import('./clients/web/js/paramspec.js')"
              ".then((m) => console.log(JSON.stringify(m.PARAM_SPECS)))")
    result = subprocess.run([NODE, "--input-type=module", "-e", script], cwd=ROOT, check=True,
                            capture_output=True, text=True, timeout=60)
    return json.loads(result.stdout)


def published_numbers() -> list[tuple[str, type | None, str, float]]:
    """(owner, its params type or None, name, default) of every number /v1/capabilities lists:
    each method's parameters, and each propagation method's with the generic ones (as
    api/routers/service.capabilities builds them)."""
    import dataclasses

    from medseg import builtin
    from medseg.engine.propagation import PropagationParams

    plugins = builtin.build()
    owners: list[tuple[str, type | None, dict]] = [
        (m.name, m.params_type, m.defaults()) for m in plugins.methods]
    owners += [(p.name, None, {**dataclasses.asdict(PropagationParams()), **p.defaults()})
               for p in plugins.predictors]
    return [(owner, params_type, name, value) for owner, params_type, values in owners
            for name, value in values.items()
            if isinstance(value, int | float) and not isinstance(value, bool)]


@pytest.mark.skipif(NODE is None, reason="`node` is not on PATH")
def test_every_published_number_has_a_unit_and_a_hint_in_the_viewer():
    """The viewer shows a number's unit ('' for none, explicitly) and meaning from paramspec.js;
    a parameter missing there is shown bare, so a new one must come with its entry."""
    specs = viewer_param_specs()
    missing = sorted({f"{owner}.{name}" for owner, _, name, _ in published_numbers()
                      if name not in specs})
    assert not missing, f"no js/paramspec.js entry for {missing}"
    for name, spec in specs.items():
        assert isinstance(spec["unit"], str) and spec["hint"].strip(), name
        assert spec["min"] < spec["max"], name


@pytest.mark.skipif(NODE is None, reason="`node` is not on PATH")
def test_the_viewer_keeps_each_method_parameter_within_what_the_method_accepts():
    """The viewer brings a number back into its spec's [min, max] (ui/params.js): both ends
    must be values every method with that parameter accepts, or the clamped request is a 422;
    the default lies inside."""
    specs = viewer_param_specs()
    for owner, params_type, name, default in published_numbers():
        spec = specs[name]
        assert spec["min"] <= default <= spec["max"], (owner, name, default, spec)
        if params_type is None:  # the propagation panel does not clamp by the spec
            continue
        for end in (spec["min"], spec["max"]):
            params_type(**{name: type(default)(end)})  # ValueError names the parameter
