"""The FastAPI application factory."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medseg import builtin
from medseg.api import docs_page, errors, limits, ohif, openapi_links, viewer
from medseg.api.compute import ChildConfig, ComputePool
from medseg.api.logging import configure as configure_logging
from medseg.api.routers import (
    archive,
    imports,
    jobs,
    models,
    pacs,
    propagation,
    segments,
    service,
    sessions,
    slices,
)
from medseg.api.settings import Settings
from medseg.plugins import Plugins
from medseg.store import Store
from medseg.store.quotas import Quotas
from medseg.usecases.metrics import REQUEST_SECONDS

log = structlog.get_logger("medseg.api")

# The methods the request metric names; any other (HTTP allows any token, and an unauthenticated
# client could send a new one per request) is counted as "other": each label value is a series
# that every API process keeps for its lifetime and every /metrics scrape returns
METRIC_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

DESCRIPTION = """Interactive medical image segmentation.

Upload an image to open a **session** (its state lives in Redis), add **segments**, and change
them with **interactions** (clicks, scribbles, boxes). Every change answers with the new
**revision** and a compact **mask delta** (`rle-xor/1`, see `docs/mask-delta-format.md`).
Voxel coordinates are `[z, y, x]` indices; shapes are `[Z, Y, X]`. Authenticate with
`X-API-Key` (or `Authorization: Bearer`).
"""


def create_app(settings: Settings | None = None, store: Store | None = None,
               plugins: Plugins | None = None) -> FastAPI:
    """The app with its settings, store and plug-ins (the built-ins plus MEDSEG_PLUGINS'
    when none are given): the one place the API process is wired."""
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.compute.start()  # warm: the first click finds its child ready
        try:
            yield
        finally:
            app.state.compute.stop()

    # FastAPI's /docs and /redoc load from a CDN (blank offline): docs_page serves /docs instead
    app = FastAPI(title="medseg", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.plugins = plugins or builtin.build(settings.plugins)
    redis_url = settings.redis_url or "redis://127.0.0.1:6379/0"
    # a store passed in keeps its own quotas and AOF rewriting (tests share one store's Redis)
    app.state.store = store or Store.connect(
        redis_url, settings.session_ttl_s, settings.cache_mb << 20,
        job_heartbeat_s=settings.job_heartbeat_s, quotas=quotas(settings),
        aof_rewrite_delay_s=settings.aof_rewrite_delay_s if settings.aof_rewrite_delay_s >= 0
        else None)
    # each child builds its own store and plug-ins from these (the plug-ins named in settings)
    child = ChildConfig(redis_url, settings.session_ttl_s, settings.cache_mb << 20,
                        settings.job_heartbeat_s, settings.plugins, settings.log_level,
                        settings.log_json, settings.engine_threads)
    builtin.configure_engine(settings.engine_threads)  # interactions computed in this process
    app.state.compute = ComputePool(app.state.store, app.state.plugins, child,
                                    settings.compute_processes, settings.request_deadline_s)
    errors.install(app)
    # pacs and archive before sessions: /v1/sessions/from-pacs and .../archived are no ids
    for router in (service.router, models.router, pacs.router, archive.router, sessions.router,
                   slices.router, segments.router, imports.router, propagation.router,
                   jobs.router):
        app.include_router(router)
    docs_page.install(app)
    viewer.mount(app, settings.clients_dir)
    ohif.mount(app, settings)
    openapi_links.install(app)
    app.add_middleware(limits.BodyLimit, settings=settings)  # inside the request middleware
    _add_request_middleware(app, settings)
    return app


def quotas(settings: Settings) -> Quotas:
    """The per-tenant quotas the settings ask for (0: no limit)."""
    return Quotas(max_sessions=settings.tenant_max_sessions or None,
                  max_bytes=(settings.tenant_max_mb << 20) or None,
                  max_jobs=settings.tenant_max_jobs or None)


def _add_request_middleware(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(RequestContext, settings=settings)


class RequestContext:
    """Outermost ASGI middleware: the request id, the claimed body size refused before a byte
    is read, the `Server-Timing` header, the request metric and log line.

    A plain ASGI class rather than `@app.middleware("http")`: Starlette runs such a middleware's
    route in a task of its own and streams the response through memory channels, ~1 ms of a
    2D click (issue 13 item 3) for what only needs to wrap `send`."""

    def __init__(self, app: ASGIApp, settings: Settings):
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        request_id = (request.headers.get("X-Request-ID") or uuid.uuid4().hex)[:64]
        request.state.request_id = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        start = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._finish(request, message, time.perf_counter() - start)
            await send(message)

        try:
            claimed = request.headers.get("content-length")
            limit, what = limits.body_limit(self.settings, request.headers.get("content-type"))
            if claimed and claimed.isascii() and claimed.isdigit() and int(claimed) > limit:
                # refuse before reading a byte of the body
                code = "image_too_large" if what == "the upload limit" else "too_large"
                response = errors.error_response(request, 413, code,
                                                 limits.too_large(claimed, limit, what))
                await response(scope, receive, send_with_headers)
            else:
                await self.app(scope, receive, send_with_headers)
        finally:
            structlog.contextvars.clear_contextvars()

    def _finish(self, request: Request, message: Message, elapsed: float) -> None:
        """The response starts: add its headers, count and log the request."""
        status = message["status"]
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        method = request.method if request.method in METRIC_METHODS else "other"
        REQUEST_SECONDS.labels(method, path, str(status)).observe(elapsed)
        headers = MutableHeaders(scope=message)
        headers["X-Request-ID"] = request.state.request_id
        headers["Server-Timing"] = f"app;dur={elapsed * 1000:.2f}"
        if self.settings.replica:  # which replica answered, behind a load balancer
            headers["X-Medseg-Replica"] = self.settings.replica
        log.info("request", method=method, route=path, status=status,
                 ms=round(elapsed * 1000, 2), tenant=getattr(request.state, "tenant", None))
