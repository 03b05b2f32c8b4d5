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
