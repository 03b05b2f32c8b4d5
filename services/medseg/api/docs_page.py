"""`/docs` that works offline (hospital networks reach no CDN).

FastAPI's own `/docs` and `/redoc` load their JavaScript and CSS from cdn.jsdelivr.net: with no
internet the page stays blank. Here `/docs` is Swagger UI served from this server when its
assets are installed (the PyPI package `swagger-ui-bundle`, the one connexion uses), and
otherwise a plain page that lists every endpoint and links the OpenAPI document. Either way
the page names no external host. ReDoc is not served (no packaged copy of its assets).
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
# what the page needs from a Swagger UI distribution folder
SWAGGER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css")


def installed_swagger_ui() -> Path | None:
    """The folder of the `swagger-ui-bundle` package's Swagger UI, when it is installed."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    return Path(str(swagger_ui_path))


def install(app: FastAPI, swagger_dir: Path | None = None) -> None:
    """Serve `/docs` from `swagger_dir` (default: the installed package's) or, without a
    complete Swagger UI there, as a plain offline page. The app must be made with
    docs_url=None and redoc_url=None (FastAPI's pages use the CDN)."""
    folder = swagger_dir if swagger_dir is not None else installed_swagger_ui()
    if folder is not None and all((folder / name).is_file() for name in SWAGGER_FILES):
        _swagger(app, folder)
    else:
        _plain(app)


def _swagger(app: FastAPI, folder: Path) -> None:
    app.mount(ASSETS_PATH, StaticFiles(directory=folder), name="swagger-ui")
    favicon = f"{ASSETS_PATH}/favicon-32x32.png" if (folder / "favicon-32x32.png").is_file() \
        else ""  # FastAPI's default favicon is on its website

    @app.get(DOCS_PATH, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - API docs",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css", swagger_favicon_url=favicon)


def _plain(app: FastAPI) -> None:
    @app.get(DOCS_PATH, include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(plain_page(app))


def plain_page(app: FastAPI) -> str:
    """Every operation (method, path, summary) and a link to the OpenAPI document."""
    openapi_url = app.openapi_url or "/openapi.json"
    rows = []
    for path, operations in app.openapi().get("paths", {}).items():
        for method, operation in operations.items():
            rows.append(f"<tr><td><code>{html.escape(method.upper())}</code></td>"
                        f"<td><code>{html.escape(path)}</code></td>"
                        f"<td>{html.escape(operation.get('summary', ''))}</td></tr>")
    title = html.escape(f"{app.title} {app.version} - API")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em}}td{{padding:2px 8px;vertical-align:top}}</style>
</head><body><h1>{title}</h1>
<p>The interactive Swagger UI is not installed on this server (it needs the Python package
<code>swagger-ui-bundle</code>; the page never loads it from the internet). The API contract is
the OpenAPI document: <a href="{html.escape(openapi_url)}">{html.escape(openapi_url)}</a>
(open it in any OpenAPI viewer).</p>
<table><thead><tr><th>method</th><th>path</th><th>what it does</th></tr></thead><tbody>
{''.join(rows)}
</tbody></table></body></html>
"""
