"""The shared real data (../shared/data) as training and validation objects.

Every label of a mask file is an object. HELD_OUT_ORGANS never enter training: they are used
only to report accuracy on unseen objects. Volumes are loaded through the server's own image
reader, so arrays are (Z, Y, X) exactly as a session sees them; masks are put on that grid.

Besides totalseg/, the sets of EXTRA_SETS (licensed for training shipped weights, see
../shared/data/README.md) can be drawn from by the BIFSeg and MIDeepSeg recipes (issue 13
item 5), each with a held-out volume or held-out structures that only validation sees. The
evaluation-only sets (deepmedic_brats2013, sammed3d_brats2021, mirp_nsclc) are not listed
here at all: nothing in medseg_train can load them.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np

from medseg.engine.imageio import ImageLimits, load_image, reorient_to

# Large (liver, spleen, kidneys) and small/thin (pancreas, gallbladder) organs kept out of every
# training set, so "unseen object" accuracy is measured on both easy and hard shapes.
HELD_OUT_ORGANS = ("liver", "spleen", "kidney_left", "kidney_right", "pancreas", "gallbladder")

# The DICOM CT (0.98 mm in-plane) is never trained on: seen-organ validation happens there,
# on organ classes seen in training but an image that was not.
CASES = {
    "ct_3mm": ("ct_3mm.nii.gz", "ct_3mm_seg.nii.gz"),
    "mr_3mm": ("mr_3mm.nii.gz", "mr_3mm_seg.nii.gz"),
    "ct_dicom": ("ct_dicom", "ct_dicom_seg.nii.gz"),
}
TRAIN_CASES = ("ct_3mm", "mr_3mm")
VALIDATION_CASE = "ct_dicom"
MIN_VOXELS = 50  # smaller label fragments are not objects worth segmenting


@dataclass(frozen=True)
class ExtraSet:
    """A licensed set of ../shared/data/<folder>: files <stem>_image.nii.gz, <stem>_mask.nii.gz
    and <stem>_labels.json per case. Its case names are "<folder>/<stem>"."""

    folder: str
    stems: tuple[str, ...]
    held_out_stems: tuple[str, ...] = ()  # whole volumes only validation sees
    held_out_structures: tuple[str, ...] = ()  # structures only validation sees
    axial_only: bool = False  # 2D slices along z only (thick slices or a 3-slice volume)
    dims: tuple[int, ...] = (2, 3)  # which recipes may draw from it
    weight: float = 0.0  # share of the real draws (totalseg takes the rest)

    def case_names(self, held_out: bool = False) -> list[str]:
        stems = self.held_out_stems if held_out else [
            s for s in self.stems if s not in self.held_out_stems]
        return [f"{self.folder}/{s}" for s in stems]


EXTRA_SETS = (
    # 3 sarcoma patients, CT and T1 MR each (CC BY 3.0): patient 3 (both scans) held out
    ExtraSet("mirp_sts", tuple(f"STS_00{k}_{m}" for k in (1, 2, 3) for m in ("ct", "t1")),
             held_out_stems=("STS_003_ct", "STS_003_t1"), axial_only=True, weight=0.2),
    # one 1 mm brain MR, 45 automatic labels (Apache-2.0): the deep grey structures held out
    ExtraSet("voxelmorph_testscan", ("test_scan_t1",),
             held_out_structures=tuple(f"{side}-{s}" for side in ("Left", "Right")
                                       for s in ("Thalamus", "Putamen", "Hippocampus",
                                                 "Amygdala")),
             weight=0.2),
    # 3 axial CT slices (BSD-3-Clause): liver stays out by HELD_OUT_ORGANS; 2D only
    ExtraSet("dcmqi_ct3slice", ("ct3slice_ct",), axial_only=True, dims=(2,), weight=0.1),
)


def extra_set(case_name: str) -> ExtraSet | None:
    folder = case_name.split("/")[0]
    return next((s for s in EXTRA_SETS if s.folder == folder), None)


def extra_train_cases(dims: int) -> list[str]:
    """Case names of the EXTRA_SETS that a `dims`-D recipe may train on."""
    return [c for s in EXTRA_SETS if dims in s.dims for c in s.case_names()]


def extra_held_out_cases() -> list[str]:
    return [c for s in EXTRA_SETS for c in s.case_names(held_out=True)]


def shared_root() -> Path:
    default = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return Path(os.environ.get("MEDSEG_SHARED_DATA", default))


def data_root() -> Path:
    return shared_root() / "totalseg"


def load_nifti(path: Path) -> nib.Nifti1Image:
    """A NIfTI file of the shared data as nibabel reads it. nib.load is typed as returning
    the FileBasedImage base class, which has no dataobj/affine; a .nii(.gz) file loads as a
    Nifti1Image (or its subclass Nifti2Image)."""
    return cast(nib.Nifti1Image, nib.load(path))


@dataclass(frozen=True)
class RealCase:
    name: str
    image: np.ndarray  # float32 (Z, Y, X): HU for CT, scanner units for MR
    labels: np.ndarray  # int16 (Z, Y, X), 0 = background
    organs: dict[int, str]  # label value -> organ name
    spacing: tuple[float, float, float]  # (sz, sy, sx) mm
    held_out_structures: tuple[str, ...] = ()  # besides HELD_OUT_ORGANS (EXTRA_SETS)

    def is_held_out(self, organ: str) -> bool:
        return organ in HELD_OUT_ORGANS or organ in self.held_out_structures

    def mask(self, organ: str) -> np.ndarray:
        value = next(k for k, v in self.organs.items() if v == organ)
        return self.labels == value

    def present(self, held_out: bool | None = None) -> list[str]:
        """Organs with at least MIN_VOXELS voxels; held_out=True/False keeps one group only."""
        counts = np.bincount(self.labels.ravel().astype(np.int64), minlength=max(self.organs) + 1)
        names = [name for value, name in sorted(self.organs.items())
                 if value < len(counts) and counts[value] >= MIN_VOXELS]
        if held_out is None:
            return names
        return [n for n in names if self.is_held_out(n) == held_out]


@functools.cache
def load_case(name: str) -> RealCase:
    """A totalseg case (CASES) or an EXTRA_SETS case ("<folder>/<stem>")."""
    if "/" in name:
        return _load_extra(name)
    image_name, seg_name = CASES[name]
    root = data_root()
    source = root / image_name
    paths = sorted(source.iterdir()) if source.is_dir() else [source]
    volume = load_image([(p.name, p.read_bytes()) for p in paths], ImageLimits())
    seg = load_nifti(root / seg_name)
    labels = np.asarray(seg.dataobj).astype(np.int16).transpose(2, 1, 0)
    labels = reorient_to(volume.affine, volume.shape, labels, seg.affine)
    names = json.loads((root / "labels.json").read_text())[seg_name]
    organs = {int(k): v for k, v in names.items()}
    sz, sy, sx = volume.spacing
    return RealCase(name, volume.array.astype(np.float32), np.ascontiguousarray(labels), organs,
                    (float(sz), float(sy), float(sx)))


def _load_extra(name: str) -> RealCase:
    found = extra_set(name)
    if found is None:
        raise KeyError(f"{name}: not a case of a set licensed for training (EXTRA_SETS)")
    folder = shared_root() / found.folder
    stem = name.split("/", 1)[1]
    source = folder / f"{stem}_image.nii.gz"
    volume = load_image([(source.name, source.read_bytes())], ImageLimits())
    seg = load_nifti(folder / f"{stem}_mask.nii.gz")
    labels = np.asarray(seg.dataobj).astype(np.int16).transpose(2, 1, 0)
    labels = reorient_to(volume.affine, volume.shape, labels, seg.affine)
    names = json.loads((folder / f"{stem}_labels.json").read_text())
    # "GTV_Mass (soft-tissue sarcoma, ...)" -> "GTV_Mass"; label 0 is background
    organs = {int(k): v.split(" (")[0] for k, v in names.items() if int(k) > 0}
    sz, sy, sx = volume.spacing
    return RealCase(name, volume.array.astype(np.float32), np.ascontiguousarray(labels), organs,
                    (float(sz), float(sy), float(sx)), found.held_out_structures)


def extra_evaluation_objects() -> Iterator[tuple[str, RealCase, str]]:
    """("held_out_new_sets", case, structure) of the EXTRA_SETS that no recipe trains on: every
    structure of a held-out volume and the held-out structures of the other volumes."""
    for found in EXTRA_SETS:
        for case_name in found.case_names(held_out=True):
            case = load_case(case_name)
            for organ in case.present():
                yield "held_out_new_sets", case, organ
        for case_name in found.case_names():
            case = load_case(case_name)
            for organ in case.present():
                if organ in found.held_out_structures:
                    yield "held_out_new_sets", case, organ


def evaluation_organs() -> Iterator[tuple[str, RealCase, str]]:
    """(group, case, organ) of every object that validation and benchmarks score: the
    held-out organs ("held_out") of every volume and the seen organs ("seen") of the
    validation volume, which no recipe trains on."""
    for case_name in CASES:
        case = load_case(case_name)
        groups = [("held_out", True)] + ([("seen", False)] if case_name == VALIDATION_CASE else [])
        for group, held_out in groups:
            for organ in case.present(held_out=held_out):
                yield group, case, organ
