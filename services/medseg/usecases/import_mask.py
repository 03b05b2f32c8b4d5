"""Importing an existing mask (issue 14): a NIfTI / NRRD / PNG mask file aligned with the
session's image, read by the same image readers as uploads, becomes one segment (a binary
mask) or several (a label map: one segment per label value); or a copy of another segment's
revision. Each new segment's first revision after its creation is the imported mask (type
"import"), so undo, refinement and every editing tool start from it.

Geometry: the file must lie on the session's voxel grid up to axis order and flips (the
readers' affines are compared with `reorient_to`, every voxel centre within 0.01 mm); anything
else (another shape, spacing, origin or direction) is GeometryMismatch (422) and nothing is
written. A PNG has no geometry: it must have the 2D image's pixel grid.
"""

from __future__ import annotations

import numpy as np

from medseg.engine import imageio
from medseg.engine.prompts import Marks
from medseg.errors import CorruptImage, GeometryMismatch, InvalidPrompt, MedsegError
from medseg.store import Store
from medseg.store.chunks import full_box
from medseg.store.records import SegmentRecord, SessionMeta

MAX_IMPORTED_SEGMENTS = 255  # label values in one label map (a uint8 map's worth)


def read_on_grid(meta: SessionMeta, content: bytes, limits: imageio.ImageLimits) -> np.ndarray:
    """The mask file's voxel values on the session's grid, (Z, Y, X). CorruptImage /
    UnsupportedFormat / ImageTooLarge for a file the readers refuse, GeometryMismatch for
    one on another grid."""
    volume = imageio.load_image([("mask", content)], limits)
    try:
        return imageio.reorient_to(np.asarray(meta.affine), meta.shape, volume.array,
                                   volume.affine)
    except CorruptImage as exc:
        raise GeometryMismatch(
            f"the mask is not on the session image's voxel grid: {exc.message}. Export it on "
            f"the image's grid (shape {list(meta.shape)} z, y, x; spacing "
            f"{[round(float(s), 4) for s in meta.spacing]} mm), e.g. from GET "
            "/v1/sessions/{id}/export") from None


def split(values: np.ndarray, labels: list[int] | None, binary: bool
          ) -> list[tuple[int | None, np.ndarray]]:
    """(label value or None for a binary mask, bool mask) of each segment to create.

    binary: every voxel > 0 is foreground (any dtype; a probability map needs its own
    threshold first). Otherwise the values must be whole numbers: a file with one non-zero
    value is one binary mask, else a label map with one segment per value (those in `labels`
    when given)."""
    if binary:
        return [(None, np.asarray(values > 0))]
    if np.issubdtype(values.dtype, np.floating):
        if not np.all(np.isfinite(values)) or not np.array_equal(values, np.rint(values)):
            raise InvalidPrompt("the mask holds non-integer values: send a binary mask or a "
                                "label map, or import with binary=true (every value > 0 is "
                                "foreground)")
    as_int = values.astype(np.int64, copy=False)
    present = [int(v) for v in np.unique(as_int) if v != 0]
    if labels is not None:
        missing = sorted(set(labels) - set(present))
        if missing:
            raise InvalidPrompt(f"label value(s) {missing} do not occur in the mask; it holds "
                                f"{present[:20]}{' ...' if len(present) > 20 else ''}")
        present = sorted(set(labels))
    if not present:
        raise InvalidPrompt("the mask is empty (every voxel is 0): nothing to import")
    if len(present) > MAX_IMPORTED_SEGMENTS:
        raise InvalidPrompt(f"the mask holds {len(present)} label values; at most "
                            f"{MAX_IMPORTED_SEGMENTS} segments are imported at once: choose "
                            "some with `labels`")
    if len(present) == 1 and labels is None:
        return [(None, as_int == present[0])]
    return [(value, as_int == value) for value in present]


def import_mask(store: Store, meta: SessionMeta, content: bytes, limits: imageio.ImageLimits,
                name: str | None = None, labels: list[int] | None = None,
                binary: bool = False) -> list[SegmentRecord]:
    """Each mask of the file becomes a new segment (module doc). A label map's segments take
    the label values as their export labels where the session has not used them yet, and are
    named "<name or 'label'> <value>". Nothing is written unless every part is valid."""
    values = read_on_grid(meta, content, limits)
    parts = split(values, labels, binary)
    created = []
    with store.sessions.locked(meta.id):
        used = {s.label for s in store.segments.list(meta)}
        for value, mask in parts:
            label = value if value is not None and 1 <= value <= 65535 and value not in used \
                else None
            title = name if value is None else f"{name or 'label'} {value}"
            record = store.segments.create(meta, title, label, None)
            used.add(record.label)
            result = {"label_value": value, "voxels": int(mask.sum())}
            created.append(_commit(store, meta, record, mask,
                                   {"method": "mask-file", "result": result}))
    return created


def copy_segment(store: Store, meta: SessionMeta, source_id: int, revision: int | None = None,
                 name: str | None = None) -> SegmentRecord:
    """A new segment whose first revision is the mask of `source_id` at `revision` (default:
    its head)."""
    with store.sessions.locked(meta.id):
        source = store.segments.get(meta, source_id)
        record = store.segments.revision(meta, source_id,
                                         source.head if revision is None else revision)
        mask = store.segments.read_mask(meta, record, full_box(meta.shape))
        segment = store.segments.create(meta, name or f"{source.name} (copy)", None, None)
        return _commit(store, meta, segment, mask, {
            "method": "copy", "result": {"from_segment": source_id,
                                         "from_revision": record.revision}})


def _commit(store: Store, meta: SessionMeta, segment: SegmentRecord, mask: np.ndarray,
            interaction: dict) -> SegmentRecord:
    first = store.segments.revision(meta, segment.id, segment.head)
    try:
        store.segments.commit(meta, segment, first, full_box(meta.shape),
                              np.ascontiguousarray(mask, dtype=bool),
                              {"type": "import", **interaction}, {}, Marks())
    except MedsegError:
        store.segments.delete(meta, segment.id)  # no half-imported segment is left behind
        raise
    return store.segments.get(meta, segment.id)
