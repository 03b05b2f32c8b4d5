"""The PACS a server may talk to, configured on the server per tenant (never sent by a client).

`MEDSEG_PACS` holds a JSON object, or `MEDSEG_PACS_FILE` names a JSON file, of the form

    {"main": {"url": "https://pacs.example/dicom-web",
              "auth": {"type": "basic", "username": "medseg", "password": "..."},
              "tenants": ["radiology"], "timeout_s": 60}}

`auth` is `{"type": "basic", "username", "password"}`, `{"type": "bearer", "token"}` or
absent (no authentication). `tenants` lists who may use the archive (`["*"]`: every tenant).
Secrets are `SecretStr`: their repr, the settings' repr and every message show `**********`;
they are never logged, never echoed, never written to Redis or job payloads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from medseg.errors import UnknownName

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class BasicAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["basic"]
    username: str
    password: SecretStr


class BearerAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["bearer"]
    token: SecretStr


class PacsEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=NAME_PATTERN)
    url: str = Field(pattern=r"^https?://", description="the DICOMweb root (QIDO/WADO/STOW)")
    auth: Annotated[BasicAuth | BearerAuth, Field(discriminator="type")] | None = None
    tenants: list[str] = Field(min_length=1)
    timeout_s: float = Field(60.0, gt=0, le=3600)
    # a series with more instances is refused before anything is retrieved
    max_instances: int = Field(3000, ge=1, le=100_000)

    def allows(self, tenant: str) -> bool:
        return "*" in self.tenants or tenant in self.tenants


class PacsConfig:
    """The configured archives by name."""

    def __init__(self, endpoints: list[PacsEndpoint] | None = None):
        self.endpoints = {e.name: e for e in endpoints or []}

    def for_tenant(self, tenant: str) -> list[PacsEndpoint]:
        return [e for _, e in sorted(self.endpoints.items()) if e.allows(tenant)]

    def get(self, name: str, tenant: str) -> PacsEndpoint:
        """UnknownName (422) when no archive of that name is configured for the tenant (an
        archive of another tenant reads as absent: its existence is not disclosed)."""
        endpoint = self.endpoints.get(name)
        if endpoint is None or not endpoint.allows(tenant):
            names = [e.name for e in self.for_tenant(tenant)]
            raise UnknownName(f"no PACS named {name!r} is configured for this tenant; "
                              f"available: {names or 'none (set MEDSEG_PACS on the server)'}")
        return endpoint


def parse(text: str = "", file: Path | None = None) -> PacsConfig:
    """ValueError (a configuration error: the process does not start) naming the problem,
    never a secret."""
    raw: dict = {}
    for source, content in (("MEDSEG_PACS", text),
                            ("MEDSEG_PACS_FILE", file.read_text() if file else "")):
        if not content.strip():
            continue
        try:
            loaded = json.loads(content)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source} is not valid JSON (line {exc.lineno})") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"{source} must be a JSON object: PACS name -> settings")
        raw.update(loaded)
    endpoints = []
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise ValueError(f"PACS {name!r}: settings must be a JSON object")
        try:
            endpoints.append(PacsEndpoint.model_validate({**entry, "name": name}))
        except ValidationError as exc:
            # only locations and messages: pydantic's input echo could show a password
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                 for e in exc.errors()[:5])
            raise ValueError(f"PACS {name!r} is misconfigured: {problems}") from None
    return PacsConfig(endpoints)


class PacsSettings(BaseSettings):
    """The PACS settings as a job worker reads them (the API's Settings has the same two)."""

    model_config = SettingsConfigDict(env_prefix="MEDSEG_", extra="ignore")
    pacs: str = ""
    pacs_file: Path | None = None

    def config(self) -> PacsConfig:
        return parse(self.pacs, self.pacs_file)
