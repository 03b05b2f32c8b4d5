"""The rewrite of OHIF's prebuilt files for the /ohif base path (medseg.ohif.patch), and the
generated app-config (medseg.api.ohif.app_config), on a small stand-in for the build."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from medseg import ohif
from medseg.api.ohif import app_config

NODE = shutil.which("node")


def test_patch_rewrites_root_relative_paths(tmp_path):
    (tmp_path / "app.bundle.1.js").write_text('x;__webpack_require__.p = "/";y')
    (tmp_path / "other.js").write_text('fetch("/not-a-public-path")')
    (tmp_path / "app.bundle.css").write_text("a{src:url(/f.woff2)} b{src:url(//cdn/x)}")
    (tmp_path / "index.html").write_text(
        '<script>window.PUBLIC_URL="/"</script><link href="/app.css">'
        '<script src="/app.bundle.1.js"></script><a href="//cdn.example/x">')
    assert ohif.patch(tmp_path) == 3
    assert (tmp_path / "app.bundle.1.js").read_text() == 'x;__webpack_require__.p = "/ohif/";y'
    assert (tmp_path / "other.js").read_text() == 'fetch("/not-a-public-path")'
    assert (tmp_path / "app.bundle.css").read_text() == \
        "a{src:url(/ohif/f.woff2)} b{src:url(//cdn/x)}"
    html = (tmp_path / "index.html").read_text()
    assert 'window.PUBLIC_URL="/ohif/"' in html and 'href="/ohif/app.css"' in html
    assert 'src="/ohif/app.bundle.1.js"' in html and 'href="//cdn.example/x"' in html


@pytest.mark.skipif(NODE is None, reason="`node` is not on PATH")
def test_app_config_is_a_script_that_sets_the_data_source(tmp_path):
    script = app_config("main", "/ohif/medseg/extension.js", "/ohif/medseg/mode.js")
    runner = tmp_path / "run.js"
    runner.write_text("globalThis.window = {}; globalThis.location = {origin: 'http://h:1'};\n"
                      + script + "\nconsole.log(JSON.stringify(window.config));\n")
    config = json.loads(subprocess.run([str(NODE), str(runner)], capture_output=True, text=True,
                                       check=True).stdout)
    source = config["dataSources"][0]["configuration"]
    assert source["wadoRoot"] == source["qidoRoot"] == "http://h:1/ohif/dicom-web/main"
    assert config["extensions"] == ["/ohif/medseg/extension.js"]
    assert config["modes"] == ["/ohif/medseg/mode.js"]
    assert config["routerBasename"] == "/ohif" and config["medseg"]["pacs"] == "main"
