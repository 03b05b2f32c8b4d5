"""Objects to train on: (image, mask) patches cut around one object, 2D or 3D.

A patch is the object's bounding box grown by a quarter of its size plus a few voxels (room
for rotation and for the relaxed box), from a fresh synthetic case or from a seen organ of the
training volumes. The object is one connected component: a user segments one thing at a time.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medseg_train.data import EXTRA_SETS, TRAIN_CASES, extra_set, load_case
from medseg_train.synthetic import synthetic_case

MIN_AREA_2D = 30
MIN_VOXELS_3D = 150
SYNTHETIC_SHAPE_2D = (1, 128, 128)
SYNTHETIC_SHAPE_3D = (40, 96, 96)
# a 3D object of an extra set whose patch would exceed this many voxels is not drawn (the
# brain's cortex or white matter span the whole 7 M voxel volume: seconds per augmentation)
MAX_PATCH_VOXELS_3D = 1_500_000


def largest_component(mask: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(mask)
    if count <= 1:
        return np.asarray(mask, dtype=bool)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == int(np.argmax(sizes)) + 1


def patch_around(image: np.ndarray, mask: np.ndarray, grow: float = 0.25, extra: int = 6):
    """(image, mask) cut to the mask's bounding box grown by `grow` x size + `extra` voxels."""
    coords = np.argwhere(mask)
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    margin = np.ceil(grow * (hi - lo + 1)).astype(int) + extra
    lo = np.maximum(lo - margin, 0)
    hi = np.minimum(hi + margin, np.asarray(mask.shape) - 1)
    box = tuple(slice(a, b + 1) for a, b in zip(lo, hi))
    return np.ascontiguousarray(image[box], dtype=np.float32), np.ascontiguousarray(mask[box])


class ObjectSampler:
    """Random objects: synthetic with probability `synthetic_fraction`, else a seen organ of
    the training volumes (never a held-out one). 2D real slices come from all three axes of
    the (isotropic 3 mm) training volumes.

    extra=True: the real draws also come from the licensed EXTRA_SETS (their held-out volumes
    and structures never): a set is picked with its `weight` (totalseg gets the rest), then a
    volume and a structure uniformly; 2D slices of an `axial_only` set are axial only."""

    def __init__(self, dims: int, rng: np.random.Generator, synthetic_fraction: float = 0.6,
                 real: bool = True, pool_size: int = 24, extra: bool = False):
        self.dims, self.rng = dims, rng
        self.synthetic_fraction = synthetic_fraction if real else 1.0
        self.cases = [load_case(n) for n in TRAIN_CASES] if real else []
        # (weight, cases) per source: totalseg first
        self.sources: list[tuple[float, list]] = [(1.0, self.cases)]
        if real and extra:
            sets = [s for s in EXTRA_SETS if dims in s.dims]
            self.sources = [(1.0 - sum(s.weight for s in sets), self.cases)] + [
                (s.weight, [load_case(n) for n in s.case_names()]) for s in sets]
        self.pool_size = pool_size
        self.pool: list = []
        self._organs: dict[str, list[str]] = {}  # training organs per case (a bincount each)

    def __call__(self) -> tuple[np.ndarray, np.ndarray]:
        for _ in range(100):
            if self.rng.random() < self.synthetic_fraction:
                found = self._synthetic()
            else:
                found = self._real()
            if found is not None:
                return patch_around(*found)
        raise RuntimeError("no object found in 100 draws")

    def _synthetic(self):
        shape = SYNTHETIC_SHAPE_2D if self.dims == 2 else SYNTHETIC_SHAPE_3D
        # a 3D case costs ~0.1 s and holds several objects: keep a pool, refresh it slowly
        refresh = 0.3 if self.dims == 2 else 0.05
        if len(self.pool) < self.pool_size or self.rng.random() < refresh:
            case = synthetic_case(self.rng, shape)
            if len(self.pool) >= self.pool_size:
                self.pool.pop(int(self.rng.integers(len(self.pool))))
            self.pool.append(case)
        case = self.pool[int(self.rng.integers(len(self.pool)))]
        present = [v for v in np.unique(case.labels) if v > 0]
        if not present:
            return None
        mask = largest_component(case.labels == self.rng.choice(present))
        image = case.image
        if self.dims == 2:
            image, mask = image[0], mask[0]
        return self._big_enough(image, mask)

    def _real(self):
        weights = np.asarray([w for w, _ in self.sources])
        cases = self.sources[int(self.rng.choice(len(weights), p=weights / weights.sum()))][1]
        case = cases[int(self.rng.integers(len(cases)))]
        if case.name not in self._organs:
            self._organs[case.name] = self.training_organs(case)
        organ = self.rng.choice(self._organs[case.name])
        mask = case.mask(organ)
        found = extra_set(case.name)
        if self.dims == 3:
            if found is not None:
                coords = np.argwhere(mask)
                extent = (coords.max(axis=0) - coords.min(axis=0) + 1) * 1.5 + 12
                if np.prod(extent) > MAX_PATCH_VOXELS_3D:
                    return None
            return self._big_enough(case.image, largest_component(mask))
        axis = 0 if found is not None and found.axial_only else int(self.rng.integers(3))
        areas = mask.sum(axis=tuple(a for a in range(3) if a != axis)).astype(float)
        if areas.max() < MIN_AREA_2D:
            return None
        index = int(self.rng.choice(len(areas), p=areas / areas.sum()))
        image = np.take(case.image, index, axis=axis)
        return self._big_enough(image, largest_component(np.take(mask, index, axis=axis)))

    @staticmethod
    def training_organs(case) -> list[str]:
        """The organs of a real case that may be trained on: never a held-out one."""
        return case.present(held_out=False)

    def _big_enough(self, image, mask):
        floor = MIN_AREA_2D if self.dims == 2 else MIN_VOXELS_3D
        return (image, mask) if mask.sum() >= floor else None
