"""Serve the web viewer (clients/web) at /ui and its mask decoder (the protocol package's
maskcodec.js) at /ui/lib/maskcodec.js."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from medseg_protocol import js_codec_path

VIEWER_PATH = "/ui"
# the browser must revalidate (ETag -> 304), so an updated viewer is never mixed with cached
# modules of an older one
NO_CACHE = {"Cache-Control": "no-cache"}


class _Revalidated(StaticFiles):
    async def get_response(self, path: str, scope: Scope):
        response = await super().get_response(path, scope)
        response.headers.update(NO_CACHE)
        return response


def mount(app: FastAPI, clients_dir: Path) -> bool:
    """Mount the viewer when its files are present; `/` redirects to it (else to /docs)."""
    web, codec = clients_dir / "web", Path(str(js_codec_path()))
    present = (web / "index.html").is_file() and codec.is_file()
    if present:
        @app.get(f"{VIEWER_PATH}/lib/maskcodec.js", include_in_schema=False)
        def mask_codec() -> FileResponse:
            return FileResponse(codec, media_type="text/javascript", headers=NO_CACHE)

        app.mount(VIEWER_PATH, _Revalidated(directory=web, html=True), name="viewer")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(f"{VIEWER_PATH}/" if present else "/docs")

    return present
