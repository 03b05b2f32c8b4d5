"""Fixtures of the PACS tests: one real Orthanc for the module, the shared series in it."""

from __future__ import annotations

import pytest

from tests.conftest import TOTALSEG
from tests.pacs.orthanc import Orthanc, Series, prepared_series, running_orthanc


@pytest.fixture(scope="session")
def ct_folder():
    folder = TOTALSEG / "ct_dicom"
    if not folder.is_dir():
        pytest.fail(f"shared DICOM series not found at {folder} (set MEDSEG_SHARED_DATA)")
    return folder


@pytest.fixture(scope="session")
def orthanc(ct_folder) -> Orthanc:
    with running_orthanc() as server:
        yield server


@pytest.fixture(scope="session")
def ct_series(orthanc, ct_folder) -> Series:
    series = prepared_series(ct_folder)
    orthanc.store(series)
    return series


@pytest.fixture(scope="session")
def bad_series(orthanc, ct_folder) -> dict[str, Series]:
    out = {}
    for variant in ("mixed-sizes", "mixed-orientations"):
        out[variant] = prepared_series(ct_folder, name=variant, variant=variant)
        orthanc.store(out[variant])
    return out


def pacs_json(orthanc: Orthanc) -> str:
    """The archives the tests configure: the real one, one that is down, one with a wrong
    password, and one only bob's tenant may use."""
    import json

    from medseg.store.embedded import free_port

    return json.dumps({
        "main": orthanc.pacs_entry(),
        "down": orthanc.pacs_entry(url=f"http://127.0.0.1:{free_port()}/dicom-web"),
        "badauth": orthanc.pacs_entry(password="wrong-password-xyz"),
        "bobs": orthanc.pacs_entry(tenants=["bob"]),
    })


@pytest.fixture
def pacs_settings(redis_url, orthanc):
    from tests.conftest import make_settings

    return make_settings(redis_url, pacs=pacs_json(orthanc))


@pytest.fixture
def pacs_client(pacs_settings):
    from fastapi.testclient import TestClient

    from medseg.api.app import create_app
    from medseg.store import Store
    from tests.conftest import KEYS

    store = Store.connect(pacs_settings.redis_url, pacs_settings.session_ttl_s)
    app = create_app(pacs_settings, store)
    with TestClient(app, headers={"X-API-Key": KEYS["alice"]}) as client:
        client.store = store  # type: ignore[attr-defined]
        yield client


@pytest.fixture(scope="session")
def other_series(orthanc, ct_folder) -> Series:
    """The same slices as another series of the study (a SEG of ct_series does not fit it)."""
    series = prepared_series(ct_folder, name="ct-copy")
    orthanc.store(series)
    return series
