"""Hints (issue 14 item 5): the regions of a segment's head revision most likely wrong,
ranked (medseg.engine.hints). Read-only: nothing is written."""

from __future__ import annotations

import time
from dataclasses import dataclass

from medseg.engine import hints as engine_hints
from medseg.errors import EmptySegment, InvalidPrompt
from medseg.store import Store
from medseg.store.chunks import full_box
from medseg.store.records import SessionMeta


@dataclass
class SegmentHints:
    segment_id: int
    revision: int
    hints: list[engine_hints.Hint]
    sources: list[str]
    seconds: float


def segment_hints(store: Store, plugins, meta: SessionMeta, segment_id: int, k: int,
                  fence=None) -> SegmentHints:
    """Hints for the head revision of `segment_id` (SegmentNotFound when there is none;
    EmptySegment when its mask has no voxel). `plugins` and `fence`: the compute pool's call
    shape (a read takes no fenced write)."""
    start = time.perf_counter()
    _, record = store.segments.head(meta, segment_id)
    box = full_box(meta.shape)
    mask = store.segments.read_mask(meta, record, box)
    if not mask.any():
        raise EmptySegment(f"segment {segment_id} has no voxels at revision {record.revision}: "
                           "there is no mask to check (segment or import one first)")
    image = store.sessions.read_image(meta, box)
    try:
        result = engine_hints.find_hints(image, mask, meta.spacing, k)
    except ValueError as exc:  # k out of range, a crop too large to examine
        raise InvalidPrompt(str(exc)) from None
    return SegmentHints(segment_id, record.revision, result.hints, result.sources,
                        time.perf_counter() - start)
