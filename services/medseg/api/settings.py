"""Service settings from the environment (pydantic-settings). The table is in docs/api.md."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from medseg.pacs.config import PacsConfig
from medseg.pacs.config import parse as parse_pacs

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDSEG_", extra="ignore")

    # Redis: when unset, `medseg.main` starts an embedded redis-server on a free local port.
    redis_url: str | None = Field(None,
                                  validation_alias=AliasChoices("MEDSEG_REDIS_URL", "REDIS_URL"))
    host: str = Field("127.0.0.1", validation_alias=AliasChoices("MEDSEG_HOST", "HOST"))
    port: int = Field(8000, validation_alias=AliasChoices("MEDSEG_PORT", "PORT"))
    # this server's own state (the embedded Redis's append-only file in <dir>/redis); unset:
    # $XDG_STATE_HOME/medseg/<port> (see instance_dir). One folder serves one server at a time.
    data_dir: Path | None = None
    redis_maxmemory_mb: int = Field(2048, ge=16)  # embedded Redis: full -> 507, nothing evicted
    # rewrite the append-only file this long after a session is deleted (its data then leaves
    # the disk); negative: never
    aof_rewrite_delay_s: float = 5.0

    session_ttl_s: int = 2 * 3600  # idle time after which a session and all its keys expire
    # archive of expiring sessions (store/archive.py; the job workers write it, the API reads
    # it for restores): unset, nothing is archived and an expired session is gone
    archive_dir: Path | None = None
    archive_retention_days: float = Field(30.0, gt=0)  # archives older than this are deleted
    max_upload_bytes: int = 1 << 30
    max_voxels: int = 512 * 512 * 1024
    max_uncompressed_bytes: int = 4 << 30
    # a compressed upload may decode to at most this many times its size, beyond a free
    # allowance (decompression bombs: a 500 KB file must not cost gigabytes of memory)
    max_expansion_ratio: int = Field(100, ge=1)
    expansion_allowance_mb: int = Field(128, ge=0)
    max_marks: int = 100_000  # voxels of clicks + rasterised scribbles per segment
    # any other body than an upload (JSON); the largest the schemas admit is under 1 MiB
    max_request_bytes: int = 2 << 20
    # per-tenant quotas (429 / 507 with Retry-After); 0: no limit
    tenant_max_sessions: int = Field(100, ge=0)  # live sessions
    tenant_max_mb: int = Field(2048, ge=0)  # stored bytes: compressed image + mask chunks
    tenant_max_jobs: int = Field(20, ge=0)  # queued or running jobs
    # job event streams a tenant may follow at once, per API process: each holds a connection
    # and a blocking read on Redis, which has a bounded number of clients for every tenant
    tenant_max_streams: int = Field(32, ge=0)
    cache_mb: int = 512  # in-process cache of decoded image and mask chunks
    # Interactions run in this many child processes per API process, each stopped (killed) when
    # it computes longer than the deadline (504 deadline_exceeded, nothing applied). 0 runs them
    # in the API process itself, without a deadline (tests, debugging).
    compute_processes: int = Field(2, ge=0, le=64)
    request_deadline_s: float = Field(60.0, gt=0, le=3600)
    # threads a compute process overlaps a slicewise first click's independent parts on (its
    # two propagation directions and geodesic cue, engine/slicewise_method.py): ~40 % faster
    # on idle cores, not under load (docs/benchmarks.md); 0: in order
    engine_threads: int = Field(2, ge=0, le=16)
    job_heartbeat_s: float = 10.0  # a running job whose worker is silent this long has failed
    run_worker: bool = True  # `medseg-server` starts one job worker process beside the API
    # comma-separated modules whose register(plugins) adds methods, predictors or job kinds
    # (the worker reads the same variable: both processes must serve the same set)
    plugins: str = ""

    # Auth: "tenant:sha256:<hex>" entries, comma-separated, and/or a file with one per line.
    # Keys are never configured in plain text; `medseg-server hash-key` prints an entry.
    api_keys: str = ""
    api_keys_file: Path | None = None
    # No keys at all is allowed only when this is switched on, and then only on loopback.
    dev_mode: bool = False

    # The repository's clients/ folder: the viewer (web/) is served at /ui and the mask decoder
    # (js/) at /ui/lib; nothing is served when web/ is absent (a wheel without the clients).
    clients_dir: Path = Path(__file__).resolve().parents[3] / "clients"

    # PACS (DICOMweb) archives per tenant: JSON, and/or a JSON file (docs/pacs.md). Holds
    # credentials: never logged or echoed (SecretStr); the job worker reads the same variables
    pacs: str = Field("", repr=False)
    pacs_file: Path | None = None
    # The OHIF viewer at /ohif (docs/ohif.md): its prebuilt files (`make ohif`; unset: the
    # repository's .cache/ohif/<version>/dist, served when present) and the archive it shows
    # (unset: the first configured one by name)
    ohif_dir: Path | None = None
    ohif_pacs: str = ""

    # this process's name in the `X-Medseg-Replica` response header (e.g. the pod's name, see
    # deploy/k8s); empty: no header
    replica: str = Field("", max_length=64, pattern=r"^[A-Za-z0-9._:-]*$")

    log_level: str = "INFO"
    log_json: bool = True

    @property
    def instance_dir(self) -> Path:
        """The absolute folder of this server's state: MEDSEG_DATA_DIR (made absolute), else
        $XDG_STATE_HOME/medseg/<port> (~/.local/state/medseg/<port>): two servers on one
        machine never share an append-only file."""
        if self.data_dir is not None:
            return self.data_dir.expanduser().resolve()
        state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
        return (Path(state) / "medseg" / str(self.port)).resolve()

    @cached_property
    def key_hashes(self) -> dict[str, str]:
        """sha256 hex digest of an API key -> tenant."""
        lines = [e for e in self.api_keys.split(",") if e.strip()]
        if self.api_keys_file is not None:
            lines += [ln for ln in self.api_keys_file.read_text().splitlines()
                      if ln.strip() and not ln.lstrip().startswith("#")]
        table: dict[str, str] = {}
        for entry in lines:
            parts = entry.strip().split(":")
            if len(parts) != 3 or parts[1] != "sha256" or len(parts[2]) != 64 or not parts[0]:
                raise ValueError("each API key entry must be 'tenant:sha256:<64 hex digits>' "
                                 "(make one with `medseg-server hash-key TENANT`)")
            table[parts[2].lower()] = parts[0]
        return table

    @cached_property
    def pacs_config(self) -> PacsConfig:
        return parse_pacs(self.pacs, self.pacs_file)

    @model_validator(mode="after")
    def _pacs_parses(self) -> Settings:
        self.pacs_config  # noqa: B018 - a misconfigured archive stops the start, not a request
        return self

    @model_validator(mode="after")
    def _auth_is_explicit(self) -> Settings:
        if not self.key_hashes and not self.dev_mode:
            raise ValueError("no API keys configured: set MEDSEG_API_KEYS or MEDSEG_API_KEYS_FILE, "
                             "or switch on MEDSEG_DEV_MODE=1 for an unauthenticated local server")
        if self.dev_mode and not self.key_hashes and self.host not in LOOPBACK_HOSTS:
            raise ValueError(f"dev mode (no API keys) binds to localhost only, not {self.host!r}")
        return self
