"""Sessions that outlive a coffee break: the expiry index, archives of expiring sessions in a
directory (MEDSEG_ARCHIVE_DIR), their restore by the same tenant, and the sweeper's pass.

**When.** Every session has an entry in the sorted set `medseg:sessions:expiry` (score: the
epoch milliseconds its idle TTL runs out), written in the same pipeline that sets or restarts
the TTL (SessionStore._expire). A sweeper (in each job worker, `ArchiveSweeper`) asks it every
MEDSEG_ARCHIVE_SWEEP_S for sessions that expire within MEDSEG_ARCHIVE_LEAD_S and archives them
while they still exist. Why not Redis keyspace notifications: an `expired` event arrives after
the key is gone (nothing left to archive), and notifications are fire-and-forget pub/sub (a
worker restarting misses them); the sorted set is in Redis's append-only file and any worker
can sweep it. A session used again after its archive was written gets a later expiry and is
archived again when that nears (the archive records the expiry it was made for).

**What.** The session's state as Redis holds it (metadata, image chunks, segments, revisions
with their marks, mask blobs, probabilities, artifacts, DICOM source, counters), not its jobs.
No file names: the session's name (often the uploaded file's) and the load warnings are
dropped. The file is `<dir>/<tenant digest>/<session id>.msar`, mode 0600 in 0700 folders,
written atomically (a temporary file, then a rename). Format: a magic line, a 4-byte length and
a JSON header (what `list_archived` shows), then a zstd stream of length-prefixed records.

**Restore.** Only the tenant the session belongs to (its folder is named by the digest of the
tenant, and the header's tenant is checked too); the session comes back under its own id with a
fresh TTL, and the archive file is deleted (the session is live again; it is archived again
if it nears expiry again). Archives older than MEDSEG_ARCHIVE_RETENTION_DAYS are deleted by the
sweeper.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis
import structlog
import zstandard

from medseg.errors import SessionLive, SessionNotFound
from medseg.store import quotas
from medseg.store.keys import EXPIRY_INDEX, PREFIX, SessionKeys, tenant_sessions_key, text
from medseg.store.records import SessionMeta, utcnow

MAGIC = b"MEDSEG-SESSION-ARCHIVE 1\n"
SUFFIX = ".msar"
ARCHIVED_FIELD = "archived_for"  # counters field: the expiry (ms) the last archive was made for
_LOCK_S = 300  # one worker archives a session at a time

log = structlog.get_logger("medseg.archive")


def now_ms() -> int:
    return int(time.time() * 1000)


def tenant_dir(directory: Path, tenant: str) -> Path:
    """The tenant's folder: named by a digest, so no tenant name is on the disk either."""
    return directory / hashlib.sha256(tenant.encode()).hexdigest()[:32]


def archive_path(directory: Path, tenant: str, session_id: str) -> Path:
    return tenant_dir(directory, tenant) / f"{session_id}{SUFFIX}"


def _hash_keys(keys: SessionKeys) -> dict[str, str]:
    """The session's hashes, by the name they have in an archive."""
    return {"img": keys.image, "segs": keys.segments, "revs": keys.revisions,
            "blobs": keys.blobs, "prob": keys.probabilities, "ctr": keys.counters,
            "artifacts": keys.artifacts, "dicom": keys.dicom}


def _record(out: io.BufferedIOBase | zstandard.ZstdCompressionWriter, *parts: bytes) -> None:
    for part in parts:
        out.write(struct.pack(">Q", len(part)))
        out.write(part)


def _records(stream) -> Iterator[bytes]:
    while True:
        head = stream.read(8)
        if not head:
            return
        (size,) = struct.unpack(">Q", head)
        data = stream.read(size)
        if len(data) != size:
            raise ValueError("truncated archive")
        yield data


@dataclass(frozen=True)
class ArchivedSession:
    session_id: str
    archived_at: str
    expired_at: str  # when the session was due to expire as it was archived
    shape: list[int]
    modality: str
    created_at: str
    segments: int


def _private_parent(path: Path) -> None:
    for folder in (path.parent.parent, path.parent):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)


def archive(client: redis.Redis, session_id: str, directory: Path,
            expires_ms: int | None = None) -> Path | None:
    """Write the session's archive; None when the session is already gone."""
    keys = SessionKeys(session_id)
    hashes = _hash_keys(keys)
    with client.pipeline(transaction=True) as pipe:  # one consistent snapshot
        pipe.get(keys.meta)
        for key in hashes.values():
            pipe.hgetall(key)
        raw_meta, *contents = pipe.execute()
    if raw_meta is None:
        return None
    meta = SessionMeta.model_validate_json(raw_meta)
    meta.name, meta.warnings = None, []  # no file names in an archive
    expires_ms = expires_ms or now_ms()
    segments = len(contents[list(hashes).index("segs")])
    header = {"format": 1, "session": session_id, "tenant": meta.tenant,
              "archived_at": utcnow(), "expires_ms": expires_ms,
              "shape": list(meta.shape), "modality": meta.modality,
              "created_at": meta.created_at, "segments": segments}
    path = archive_path(directory, meta.tenant, session_id)
    _private_parent(path)
    temporary = path.with_name(f".{session_id}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            header_bytes = json.dumps(header).encode()
            out.write(MAGIC + struct.pack(">I", len(header_bytes)) + header_bytes)
            with zstandard.ZstdCompressor(level=3).stream_writer(out, closefd=False) as body:
                _record(body, b"meta", meta.model_dump_json().encode())
                for name, entries in zip(hashes, contents):
                    _record(body, b"hash", name.encode(), struct.pack(">Q", len(entries)))
                    for field, value in entries.items():
                        _record(body, field, value)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    client.hset(keys.counters, ARCHIVED_FIELD, expires_ms)
    return path


def _read_header(stream) -> dict:
    if stream.read(len(MAGIC)) != MAGIC:
        raise ValueError("not a medseg session archive")
    (size,) = struct.unpack(">I", stream.read(4))
    return json.loads(stream.read(size))


def list_archived(directory: Path, tenant: str) -> list[ArchivedSession]:
    """The tenant's archived sessions, newest archive first."""
    folder = tenant_dir(directory, tenant)
    found = []
    for path in folder.glob(f"*{SUFFIX}") if folder.is_dir() else []:
        try:
            with path.open("rb") as stream:
                h = _read_header(stream)
        except (OSError, ValueError):
            continue  # being written or removed right now, or not ours
        if h.get("tenant") != tenant:
            continue
        found.append(ArchivedSession(h["session"], h["archived_at"],
                                     _iso(h["expires_ms"]), h["shape"], h["modality"],
                                     h["created_at"], h["segments"]))
    return sorted(found, key=lambda a: a.archived_at, reverse=True)


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def restore(client: redis.Redis, tenant: str, session_id: str, directory: Path,
            ttl_s: int, limits: quotas.Quotas | None = None) -> SessionMeta:
    """Bring an archived session back under its own id (the tenant's own only: another
    tenant's is SessionNotFound, as a missing one); SessionLive (409) when it still lives.
    A restore is a new live session for the tenant's quotas (`limits`): TooManySessions (429)
    or TenantStorageFull (507) as an upload of the archive's size would get."""
    path = archive_path(directory, tenant, session_id)
    keys = SessionKeys(session_id)
    live = client.get(keys.meta)
    if live is not None:
        if SessionMeta.model_validate_json(live).tenant != tenant:
            # another tenant's live session reads as absent: its existence is not disclosed
            raise SessionNotFound(f"no archive of session {session_id!r} for this tenant")
        raise SessionLive(f"session {session_id!r} is live: there is nothing to restore "
                          "(an archive is made before a session expires)")
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        raise SessionNotFound(f"no archive of session {session_id!r} for this tenant") from None
    with stream:
        header = _read_header(stream)
        if header.get("tenant") != tenant or header.get("session") != session_id:
            raise SessionNotFound(f"no archive of session {session_id!r} for this tenant")
        if limits is not None:  # the compressed archive is about what its chunks take
            quotas.check_new_session(client, limits, tenant, os.fstat(stream.fileno()).st_size)
        body = zstandard.ZstdDecompressor().stream_reader(stream)
        records = _records(body)
        hashes = _hash_keys(keys)
        pipe = client.pipeline(transaction=True)
        meta_json = b""
        for tag in records:
            if tag == b"meta":
                meta_json = next(records)
            elif tag == b"hash":
                name = next(records).decode()
                (count,) = struct.unpack(">Q", next(records))
                key = hashes[name]
                pipe.delete(key)
                batch: dict = {}
                for _ in range(count):
                    field = next(records)
                    batch[field] = next(records)
                    if len(batch) >= 256:
                        pipe.hset(key, mapping=batch)
                        batch = {}
                if batch:
                    pipe.hset(key, mapping=batch)
            else:
                raise ValueError("corrupt archive")
    meta = SessionMeta.model_validate_json(meta_json)
    if meta.tenant != tenant:
        raise SessionNotFound(f"no archive of session {session_id!r} for this tenant")
    pipe.hdel(keys.counters, ARCHIVED_FIELD)
    pipe.set(keys.meta, meta_json)  # last: a session is visible only once it is complete
    pipe.sadd(tenant_sessions_key(tenant), session_id)
    for key in keys.data_keys:
        pipe.expire(key, ttl_s)
    pipe.zadd(EXPIRY_INDEX, {session_id: now_ms() + ttl_s * 1000})
    pipe.execute()
    path.unlink(missing_ok=True)  # live again: archived again when it nears expiry again
    return meta


def forget(directory: Path | None, tenant: str, session_id: str) -> None:
    """A deleted session's archive goes too (deleted means gone)."""
    if directory is not None:
        archive_path(directory, tenant, session_id).unlink(missing_ok=True)


@dataclass
class SweepResult:
    archived: list[str]
    forgotten: int  # expired sessions dropped from the index
    pruned: int  # archives past their retention, deleted


def sweep(client: redis.Redis, directory: Path, lead_s: float, retention_s: float,
          at_ms: int | None = None) -> SweepResult:
    """One pass: archive every session that expires within `lead_s` (once per expiry it is
    due at), drop expired ones from the index, delete archives older than `retention_s`."""
    at_ms = now_ms() if at_ms is None else at_ms
    due: list = client.zrangebyscore(EXPIRY_INDEX, "-inf", at_ms + int(lead_s * 1000),
                                     withscores=True)
    archived, forgotten = [], 0
    for member, score in due:  # (member, score) pairs: withscores=True
        session_id, expires_ms = text(member), int(score)
        keys = SessionKeys(session_id)
        with client.pipeline(transaction=False) as pipe:
            pipe.exists(keys.meta)
            pipe.hget(keys.counters, ARCHIVED_FIELD)
            exists, done_for = pipe.execute()
        if not exists:
            # expired (or deleted): forget it unless it was touched again meanwhile
            if expires_ms <= at_ms:
                client.zrem(EXPIRY_INDEX, session_id)
                forgotten += 1
            continue
        if done_for is not None and int(done_for) >= expires_ms:
            continue  # archived for this expiry already
        lock = f"{PREFIX}:archive:lock:{session_id}"
        if not client.set(lock, os.getpid(), nx=True, ex=_LOCK_S):
            continue  # another worker is on it
        try:
            if archive(client, session_id, directory, expires_ms) is not None:
                archived.append(session_id)
                log.info("session_archived", session=session_id)
        finally:
            client.delete(lock)
    pruned = 0
    cutoff = time.time() - retention_s
    for path in directory.glob(f"*/*{SUFFIX}") if directory.is_dir() else []:
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                pruned += 1
    return SweepResult(archived, forgotten, pruned)


class ArchiveSweeper:
    """The worker's background sweeper: `sweep` every `interval_s` on a daemon thread."""

    def __init__(self, client: redis.Redis, directory: Path, lead_s: float, retention_s: float,
                 interval_s: float):
        self.client, self.directory = client, directory
        self.lead_s, self.retention_s, self.interval_s = lead_s, retention_s, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="medseg-archive", daemon=True)

    def __enter__(self) -> ArchiveSweeper:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            try:
                sweep(self.client, self.directory, self.lead_s, self.retention_s)
            except (redis.RedisError, OSError) as exc:  # the next pass may succeed
                log.warning("archive_sweep_failed", error=type(exc).__name__)
            if self._stop.wait(self.interval_s):
                return
