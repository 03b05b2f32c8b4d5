"""The image volume as the engine sees it.

Axis convention everywhere in the engine, store and API: arrays are indexed (z, y, x) in
voxels; `spacing` is (sz, sy, sx) in mm. `affine` is the NIfTI-style 4x4 matrix that maps a
voxel index (i=x, j=y, k=z) to RAS+ millimetres, i.e. exactly the affine a NIfTI file of
`array.transpose(2, 1, 0)` carries. A 2D image is a volume with Z == 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The longest axis an image may have, in voxels (the upload refuses longer ones), so every
# voxel index a request may name fits in [0, MAX_INDEX]. 2**20 is over a million voxels, far
# beyond any scanner's matrix; bounding indices keeps request numbers inside int64 arithmetic.
MAX_AXIS = 2**20
MAX_INDEX = MAX_AXIS - 1


@dataclass(frozen=True)
class Volume:
    array: np.ndarray  # (Z, Y, X), numeric; CT in HU after rescale slope/intercept
    spacing: tuple[float, float, float]  # (sz, sy, sx) mm
    affine: np.ndarray  # (4, 4) float64, index (x, y, z) -> RAS mm
    modality: str = "unknown"  # "CT", "MR", "photo", ... as far as the file tells
    source_format: str = "unknown"  # "nifti", "nrrd", "dicom", "png", "jpeg"
    extra: dict = field(default_factory=dict)  # format-specific metadata worth keeping
    # what the loader changed and the user should know (e.g. NaN voxels replaced), in words
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"Volume.array must be 3D (Z, Y, X), got shape {self.array.shape}")
        if np.shape(self.affine) != (4, 4):
            raise ValueError("Volume.affine must be 4x4")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def is_2d(self) -> bool:
        return self.array.shape[0] == 1
