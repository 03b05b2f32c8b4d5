"""DICOM Segmentation objects (highdicom): build a binary or label-map SEG from a session's
masks, and read one back as masks on the session's grid.

Pure functions: DICOM headers and NumPy arrays in, bytes or arrays out (no Redis, no HTTP).
The source series is given as its instances' headers (no pixel data needed) in the volume's
slice order, so frame k of the SEG is slice k of the session's (z, y, x) array, rows along y
and columns along x, exactly as `dicom.load_dicom_series` built the volume.

Messages never quote a header's values (patient data): the problem is named, not the value.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from medseg.errors import CorruptImage, ImageTooLarge, InvalidPrompt, SeriesMismatch

SegForm = Literal["binary", "labelmap"]
# Segments read from one SEG (as many as a mask file's label map gives: import_mask). A SEG of a
# few KB can declare thousands of segments, and each becomes a whole-volume mask in memory.
MAX_READ_SEGMENTS = 255
FORMS: tuple[SegForm, ...] = ("binary", "labelmap")
AlgorithmType = Literal["AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"]

# SNOMED CT property types for the organs the service knows by name (TotalSegmentator's names
# and plain English). The category of all of them is "Anatomical Structure"; a name not in the
# table is coded as category "Tissue" with type "Tissue" and keeps its own label.
ORGAN_CODES: dict[str, Code] = {
    "liver": codes.SCT.Liver,
    "spleen": codes.SCT.Spleen,
    "kidney": codes.SCT.Kidney,
    "pancreas": codes.SCT.Pancreas,
    "aorta": codes.SCT.Aorta,
    "stomach": codes.SCT.Stomach,
    "gallbladder": codes.SCT.Gallbladder,
    "lung": codes.SCT.Lung,
    "heart": codes.SCT.Heart,
    "urinary bladder": codes.SCT.Bladder,
    "bladder": codes.SCT.Bladder,
    "esophagus": codes.SCT.Esophagus,
    "brain": codes.SCT.Brain,
    "prostate": codes.SCT.Prostate,
    "vertebra": codes.SCT.Vertebra,
    "rib": codes.SCT.Rib,
    "duodenum": codes.SCT.Duodenum,
    "colon": codes.SCT.Colon,
    "small intestine": codes.SCT.SmallIntestine,
    "small bowel": codes.SCT.SmallIntestine,
    "adrenal gland": codes.SCT.AdrenalGland,
    "trachea": codes.SCT.Trachea,
    "inferior vena cava": codes.SCT.InferiorVenaCava,
    "portal vein": codes.SCT.PortalVein,
    "spinal cord": codes.SCT.SpinalCord,
}
_SIDES = re.compile(r"\b(left|right)\b")


def organ_code(name: str) -> Code | None:
    """The SNOMED CT code of an organ named like "liver", "Kidney_left", "vertebrae L1"."""
    words = _SIDES.sub(" ", re.sub(r"[_\-]+", " ", name.lower()))
    words = re.sub(r"\s+", " ", words).strip()
    words = re.sub(r"\b(vertebrae|ribs|lungs|kidneys)\b",
                   lambda m: m.group(1)[:-1] if m.group(1) != "vertebrae" else "vertebra", words)
    if words in ORGAN_CODES:
        return ORGAN_CODES[words]
    for key in sorted(ORGAN_CODES, key=len, reverse=True):  # "vertebra l1", "lung upper lobe"
        if words.startswith(key + " ") or words.endswith(" " + key):
            return ORGAN_CODES[key]
    return None


@dataclass(frozen=True)
class Algorithm:
    """What made a segment: the method (and model) and whether a person steered it."""

    type: AlgorithmType
    name: str  # the method, e.g. "graphcut", "mideepseg"
    version: str  # the model's version, else the service's
    uses_model: bool = False
    parameters: dict[str, str] = field(default_factory=dict)  # e.g. model name, checksum


@dataclass(frozen=True)
class SegmentInput:
    number: int  # 1..n, the SEG's segment number (label-map pixel value)
    label: str  # the segment's name
    color: str  # "#rrggbb"
    mask: np.ndarray  # bool (z, y, x)
    algorithm: Algorithm
    tracking_id: str  # e.g. "segment 2 revision 14": the revision this segment was made from
    tracking_uid: str


@dataclass(frozen=True)
class SegIdentity:
    """Deterministic identity of one SEG object (same inputs -> same UIDs)."""

    series_instance_uid: str
    sop_instance_uid: str
    instance_number: int
    series_number: int = 900
    content_label: str = "MEDSEG"
    content_description: str = ""
    series_description: str = ""


def derived_uid(*parts: str) -> str:
    """A UID under the 2.25 root (a 128-bit number, as a UUID's) derived from the parts: the
    same parts, the same UID. (pydicom's generate_uid ignores its entropy under 2.25.)"""
    digest = hashlib.sha256("\0".join(["medseg", *parts]).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def _rgb(color: str) -> tuple[int, int, int]:
    value = color.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def _description(segment: SegmentInput) -> hd.seg.SegmentDescription:
    code = organ_code(segment.label)
    category = codes.SCT.AnatomicalStructure if code is not None else codes.SCT.Tissue
    algorithm = segment.algorithm
    family = codes.cid7162.ArtificialIntelligence if algorithm.uses_model \
        else codes.cid7162.NeighborhoodAnalysis
    identification = None
    if algorithm.type != "MANUAL":
        identification = hd.AlgorithmIdentificationSequence(
            name=algorithm.name[:64], family=family, version=algorithm.version[:64],
            parameters=algorithm.parameters or None)
    return hd.seg.SegmentDescription(
        segment_number=segment.number, segment_label=segment.label[:64],
        segmented_property_category=category,
        segmented_property_type=code if code is not None else codes.SCT.Tissue,
        algorithm_type=algorithm.type, algorithm_identification=identification,
        tracking_id=segment.tracking_id[:64], tracking_uid=segment.tracking_uid,
        display_color=hd.color.CIELabColor.from_rgb(*_rgb(segment.color)))


def build_seg(headers: Sequence[pydicom.Dataset], segments: Sequence[SegmentInput],
              form: SegForm, identity: SegIdentity, software_version: str) -> bytes:
    """The SEG (Part 10 bytes) of `segments` over the source series whose instance headers
    are `headers`, in the volume's slice order. A label map holds one value per voxel: where
    masks overlap, the later segment in `segments` wins. InvalidPrompt when nothing to export."""
    if form not in FORMS:
        raise InvalidPrompt(f"unknown DICOM SEG form {form!r}; use one of {list(FORMS)}")
    if not segments:
        raise InvalidPrompt("the session has no segments to export as DICOM SEG")
    shape = segments[0].mask.shape
    if shape[0] != len(headers):
        raise InvalidPrompt(f"the masks have {shape[0]} slices, the source series "
                            f"{len(headers)} instances")
    if form == "binary":
        pixels = np.stack([s.mask for s in segments], axis=-1).astype(np.uint8)
    else:
        pixels = np.zeros(shape, dtype=np.uint8 if len(segments) < 256 else np.uint16)
        for segment in segments:
            pixels[segment.mask] = segment.number
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # highdicom's notes on optional attributes
        seg = hd.seg.Segmentation(
            source_images=list(headers), pixel_array=pixels,
            segmentation_type="BINARY" if form == "binary" else "LABELMAP",
            segment_descriptions=[_description(s) for s in segments],
            series_instance_uid=identity.series_instance_uid,
            series_number=identity.series_number,
            sop_instance_uid=identity.sop_instance_uid,
            instance_number=identity.instance_number,
            manufacturer="medseg", manufacturer_model_name="medseg interactive segmentation",
            software_versions=software_version, device_serial_number="0",
            content_label=identity.content_label,
            content_description=identity.content_description[:64] or None,
            series_description=identity.series_description[:64] or None,
            # bit-packed binary frames are small as they are; a label map compresses well
            transfer_syntax_uid=ExplicitVRLittleEndian if form == "binary" else RLELossless,
            omit_empty_frames=False)
    buffer = io.BytesIO()
    seg.save_as(buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class ReadSegment:
    number: int
    label: str
    color: str | None
    mask: np.ndarray  # bool (z, y, x) on the source series' grid


@dataclass(frozen=True)
class ReadSeg:
    sop_instance_uid: str
    form: SegForm
    segments: list[ReadSegment]


def read_seg(content: bytes, series_instance_uid: str,
             source_sop_instance_uids: Sequence[str], max_bytes: int | None = None) -> ReadSeg:
    """The segments of a SEG (binary or label map) on the grid of the source series, whose
    instances are `source_sop_instance_uids` in the volume's slice order. SeriesMismatch when
    the SEG references another series (or instances that are not in it). ImageTooLarge before
    any frame is decoded when it has more than MAX_READ_SEGMENTS segments, or when its masks
    would take more than `max_bytes` (one byte a voxel a segment)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(io.BytesIO(content))
    except Exception:  # noqa: BLE001 - pydicom raises many kinds on damaged input
        raise CorruptImage("the upload is not a readable DICOM file") from None
    if str(dataset.get("SOPClassUID", "")) not in (_SEG_STORAGE, _LABEL_MAP_SEG_STORAGE):
        raise CorruptImage("the upload is a DICOM object but not a Segmentation (SEG)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seg = hd.seg.Segmentation.from_dataset(dataset, copy=False)
    except Exception as exc:  # noqa: BLE001
        raise CorruptImage("the DICOM SEG cannot be read: its segmentation modules are "
                           f"incomplete or inconsistent ({type(exc).__name__})") from None
    referenced = {str(item.SeriesInstanceUID)
                  for item in dataset.get("ReferencedSeriesSequence", [])}
    if series_instance_uid not in referenced:
        raise SeriesMismatch("the DICOM SEG references another series than the session's "
                             "image: import it into a session opened on its source series")
    known = set(source_sop_instance_uids)
    used = {uid for _, _, uid in seg.get_source_image_uids()}
    if not used <= known:
        raise SeriesMismatch(f"the DICOM SEG references {len(used - known)} instance(s) that "
                             "are not in the session's series")
    numbers = [int(n) for n in seg.segment_numbers]
    rows, columns = (int(dataset.get(keyword) or 0) for keyword in ("Rows", "Columns"))
    _check_size(len(numbers), len(source_sop_instance_uids) * rows * columns, max_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pixels = seg.get_pixels_by_source_instance(
                source_sop_instance_uids=list(source_sop_instance_uids),
                segment_numbers=numbers, combine_segments=False,
                assert_missing_frames_are_empty=True)
    except Exception as exc:  # noqa: BLE001
        raise CorruptImage("the DICOM SEG's frames cannot be placed on the session's slices "
                           f"({type(exc).__name__})") from None
    out = []
    for index, number in enumerate(numbers):
        description = seg.get_segment_description(number)
        color = None
        lab = getattr(description, "RecommendedDisplayCIELabValue", None)
        if lab is not None:
            rgb = hd.color.CIELabColor.from_dicom_value(tuple(int(v) for v in lab)).to_rgb()
            color = "#{:02x}{:02x}{:02x}".format(*(min(max(int(c), 0), 255) for c in rgb))
        out.append(ReadSegment(number, str(description.segment_label), color,
                               np.ascontiguousarray(pixels[..., index] > 0)))
    form: SegForm = "labelmap" if str(seg.SegmentationType) == "LABELMAP" else "binary"
    return ReadSeg(str(dataset.SOPInstanceUID), form, out)


def _check_size(segments: int, voxels: int, max_bytes: int | None) -> None:
    if segments > MAX_READ_SEGMENTS:
        raise ImageTooLarge(f"the DICOM SEG has {segments} segments; at most "
                            f"{MAX_READ_SEGMENTS} are imported at once")
    if max_bytes is not None and segments * voxels > max_bytes:
        raise ImageTooLarge(f"the DICOM SEG's {segments} segments of {voxels} voxels each "
                            f"would decode to {segments * voxels} bytes, over the limit of "
                            f"{max_bytes} bytes (MEDSEG_MAX_UNCOMPRESSED_BYTES)")


_SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
_LABEL_MAP_SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
