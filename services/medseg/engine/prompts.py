"""User marks in voxel coordinates (z, y, x), as the engine consumes them.

A segment's revision carries the cumulative `Marks` that produced it, so the model-free
method is a deterministic function of (image, marks) and a session can be replayed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medseg.engine.volume import MAX_INDEX
from medseg.errors import InvalidPrompt

AXES = {"z": 0, "y": 1, "x": 2}

# What one request may carry, checked before any work (the API schemas repeat them, so the
# contract shows them). Scribbles are also bounded by what they cost to rasterise
# (`check_polyline_budget`), which the point counts alone do not bound.
MAX_PATH_POINTS = 10_000  # points of one scribble (the viewer caps its strokes there)
MAX_SCRIBBLES = 100  # scribbles in one request
MAX_SCRIBBLE_POINTS = 50_000  # points of all a request's scribbles together
MAX_CLICKS = 1_000  # clicks in one request
MAX_POINTS = 100  # interior margin points in one request


@dataclass(frozen=True)
class Plane:
    """A 2D interaction addresses one slice: `axis` (0=z, 1=y, 2=x) held at `index`."""

    axis: int
    index: int

    def whole(self, shape) -> Box:
        """The whole slice of a (z, y, x) image of `shape`, as an inclusive box."""
        lo, hi = [0, 0, 0], [int(n) - 1 for n in shape]
        lo[self.axis] = hi[self.axis] = self.index
        return Box(tuple(lo), tuple(hi))

    def drop_axis(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) voxels as (N, 2) coordinates within the slice."""
        return np.delete(np.asarray(points, np.int64).reshape(-1, 3), self.axis, axis=1)


def plane_spacing(spacing, plane: Plane | None) -> tuple[float, ...]:
    """The voxel spacing within the slice (all three axes for a 3D interaction)."""
    return tuple(float(s) for k, s in enumerate(spacing) if plane is None or k != plane.axis)


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in voxels, inclusive corners (z0, y0, x0) .. (z1, y1, x1): three ints
    each (typed as variadic tuples so boxes built from arrays need no casts)."""

    lo: tuple[int, ...]
    hi: tuple[int, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(h - lo + 1 for lo, h in zip(self.lo, self.hi))

    def intersect(self, other: Box) -> Box | None:
        lo = tuple(map(max, self.lo, other.lo))
        hi = tuple(map(min, self.hi, other.hi))
        return Box(lo, hi) if all(a <= b for a, b in zip(lo, hi)) else None

    def contains(self, other: Box) -> bool:
        return all(a <= b for a, b in zip(self.lo, other.lo)) and all(
            a >= b for a, b in zip(self.hi, other.hi))

    def slices_in(self, outer: Box) -> tuple[slice, ...]:
        """Index of this box inside an array that holds `outer` (which contains it)."""
        return tuple(slice(a - o, b - o + 1) for a, b, o in zip(self.lo, self.hi, outer.lo))


@dataclass
class Marks:
    """Everything the user has marked for one segment.

    fg / bg: (N, 3) int arrays of voxel coordinates (clicks and rasterised scribbles).
    boxes: bounding boxes the user drew (the object lies inside, the outside is background).
    points: (N, 3) interior margin points (MIDeepSeg): inside the object, near its boundary;
    kept apart from the refinement clicks because they define the network's input.
    """

    fg: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), dtype=np.int64))
    bg: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), dtype=np.int64))
    boxes: list[Box] = field(default_factory=list)
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), dtype=np.int64))

    def on_plane(self, plane: Plane | None) -> Marks:
        """The marks lying on `plane` (all marks when plane is None)."""
        if plane is None:
            return self
        keep_fg = self.fg[:, plane.axis] == plane.index
        keep_bg = self.bg[:, plane.axis] == plane.index
        boxes = [b for b in self.boxes if b.lo[plane.axis] <= plane.index <= b.hi[plane.axis]]
        points = self.points[self.points[:, plane.axis] == plane.index]
        return Marks(self.fg[keep_fg], self.bg[keep_bg], boxes, points)

    def off_plane(self, plane: Plane | None) -> Marks:
        """The marks not touching `plane` (none when plane is None, i.e. a 3D interaction)."""
        if plane is None:
            return Marks()
        keep = lambda pts: pts[pts[:, plane.axis] != plane.index]
        boxes = [b for b in self.boxes if not b.lo[plane.axis] <= plane.index <= b.hi[plane.axis]]
        return Marks(keep(self.fg), keep(self.bg), boxes, keep(self.points))

    def is_empty(self) -> bool:
        return len(self.fg) == 0 and len(self.bg) == 0 and not self.boxes and len(self.points) == 0


def raw_path_points(scribbles: object) -> int:
    """Points of all scribbles of a request as it arrived (JSON lists and dicts, before
    validation), 0 for anything else: lets a schema refuse too many points before it
    validates each one (validating a million points takes a second)."""
    if not isinstance(scribbles, list):
        return 0
    paths = (s.get("path") if isinstance(s, dict) else getattr(s, "path", None)
             for s in scribbles)
    return sum(len(p) for p in paths if isinstance(p, list))


def _steps(points: np.ndarray) -> np.ndarray:
    """Voxel steps of each segment of a polyline: the largest per-axis change (int64)."""
    return np.abs(np.diff(points, axis=0)).max(axis=1) if len(points) > 1 else np.zeros(0, int)


def polyline_length(points: np.ndarray) -> int:
    """How many voxels `rasterize_polyline` visits (repeats included) before removing repeats:
    the cost of rasterising it, computed without rasterising (one pass over the points)."""
    points = np.asarray(points, dtype=np.int64).reshape(-1, 3)
    if len(points) <= 1:
        return len(points)
    return int((_steps(points) + 1).sum())


def check_polyline_budget(paths: list[np.ndarray], budget: int, what: str = "scribbles") -> None:
    """InvalidPrompt when the polylines together would rasterise to more than `budget` voxels
    (repeats included): cheap, so an oversized request is refused before any rasterising."""
    total = 0
    for path in paths:
        total += polyline_length(path)
        if total > budget:
            raise InvalidPrompt(f"the {what} trace more than {budget} voxels (the limit of marked "
                                "voxels per segment): draw shorter or fewer strokes")


def rasterize_polyline(points: np.ndarray) -> np.ndarray:
    """Voxels on the straight segments joining consecutive points, (N, 3) int, no gaps.

    Each segment a -> b is sampled at steps + 1 evenly spaced points (steps: its largest
    per-axis change) and rounded; all segments at once (no Python loop over points)."""
    points = np.asarray(points, dtype=np.int64).reshape(-1, 3)
    if len(points) <= 1:
        return points.copy()
    starts, ends = points[:-1], points[1:]
    counts = _steps(points) + 1
    segment = np.repeat(np.arange(len(counts)), counts)
    first = np.cumsum(counts) - counts  # index of each segment's first sample
    k = np.arange(len(segment)) - first[segment]  # sample number within its segment
    n = counts[segment]
    # exactly np.linspace(0, 1, n)[k] (k times the step, the last sample exactly 1), so the
    # rounding of points half-way between voxels is the same as the per-segment loop's was
    t = np.where(k == n - 1, 1.0, k * (1.0 / np.maximum(n - 1, 1)))
    t = np.where(n > 1, t, 0.0)[:, None]
    a, b = starts[segment], ends[segment]
    return np.unique(np.rint(a + t * (b - a)).astype(np.int64), axis=0)


def check_inside(points: np.ndarray, shape: tuple[int, int, int], what: str) -> None:
    points = np.asarray(points).reshape(-1, 3)
    bad = np.any((points < 0) | (points >= np.asarray(shape)), axis=1)
    if bad.any():
        p = points[np.argmax(bad)].tolist()
        raise InvalidPrompt(f"{what} point {p} (z, y, x) lies outside the image of shape "
                            f"{list(shape)}")


def _keys(points: np.ndarray) -> np.ndarray:
    """One int64 per voxel (z, y, x) of indices in [0, MAX_INDEX]: for set operations."""
    p = np.asarray(points, dtype=np.int64).reshape(-1, 3)
    bits = MAX_INDEX.bit_length()
    return (p[:, 0] << (2 * bits)) | (p[:, 1] << bits) | p[:, 2]


def merge_marks(old: Marks, new: Marks) -> Marks:
    """Cumulative marks after an interaction. A voxel marked both ways keeps the newest label,
    so a correcting click overrides an older one at the same place. Vectorised (a segment may
    hold ~1e5 marked voxels; Python sets of tuples took seconds)."""
    old_fg, old_bg = np.asarray(old.fg).reshape(-1, 3), np.asarray(old.bg).reshape(-1, 3)
    new_fg, new_bg = np.asarray(new.fg).reshape(-1, 3), np.asarray(new.bg).reshape(-1, 3)
    fg = np.concatenate([old_fg[~np.isin(_keys(old_fg), _keys(new_bg))], new_fg])
    bg = np.concatenate([old_bg[~np.isin(_keys(old_bg), _keys(new_fg))], new_bg])
    as_array = lambda pts: np.unique(np.asarray(pts, dtype=np.int64).reshape(-1, 3), axis=0)
    return Marks(as_array(fg), as_array(bg), [*old.boxes, *new.boxes], old.points.copy())


def restart_marks(old: Marks, new: Marks, plane: Plane | None) -> Marks:
    """Marks after an interaction that starts the segment afresh (interior margin points):
    the new marks replace every old mark on the interaction's plane (all of them in 3D);
    marks on other slices stay, as a 2D interaction leaves other slices alone."""
    kept = old.off_plane(plane)
    return Marks(np.concatenate([kept.fg, new.fg]), np.concatenate([kept.bg, new.bg]),
                 [*kept.boxes, *new.boxes], np.concatenate([kept.points, new.points]))


def drop_overridden(marks: Marks, roi: Box, mask: np.ndarray) -> Marks:
    """The cumulative marks without those a direct edit overrode: foreground marks on voxels
    of the ROI that the edited `mask` (bool, ROI-shaped) leaves background, background marks
    on voxels it makes foreground. Otherwise the next click would find them contradicted by the
    head and honour them again (the refinement contract), undoing the edit."""
    lo = np.asarray(roi.lo, dtype=np.int64)
    hi = np.asarray(roi.hi, dtype=np.int64)
    mask = np.asarray(mask, dtype=bool)

    def keep(points: np.ndarray, drop_where: bool) -> np.ndarray:
        points = np.asarray(points, dtype=np.int64).reshape(-1, 3)
        inside = np.all((points >= lo) & (points <= hi), axis=1)
        local = points[inside] - lo
        dropped = np.zeros(len(points), dtype=bool)
        dropped[inside] = mask[tuple(local.T)] == drop_where
        return points[~dropped]

    return Marks(keep(marks.fg, False), keep(marks.bg, True), list(marks.boxes),
                 marks.points.copy())


def plane_record(plane: Plane | None) -> dict | None:
    """JSON form of a plane as revisions record it: {"axis": "z", "index": 15}, None for 3D."""
    return None if plane is None else {"axis": "zyx"[plane.axis], "index": plane.index}


# Direct edits of the mask (issue 14: manual paint / erase / fill, and the editing tools
# select / brush / adjust). Their strokes and clicks say what to change, not a constraint for
# later clicks: they are recorded with the revision but never join the cumulative marks.
EDIT_KINDS = frozenset({"paint", "erase", "threshold", "fill", "select", "brush", "adjust"})


@dataclass(frozen=True)
class Prompt:
    """One user interaction, validated: its new marks and, for a 2D interaction, the plane.

    options: scalars an interaction carries besides its marks (`radius_mm`, `ball` for paint
    and erase; `amount` for adjust; `organ` for an organ start), JSON scalars only."""

    kind: str  # "click" | "scribble" | "box" | "points" | "organ" | one of EDIT_KINDS
    marks: Marks
    plane: Plane | None = None
    options: dict[str, float | bool | str] = field(default_factory=dict)

    @property
    def edits(self) -> bool:
        """A direct edit of the mask (EDIT_KINDS): its marks are not kept as constraints."""
        return self.kind in EDIT_KINDS

    @property
    def restarts(self) -> bool:
        """Interior margin points start the segment (on its plane) afresh; so does an organ
        start (RefineNet, issue 14), which has no marks: every old mark goes."""
        return self.kind in ("points", "organ")

    def apply_to(self, old: Marks) -> Marks:
        """The segment's cumulative marks after this interaction."""
        if self.edits:
            return Marks(old.fg.copy(), old.bg.copy(), list(old.boxes), old.points.copy())
        if self.restarts:
            return restart_marks(old, self.marks, self.plane)
        return merge_marks(old, self.marks)

    def check(self, shape: tuple[int, int, int]) -> None:
        """InvalidPrompt when a mark is outside the image or off the interaction's plane."""
        check_inside(self.marks.fg, shape, "foreground")
        check_inside(self.marks.bg, shape, "background")
        check_inside(self.marks.points, shape, "interior margin")
        for box in self.marks.boxes:
            check_inside(np.array([box.lo, box.hi]), shape, "box corner")
            if any(lo > hi for lo, hi in zip(box.lo, box.hi)):
                raise InvalidPrompt(f"box lo {list(box.lo)} must not exceed hi {list(box.hi)}")
        if self.plane is None:
            return
        axis, index = self.plane.axis, self.plane.index
        own = image_plane(shape)
        if own is not None and axis != own.axis:
            raise InvalidPrompt(
                f"plane {'zyx'[axis]}={index} does not exist on this image: it is 2D (shape "
                f"{list(shape)}), a single {'zyx'[own.axis]} plane, so a 2D interaction works on "
                f"{'zyx'[own.axis]}={own.index} (send that plane, or leave `plane` out)")
        if not 0 <= index < shape[axis]:
            raise InvalidPrompt(f"plane index {index} is outside 0..{shape[axis] - 1} on axis "
                                f"{'zyx'[axis]}")
        check_on_plane(self.marks, self.plane)


def image_plane(shape: tuple[int, ...]) -> Plane | None:
    """A 2D image's own plane (the first axis one voxel long: z=0 for a PNG, shape [1, Y, X]);
    None for a volume. A plane across another axis of a 2D image is a row of pixels."""
    thin = [k for k, n in enumerate(shape) if n == 1]
    return Plane(thin[0], 0) if thin else None


def check_on_plane(marks: Marks, plane: Plane | None) -> None:
    """InvalidPrompt naming the first mark (point or box corner) that is off `plane`."""
    if plane is None:
        return
    points = np.concatenate([np.asarray(marks.fg).reshape(-1, 3),
                             np.asarray(marks.bg).reshape(-1, 3),
                             np.asarray(marks.points).reshape(-1, 3),
                             *[np.array([b.lo, b.hi]) for b in marks.boxes]])
    off = points[:, plane.axis] != plane.index
    if off.any():
        raise InvalidPrompt(f"point {points[np.argmax(off)].tolist()} (z, y, x) is not on the "
                            f"2D plane {'zyx'[plane.axis]}={plane.index}")
