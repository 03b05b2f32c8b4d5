"""The DICOM source of a session whose image came from a PACS or an uploaded DICOM series, in
Redis.

One hash per session, `medseg:s:{sid}:dicom` (a data key of the session: it expires and is
deleted with it): `source` (JSON: archive name (none for an upload), study / series /
frame-of-reference UIDs, the instances' SOP instance UIDs in the volume's slice order, the
content digest), `h:<k>` (slice k's header as zstd-compressed Part 10 bytes, no pixel data:
what a DICOM SEG needs to reference it), `exports` (JSON list: each DICOM SEG made from the
session, its UIDs and revisions), or, for an uploaded series that cannot be referenced,
`unavailable` (why, in words: the UIDs its files lack).

`medseg:pacs:{tenant}:{digest}` remembers the newest session that pulled a series, by a
digest of the archive name and the instance UIDs (never the UIDs themselves: no identifier
goes into a key), so a second request for the same series reuses the pulled image.
"""

from __future__ import annotations

import json
from typing import Any

import zstandard
from pydantic import BaseModel

from medseg.errors import NoDicomSource
from medseg.store.keys import PREFIX, SessionKeys, blob, fields, text
from medseg.store.records import SessionMeta
from medseg.store.sessions import SessionStore


class DicomSource(BaseModel):
    pacs: str | None  # the configured archive's name (None: not from a PACS)
    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str | None = None
    sop_class_uid: str | None = None
    sop_instance_uids: list[str]  # slice k of the volume is instance k
    digest: str  # sha256 of the archive name and the sorted instance UIDs


def _no_source(meta: SessionMeta, unavailable: str | None) -> str:
    """Why the session has no DICOM source, and what would give it one."""
    what = f"session {meta.id!r}"
    if unavailable:
        return f"{what} was uploaded as a DICOM series, but {unavailable}"
    if meta.source_format == "dicom":
        return (f"{what} was uploaded as DICOM before uploads kept their DICOM source; upload "
                "the series again for DICOM SEG")
    return (f"{what} holds a {meta.source_format} image, not a DICOM series: a DICOM SEG "
            "references the source series' instances by their UIDs (study, series, each "
            "slice's SOP instance), and this image has none (the service makes none up). "
            "Export format=nifti or nrrd instead, or upload the DICOM series (or open it from "
            "a PACS) and segment that session for DICOM SEG")


def series_key(tenant: str, digest: str) -> str:
    return f"{PREFIX}:pacs:{tenant}:{digest}"


class DicomSourceStore:
    def __init__(self, sessions: SessionStore):
        self.sessions = sessions
        self.redis = sessions.redis

    def write(self, pipe, keys: SessionKeys, source: DicomSource, headers: list[bytes]) -> None:
        """Queue the source into a MULTI (the one that makes the session visible)."""
        compressor = zstandard.ZstdCompressor(level=3)
        mapping = {f"h:{k}": compressor.compress(h) for k, h in enumerate(headers)}
        mapping["source"] = source.model_dump_json().encode()
        pipe.hset(keys.dicom, mapping=fields(mapping))

    def write_unavailable(self, pipe, keys: SessionKeys, reason: str) -> None:
        """Queue why an uploaded DICOM series has no source, for the SEG calls to say so."""
        pipe.hset(keys.dicom, "unavailable", reason)

    def source(self, meta: SessionMeta) -> DicomSource:
        raw, unavailable = self.redis.hmget(SessionKeys(meta.id).dicom,
                                            ["source", "unavailable"])
        if raw is None:
            raise NoDicomSource(_no_source(meta, text(unavailable) if unavailable else None))
        return DicomSource.model_validate_json(raw)

    def headers(self, meta: SessionMeta, count: int) -> list[bytes]:
        raw = self.redis.hmget(SessionKeys(meta.id).dicom, [f"h:{k}" for k in range(count)])
        if any(r is None for r in raw):
            raise NoDicomSource(f"session {meta.id!r} lost its DICOM headers (expired?)")
        decompressor = zstandard.ZstdDecompressor()
        return [decompressor.decompress(blob(r)) for r in raw if r is not None]

    def add_export(self, meta: SessionMeta, entry: dict[str, Any]) -> list[dict[str, Any]]:
        """Append to the session's list of DICOM SEG made from it (an entry with the same SOP
        instance UID replaces the older one: it is the same object)."""
        key = SessionKeys(meta.id).dicom
        with self.sessions.locked(meta.id):
            current = [e for e in self.exports(meta)
                       if e.get("sop_instance_uid") != entry.get("sop_instance_uid")]
            current.append(entry)
            self.redis.hset(key, "exports", json.dumps(current))
        return current

    def exports(self, meta: SessionMeta) -> list[dict[str, Any]]:
        raw = self.redis.hget(SessionKeys(meta.id).dicom, "exports")
        return json.loads(raw) if raw else []

    # -- reuse of a pulled series ------------------------------------------------------------
    def remember(self, tenant: str, digest: str, session_id: str) -> None:
        self.redis.set(series_key(tenant, digest), session_id, ex=self.sessions.ttl_s)

    def recall(self, tenant: str, digest: str) -> str | None:
        found = self.redis.get(series_key(tenant, digest))
        return text(found) if found is not None else None
