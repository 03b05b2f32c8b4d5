"""PNG / JPEG (2D photos, screenshots, label images) -> Volume with Z == 1."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

from medseg.engine.imageio._common import ImageLimits, check_voxels, detail
from medseg.engine.volume import Volume
from medseg.errors import CorruptImage, ImageTooLarge, UnsupportedFormat

_GRAY_INT_MODES = {"I;16": np.uint16, "I;16B": np.uint16, "I;16L": np.uint16, "I": np.int32}


def load_raster(label: str, content: bytes, fmt: str, limits: ImageLimits) -> Volume:
    kind = fmt.upper()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(content))
            check_voxels(label, (img.height, img.width), limits, "(height, width)")
            limits.check_expansion(label, len(content), img.height * img.width
                                   * max(1, len(img.getbands())), f"its {kind} header")
            img.load()
            if fmt == "jpeg":  # camera JPEGs: honour the EXIF orientation tag
                img = ImageOps.exif_transpose(img)
            array = _to_gray(label, img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"{label} is too large: {detail(exc)}") from exc
    except (ImageTooLarge, UnsupportedFormat):
        raise
    except Exception as exc:  # noqa: BLE001 - OSError (truncated), SyntaxError, ValueError, ...
        raise CorruptImage(f"{label} is not a valid {kind}: {detail(exc)}") from exc
    return Volume(
        array=np.ascontiguousarray(array[None]),
        spacing=(1.0, 1.0, 1.0),
        affine=np.eye(4),
        modality="photo",
        source_format=fmt,
        extra={"mode": img.mode, "size": [img.width, img.height]},
    )


def _to_gray(label: str, img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("L", "1"):
        return np.asarray(img.convert("L"), dtype=np.uint8)
    if mode in _GRAY_INT_MODES:
        arr = np.asarray(img)
        return arr.astype(_GRAY_INT_MODES[mode]) if mode != "I" else _narrow(arr)
    if mode == "F":
        return np.asarray(img, dtype=np.float32)
    if mode in ("LA", "La"):
        return np.asarray(img.getchannel(0), dtype=np.uint8)
    if mode in ("RGB", "RGBA", "RGBa", "RGBX", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
        # ITU-R 601-2 luma: L = 0.299 R + 0.587 G + 0.114 B
        rgb = img.convert("RGBA").convert("RGB") if mode in ("P", "PA") else img.convert("RGB")
        return np.asarray(rgb.convert("L"), dtype=np.uint8)
    raise UnsupportedFormat(f"{label}: image mode {mode} is not supported")


def _narrow(arr: np.ndarray) -> np.ndarray:
    if arr.size and arr.min() >= 0 and arr.max() <= 65535:
        return arr.astype(np.uint16)
    return arr.astype(np.int32)
