"""Decompression bombs, built in code, and what decoding one costs the process that decodes it.

`python -m tests.engine.bombs nifti|zip [FILE]` builds the bomb (streamed: building costs a few
MB; or reads it from FILE, see `BombFiles`), decodes it as the API does (`imageio.load_image`
with the default limits, which are the server's) and prints one JSON line: the answer (the
error code and message, or "accepted"), the seconds it took and the growth of the peak resident
memory (VmHWM) during the decode. Run it in a fresh process: the peak of a process that already
decoded something says nothing.

The two bombs are the ones the issue-12 probe found:
- a .nii.gz of ~0.5 MB whose header declares 512 x 512 x 1024 int16 voxels (512 MiB of zeros);
- a zip of ~4.5 MB (deflate level 1) holding one member of 1 GiB of zeros.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
import time
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np

_ZEROS = bytes(1 << 20)


def nifti_bomb(shape: tuple[int, int, int] = (512, 512, 1024), dtype=np.int16) -> bytes:
    """A valid .nii.gz of zeros whose header declares `shape` (x, y, z)."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_qform(np.eye(4), code=1)
    header.set_sform(np.eye(4), code=1)
    header["vox_offset"] = 352
    head = header.binaryblock + b"\0" * 4  # 348-byte header + empty extension flag
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(head)
        left = int(np.prod(shape)) * np.dtype(dtype).itemsize
        while left > 0:
            gz.write(_ZEROS[: min(left, len(_ZEROS))])
            left -= len(_ZEROS)
    return out.getvalue()


def zip_bomb(member_bytes: int = 1 << 30, name: str = "scan.nii") -> bytes:
    """A zip holding one member of `member_bytes` zeros (its declared size is the true one)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive, \
            archive.open(name, "w", force_zip64=member_bytes >= (2 << 30) - 1) as member:
        left = member_bytes
        while left > 0:
            member.write(_ZEROS[: min(left, len(_ZEROS))])
            left -= len(_ZEROS)
    return out.getvalue()


BOMBS = {"nifti": ("bomb.nii.gz", nifti_bomb), "zip": ("bomb.zip", zip_bomb)}


class BombFiles:
    """Each bomb built once (a few seconds of CPU each) into `directory`, on first use."""

    def __init__(self, directory: Path):
        self.directory = directory

    def path(self, kind: str) -> Path:
        name, build = BOMBS[kind]
        path = self.directory / name
        if not path.exists():
            path.write_bytes(build())
        return path


def peak_rss() -> int:
    """VmHWM of this process, bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure(kind: str, path: str | None = None) -> dict:
    from medseg.engine import imageio
    from medseg.errors import MedsegError

    name, build = BOMBS[kind]
    content = Path(path).read_bytes() if path else build()
    reset_peak()
    before = peak_rss()
    start = time.perf_counter()
    try:
        volume = imageio.load_image([(name, content)])
        answer = {"error": None, "message": f"accepted, shape {volume.shape}"}
    except MedsegError as exc:
        answer = {"error": exc.code, "message": exc.message}
    seconds = time.perf_counter() - start
    return {"bomb": kind, "file_bytes": len(content), **answer, "seconds": round(seconds, 3),
            "peak_growth_mb": round((peak_rss() - before) / (1 << 20), 1)}


if __name__ == "__main__":
    print(json.dumps(measure(*sys.argv[1:3])))
