"""Redis key names, and the types of what Redis answers. Every key of a session shares the
`{sid}` hash tag (one cluster slot) and the `medseg:s:` prefix, so DELETE and TTL can address
the whole session at once."""

from collections.abc import Mapping
from typing import Any, cast

PREFIX = "medseg"


class SessionKeys:
    def __init__(self, session_id: str):
        self.session_id = session_id
        base = f"{PREFIX}:s:{{{session_id}}}"
        self.meta = f"{base}:meta"  # string: SessionMeta JSON
        self.image = f"{base}:img"  # hash: chunk key -> zstd bytes
        self.segments = f"{base}:segs"  # hash: segment id -> SegmentRecord JSON
        self.revisions = f"{base}:revs"  # hash: revision -> RevisionRecord JSON
        self.blobs = f"{base}:blobs"  # hash: digest -> packed mask chunk
        self.probabilities = f"{base}:prob"  # hash: revision -> header JSON / float16 bytes
        self.counters = f"{base}:ctr"  # hash: "revision", "segment"
        self.lock = f"{base}:lock"  # redis-py Lock for writers
        self.jobs = f"{base}:jobs"  # set: ids of the session's jobs
        # hash: "<revision>:<name>" -> a blob a job stored with the revision it committed
        # (e.g. adapted network weights); its owner names and reads it
        self.artifacts = f"{base}:artifacts"
        # hash: the DICOM source of an image from a PACS (store/dicom_source.py)
        self.dicom = f"{base}:dicom"
        self._base = base

    def job(self, job_id: str) -> str:
        return f"{self._base}:job:{job_id}"  # string: JobRecord JSON

    def job_events(self, job_id: str) -> str:
        return f"{self._base}:job:{job_id}:events"  # stream: {"event", "data"} entries

    def job_heartbeat(self, job_id: str) -> str:
        return f"{self._base}:job:{job_id}:hb"  # string with a short TTL while a worker runs it

    @property
    def data_keys(self) -> list[str]:
        """Keys that live as long as the session (the lock expires by itself)."""
        return [self.meta, self.image, self.segments, self.revisions, self.blobs,
                self.probabilities, self.counters, self.jobs, self.artifacts, self.dicom]

    @staticmethod
    def pattern(session_id: str) -> str:
        return f"{PREFIX}:s:{{{session_id}}}:*"


def tenant_sessions_key(tenant: str) -> str:
    return f"{PREFIX}:tenant:{tenant}:sessions"


def job_ref_key(job_id: str) -> str:
    """string: "<session id>" of a job, so /v1/jobs/{id} finds the session's keys."""
    return f"{PREFIX}:jobref:{job_id}"


RUNNING_JOBS = f"{PREFIX}:jobs:running"  # set of "<session id>/<job id>" a worker has started
# sorted set: job worker name -> Redis server time (ms) until which it counts as alive
LIVE_WORKERS = f"{PREFIX}:workers:live"
# sorted set: session id -> epoch ms its idle TTL runs out (the archive sweeper's index)
EXPIRY_INDEX = f"{PREFIX}:sessions:expiry"


def text(value: bytes | str) -> str:
    """A Redis reply as text (our client never decodes replies; its types allow both)."""
    return value.decode() if isinstance(value, bytes) else value


def blob(value: bytes | str) -> bytes:
    """A Redis reply as bytes (our client never decodes replies; its types allow both)."""
    return value if isinstance(value, bytes) else value.encode()


def fields(values: Mapping[str, bytes]) -> Mapping[Any, Any]:
    """A field -> bytes mapping as redis-py's `hset(mapping=)` types it (its key type is a
    union that no concrete dict matches)."""
    return cast(Mapping[Any, Any], values)
