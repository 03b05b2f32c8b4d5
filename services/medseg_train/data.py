"""The shared real data (../shared/data/totalseg) as training and validation objects.

Every label of a mask file is an object. HELD_OUT_ORGANS never enter training: they are used
only to report accuracy on unseen objects. Volumes are loaded through the server's own image
reader, so arrays are (Z, Y, X) exactly as a session sees them; masks are put on that grid.
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


def data_root() -> Path:
    default = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return Path(os.environ.get("MEDSEG_SHARED_DATA", default)) / "totalseg"


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
        return [n for n in names if (n in HELD_OUT_ORGANS) == held_out]


@functools.cache
def load_case(name: str) -> RealCase:
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
