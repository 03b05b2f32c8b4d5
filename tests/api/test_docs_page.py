"""`/docs` works offline: it names no external host (FastAPI's own page loads Swagger UI from
cdn.jsdelivr.net and stays blank in a hospital network), with Swagger UI served from local
assets when they are installed, and a plain page listing the endpoints when they are not."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient

from medseg.api import docs_page

ABSOLUTE = re.compile(r"""(https?:)?//[\w.-]+""")  # a URL with a host, "//cdn..." included
LOCAL_REFS = re.compile(r"""(?:src|href)=["'](/[^"']*)["']""")


def assert_offline(client: TestClient) -> str:
    answer = client.get("/docs")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    page = answer.text
    assert not ABSOLUTE.search(page), ABSOLUTE.search(page)
    for ref in LOCAL_REFS.findall(page):  # what it does load is here
        assert client.get(ref).status_code == 200, ref
    return page


def test_docs_name_no_external_host(client):
    page = assert_offline(client)
    if docs_page.installed_swagger_ui() is None:  # the plain page: endpoints and the contract
        assert 'href="/openapi.json"' in page and "swagger-ui-bundle" in page
        assert "/v1/sessions/{session_id}/export" in page and "Upload an image" in page
    assert client.get("/redoc").status_code == 404  # FastAPI's ReDoc page uses the CDN too


def test_swagger_ui_is_served_from_local_assets(tmp_path):
    (tmp_path / "swagger-ui-bundle.js").write_text("window.SwaggerUIBundle = function () {};")
    (tmp_path / "swagger-ui.css").write_text("body {}")
    app = FastAPI(docs_url=None, redoc_url=None)
    docs_page.install(app, tmp_path)
    with TestClient(app) as client:
        page = assert_offline(client)
        assert "/docs/assets/swagger-ui-bundle.js" in page and "/openapi.json" in page
        assert client.get("/docs/assets/swagger-ui.css").text == "body {}"


def test_an_incomplete_swagger_folder_gives_the_plain_page(tmp_path):
    (tmp_path / "swagger-ui.css").write_text("body {}")  # no bundle: Swagger UI cannot run
    app = FastAPI(docs_url=None, redoc_url=None)
    docs_page.install(app, tmp_path)
    with TestClient(app) as client:
        assert 'href="/openapi.json"' in assert_offline(client)
