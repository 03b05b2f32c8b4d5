"""The OHIF viewer's prebuilt files (npm `@ohif/app`), fetched once into a git-ignored cache and
made to run under `/ohif` (docs/ohif.md).

`python -m medseg.ohif fetch` (`make ohif`) runs `npm pack @ohif/app@VERSION` (the tarball only,
none of its dependencies: `dist/` is a complete build; npm keeps the tarball in its own cache,
so a second checkout does not download it again), unpacks `dist/` into
`.cache/ohif/<VERSION>/dist` and rewrites the build's root-relative paths for the base path:
the webpack public path (`__webpack_require__.p = "/"`, which loads every chunk, worker and
codec), the style sheets' `url(/...)` and `index.html`'s `PUBLIC_URL` and links. The build's
own `app-config.js` is never served: the service generates one (medseg.api.ohif)."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "3.13.2"
PACKAGE = "@ohif/app"
BASE = "/ohif/"
ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "ohif"
MARKER = ".medseg-ready"


def default_dist() -> Path:
    return CACHE / VERSION / "dist"


def ready(dist: Path) -> bool:
    return (dist / MARKER).is_file() and (dist / "index.html").is_file()


def fetch(dist: Path | None = None, npm: str = "npm") -> Path:
    """The patched dist folder, fetched when it is not there yet."""
    dist = dist or default_dist()
    if ready(dist):
        return dist
    if shutil.which(npm) is None:
        raise RuntimeError(f"`{npm}` not found: the OHIF viewer is fetched with npm "
                           "(apt-get install npm)")
    with tempfile.TemporaryDirectory(prefix="medseg-ohif-") as tmp:
        subprocess.run([npm, "pack", f"{PACKAGE}@{VERSION}", "--silent",
                        "--pack-destination", tmp], check=True, stdout=subprocess.DEVNULL)
        tarballs = list(Path(tmp).glob("*.tgz"))
        if len(tarballs) != 1:
            raise RuntimeError(f"npm pack left {len(tarballs)} tarballs")
        unpacked = Path(tmp) / "unpacked"
        with tarfile.open(tarballs[0]) as archive:
            members = [m for m in archive.getmembers()
                       if m.name.startswith("package/dist/") and (m.isfile() or m.isdir())]
            archive.extractall(unpacked, members=members, filter="data")
        patch(unpacked / "package" / "dist")
        if dist.exists():
            shutil.rmtree(dist)
        dist.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(unpacked / "package" / "dist"), dist)
    (dist / MARKER).write_text(f"{PACKAGE}@{VERSION} base {BASE}\n")
    return dist


PUBLIC_PATH = '__webpack_require__.p = "/";'


def patch(dist: Path, base: str = BASE) -> int:
    """Rewrites the root-relative paths for `base`; answers the number of files changed."""
    changed = 0
    for script in dist.glob("*.js"):
        text = script.read_text(encoding="utf-8", errors="surrogateescape")
        if PUBLIC_PATH in text:
            script.write_text(text.replace(PUBLIC_PATH, f'__webpack_require__.p = "{base}";'),
                              encoding="utf-8", errors="surrogateescape")
            changed += 1
    for sheet in dist.glob("*.css"):
        text = sheet.read_text(encoding="utf-8")
        if "url(/" in text:
            sheet.write_text(re.sub(r"url\(/(?!/)", f"url({base}", text), encoding="utf-8")
            changed += 1
    index = dist / "index.html"
    html = index.read_text(encoding="utf-8")
    html = html.replace('window.PUBLIC_URL="/"', f'window.PUBLIC_URL="{base}"')
    html = re.sub(r'(href|src)="/(?!/)', rf'\1="{base}', html)
    index.write_text(html, encoding="utf-8")
    return changed + 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medseg.ohif", description=__doc__)
    parser.add_argument("command", choices=["fetch", "where"])
    parser.add_argument("--dist", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.command == "where":
        print(args.dist or default_dist())
        return 0
    print(fetch(args.dist))
    return 0


if __name__ == "__main__":
    sys.exit(main())
