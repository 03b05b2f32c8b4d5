"""3 API replicas and 2 job workers on one Redis behind a real nginx (medseg.replicas), shared
by the module that asks for `cluster`. nginx comes from the Debian package (`make test`
installs it: the Makefile's $(NGINX) prerequisite)."""

from __future__ import annotations

import pytest

from medseg import replicas
from medseg.api.auth import hash_key
from tests.conftest import KEYS
from tests.live import SERVER_ENV, WORKER_ENV


def cluster_env(**overrides: str) -> dict[str, str]:
    return {"MEDSEG_API_KEYS": ",".join(f"{t}:sha256:{hash_key(k)}" for t, k in KEYS.items()),
            "MEDSEG_LOG_LEVEL": "WARNING", **WORKER_ENV, **SERVER_ENV, **overrides}


@pytest.fixture(scope="module")
def cluster():
    try:
        replicas.find_nginx()
    except RuntimeError as exc:
        pytest.fail(f"{exc} (make test installs it)")
    with replicas.run(api=3, workers=2, env=cluster_env()) as running:
        yield running
