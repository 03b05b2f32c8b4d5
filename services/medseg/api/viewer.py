"""Serve the web viewer (clients/web) at /ui and its mask decoder (clients/js) at /ui/lib."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

VIEWER_PATH = "/ui"


class _Revalidated(StaticFiles):
    """Static files the browser must revalidate (ETag -> 304), so an updated viewer is never
    mixed with cached modules of an older one."""

    async def get_response(self, path: str, scope: Scope):
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount(app: FastAPI, clients_dir: Path) -> bool:
    """Mount the viewer when its files are present; `/` redirects to it (else to /docs)."""
    web, codec = clients_dir / "web", clients_dir / "js"
    present = (web / "index.html").is_file() and (codec / "maskcodec.js").is_file()
    if present:
        app.mount(f"{VIEWER_PATH}/lib", _Revalidated(directory=codec), name="viewer-lib")
        app.mount(VIEWER_PATH, _Revalidated(directory=web, html=True), name="viewer")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(f"{VIEWER_PATH}/" if present else "/docs")

    return present
