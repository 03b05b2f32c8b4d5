"""Sessions that outlive a coffee break: keep-alive, the tenant's archived sessions, restore.
(The archive is written by the job workers' sweeper before a session expires: store/archive.py.)
Registered before the sessions router: `/v1/sessions/archived` is not a session id."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from medseg.api.deps import SessionDep, SettingsDep, StoreDep, TenantDep
from medseg.api.presenters import expires_at, session_public
from medseg.api.schemas import (
    ArchivedSessionPublic,
    RestoreRequest,
    SessionExpiry,
    SessionPublic,
    error_responses,
)
from medseg.api.settings import Settings
from medseg.errors import ArchiveNotConfigured
from medseg.store import archive

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])


def _directory(settings: Settings):
    if settings.archive_dir is None:
        raise ArchiveNotConfigured("this server keeps no archive of expired sessions: set "
                                   "MEDSEG_ARCHIVE_DIR (API and job workers, one shared "
                                   "folder) to enable it")
    return settings.archive_dir.expanduser().resolve()


@router.get("/archived", response_model=list[ArchivedSessionPublic],
            responses=error_responses(401, 404),
            summary="The caller's expired sessions kept in the archive, newest first")
def list_archived(settings: SettingsDep, tenant: TenantDep) -> list[ArchivedSessionPublic]:
    return [ArchivedSessionPublic(**vars(a))
            for a in archive.list_archived(_directory(settings), tenant)]


@router.post("/restore", response_model=SessionPublic, responses=error_responses(401, 404, 409,
                                                                                   422, 429, 507),
             summary="Bring an archived session back (the same tenant only), under its own id")
async def restore(store: StoreDep, settings: SettingsDep, tenant: TenantDep,
                  body: RestoreRequest) -> SessionPublic:
    meta = await run_in_threadpool(archive.restore, store.sessions.redis, tenant,
                                   body.session_id, _directory(settings), store.sessions.ttl_s,
                                   store.quotas)
    return session_public(store, meta)


@router.post("/{session_id}/keepalive", response_model=SessionExpiry,
             responses=error_responses(401, 404, 422),
             summary="Keep the session alive: its idle expiry starts again (as any request on it "
                     "does)")
def keepalive(store: StoreDep, settings: SettingsDep, meta: SessionDep) -> SessionExpiry:
    ttl = max(store.sessions.ttl(meta.id), 0)  # the session dependency has just touched it
    return SessionExpiry(id=meta.id, expires_in_s=ttl, expires_at=expires_at(ttl),
                         archived=settings.archive_dir is not None)
