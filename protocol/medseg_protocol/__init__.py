"""The wire format shared by the server, the Python SDK and the web viewer: the `rle/1` mask
and `rle-xor/1` delta codec (`codec`, and its JavaScript twin `maskcodec.js` in this folder,
which the server serves to the viewer) and the version constants of `versions.json`, the one
place they are written (the JavaScript tests check `maskcodec.js` against it).
Specification: docs/mask-delta-format.md."""

from __future__ import annotations

import json
from importlib import resources

VERSIONS: dict = json.loads(resources.files(__name__).joinpath("versions.json").read_text())
API_VERSION: str = VERSIONS["api_version"]
ENCODING_MASK: str = VERSIONS["mask_encoding"]
ENCODING_DELTA: str = VERSIONS["delta_encoding"]
MAX_VOXELS: int = VERSIONS["max_voxels"]


def js_codec_path():
    """The JavaScript codec file (served to the viewer at /ui/lib/maskcodec.js)."""
    return resources.files(__name__).joinpath("maskcodec.js")
