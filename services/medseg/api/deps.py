"""FastAPI dependencies as Annotated aliases: the store, the caller's tenant, the session."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Path, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from medseg.api.auth import DEV_TENANT, tenant_for_key
from medseg.api.compute import ComputePool
from medseg.api.schemas import SESSION_ID_PATTERN
from medseg.api.settings import Settings
from medseg.errors import InvalidPrompt
from medseg.plugins import Plugins
from medseg.store import Store
from medseg.store.records import SessionMeta

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                               description="API key (or send it as `Authorization: Bearer <key>`)")
_bearer = HTTPBearer(auto_error=False)


# The trivial dependencies are `async def`: FastAPI runs a plain `def` dependency in its thread
# pool, one hand-over to a thread and back per dependency and request (~0.1 ms each on a busy
# host, six of them in a click: issue 13 item 3). get_session reads Redis: it stays `def`.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_store(request: Request) -> Store:
    return request.app.state.store


async def get_plugins(request: Request) -> Plugins:
    return request.app.state.plugins


async def get_compute(request: Request) -> ComputePool:
    return request.app.state.compute


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
PluginsDep = Annotated[Plugins, Depends(get_plugins)]
ComputeDep = Annotated[ComputePool, Depends(get_compute)]


async def get_tenant(settings: SettingsDep, request: Request,
               api_key: Annotated[str | None, Depends(_api_key_header)] = None,
               bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
               ) -> str:
    key = api_key or (bearer.credentials if bearer else None)
    if not settings.key_hashes:  # dev mode, validated at start-up to bind to loopback only
        tenant = DEV_TENANT
    elif key is None:
        raise HTTPException(401, "missing API key: send X-API-Key or Authorization: Bearer",
                            headers={"WWW-Authenticate": "Bearer"})
    else:
        found = tenant_for_key(key, settings.key_hashes)
        if found is None:
            raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
        tenant = found
    request.state.tenant = tenant
    return tenant


TenantDep = Annotated[str, Depends(get_tenant)]


def get_session(store: StoreDep, tenant: TenantDep,
                session_id: Annotated[str, Path(pattern=SESSION_ID_PATTERN)]) -> SessionMeta:
    return store.sessions.get(session_id, tenant)


SessionDep = Annotated[SessionMeta, Depends(get_session)]


# What if_match accepts, in the contract: a revision of up to 16 digits, quoted or not, maybe
# weak (W/"12"); or "*", "" or nothing (no condition)
IF_MATCH_PATTERN = r'^[ \t]*(\*|(W/)?"*[0-9]{0,16}"*)[ \t]*$'


async def if_match(if_match: Annotated[str | None, Header(
        description='revision, e.g. "12"; optional (absent, empty or * : no condition)',
        pattern=IF_MATCH_PATTERN)] = None,
             ) -> int | None:
    # an empty header (or "") is what many clients send for "no condition": the header is
    # optional in the contract, so empty reads as absent rather than as a bad revision
    if if_match is None or if_match.strip() in ("", "*", '""'):
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    # ASCII digits only ("١٢".isdigit() is true), and no more than a revision can have
    if not (value.isascii() and value.isdigit()) or len(value) > 16:
        raise InvalidPrompt('If-Match must be a revision number like "12"')
    return int(value)


IfMatchDep = Annotated[int | None, Depends(if_match)]
