"""Default segment colours: a fixed palette for the first segments, then generated colours
that never repeat an earlier one.

The first 14 are the palette (distinct, widely used for label maps). After it, candidate
colours take hues a golden angle apart (each new hue falls in the widest gap the earlier ones
left) and lightness / saturation from their own low-discrepancy sequence (the plastic-number
R2 sequence), inside a band that reads well over a grey image (lightness 40-64 %, saturation
65-90 %). A candidate equal to an earlier colour is skipped; for the first 256 colours one
also skips candidates closer than MIN_RGB_DISTANCE to an earlier colour (the farthest of up to
TRIES candidates wins), so the colours a person tells apart stay apart. The sequence is fixed,
so segment n has the same colour in every session and process.
"""

from __future__ import annotations

import colorsys
import math
import threading

PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
           "#bfef45", "#fabed4", "#469990", "#dcbeff", "#9a6324", "#800000", "#aaffc3"]
MAX_COLORS = 65535  # distinct colours: as many as a session has labels (1-65535); ids wrap after
GOLDEN_HUE = 0.38196601125010515  # 1 - 1/phi of a turn: the golden angle, 137.5 degrees
_PLASTIC = 1.324717957244746  # the plastic number: R2 steps 1/p and 1/p^2 (unitless)
LIGHTNESS = (0.40, 0.64)  # HLS lightness band (fraction of 1)
SATURATION = (0.65, 0.90)  # HLS saturation band (fraction of 1)
MIN_RGB_DISTANCE = 48.0  # 8-bit RGB units (Euclidean): nearer candidates are passed over ...
SPREAD_FIRST = 256  # ... while fewer colours than this exist (the check is O(n) per colour)
TRIES = 8  # candidates looked at per colour while spreading

_colors: list[tuple[int, int, int]] = []
_seen: set[tuple[int, int, int]] = set()
_next_candidate = 0
_lock = threading.Lock()


def _rgb(hex_color: str) -> tuple[int, int, int]:
    return int(hex_color[1:3], 16), int(hex_color[3:5], 16), int(hex_color[5:7], 16)


def _candidate(k: int) -> tuple[int, int, int]:
    hue = (k * GOLDEN_HUE) % 1.0
    u = (0.5 + k / _PLASTIC) % 1.0
    v = (0.5 + k / _PLASTIC**2) % 1.0
    lightness = LIGHTNESS[0] + (LIGHTNESS[1] - LIGHTNESS[0]) * u
    saturation = SATURATION[0] + (SATURATION[1] - SATURATION[0]) * v
    r, g, b = colorsys.hls_to_rgb(hue, lightness, saturation)
    return round(r * 255), round(g * 255), round(b * 255)


def _extend(count: int) -> None:
    """Grow the sequence to `count` colours (callers hold _lock)."""
    global _next_candidate
    if not _colors:
        _colors.extend(_rgb(c) for c in PALETTE)
        _seen.update(_colors)
    while len(_colors) < count:
        spread = len(_colors) < SPREAD_FIRST
        best: tuple[float, tuple[int, int, int]] | None = None
        for _ in range(TRIES if spread else 1):
            _next_candidate += 1
            colour = _candidate(_next_candidate)
            if colour in _seen:
                continue
            distance = min(math.dist(colour, c) for c in _colors) if spread else 0.0
            if best is None or distance > best[0]:
                best = (distance, colour)
            if distance >= MIN_RGB_DISTANCE:
                break
        if best is not None:
            _colors.append(best[1])
            _seen.add(best[1])


def segment_color(segment_id: int) -> str:
    """The default colour ('#rrggbb') of segment `segment_id` (1, 2, ...): the palette's for
    the first 14, then generated; no two of the first MAX_COLORS ids share one."""
    index = (max(segment_id, 1) - 1) % MAX_COLORS
    if index >= len(_colors):
        with _lock:
            _extend(index + 1)
    r, g, b = _colors[index]
    return f"#{r:02x}{g:02x}{b:02x}"
