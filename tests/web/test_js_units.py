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
