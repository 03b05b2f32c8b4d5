"""API keys: hashed at rest, each belonging to a tenant."""

from __future__ import annotations

import hashlib
import hmac
import secrets

DEV_TENANT = "dev"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def tenant_for_key(key: str, key_hashes: dict[str, str]) -> str | None:
    """The tenant owning `key`, comparing digests in constant time."""
    digest = hash_key(key)
    for known, tenant in key_hashes.items():
        if hmac.compare_digest(known, digest):
            return tenant
    return None


def new_key_entry(tenant: str) -> tuple[str, str]:
    """(a fresh random key to give the client, the config entry that stores only its hash)."""
    key = "msk_" + secrets.token_urlsafe(32)
    return key, f"{tenant}:sha256:{hash_key(key)}"
