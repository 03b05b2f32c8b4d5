"""Write the app's OpenAPI document: `python -m medseg.api.openapi_export openapi/openapi.json`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from medseg.api.app import create_app
from medseg.api.settings import Settings


def openapi_document() -> dict:
    # No Redis is contacted: building the schema needs only the routes.
    app = create_app(Settings(dev_mode=True, redis_url="redis://127.0.0.1:1/0"))
    return app.openapi()


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "openapi/openapi.json")
    target.write_text(render())
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
