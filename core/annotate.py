"""Editing a label mask: brush and eraser strokes, flood fill, polygons, accepting a prediction,
a bounded undo stack and :class:`MaskEditor`, which ties them together with a dirty flag, an atomic
save and recovery copies.

Torch-free and Qt-free: the canvas turns mouse events into calls here and repaints only the
:class:`Region` that each call returns (``None`` means nothing changed, so nothing to repaint).

Coordinates: ``x`` is the column and ``y`` the row; the centre of pixel ``mask[r, c]`` is at
``(x, y) = (c, r)``. Positions may be fractional. A canvas whose scene coordinates put pixel ``c``
on ``[c, c + 1)`` passes ``scene_x - 0.5, scene_y - 0.5``. Positions outside the image are allowed:
strokes and polygons are clipped at the borders, and clicks (fill, connected roof) outside the image
change nothing.

Masks are ``(H, W)`` bool arrays (see :mod:`core.io`); every editing function modifies the mask in
place and returns the tight bounding box of the pixels it changed, or ``None``.
"""

from __future__ import annotations

import datetime as _dt
import io as _io
import json
import math
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from core.errors import ImageReadError, ImageWriteError
from core.io import atomic_output, write_mask

#: Smallest effective brush radius: a disk of this radius covers at least one pixel wherever it is.
MIN_RADIUS = math.sqrt(0.5) + 1e-9
#: Default number of undo steps kept by :class:`UndoStack` and :class:`MaskEditor`.
UNDO_LIMIT = 200
#: Default memory budget of an undo stack (patches are stored bit-packed, 1 bit per pixel).
UNDO_MAX_BYTES = 256 * 2**20

_FOUR = ndimage.generate_binary_structure(2, 1)
_EIGHT = ndimage.generate_binary_structure(2, 2)
_RECOVERY_FORMAT = "rooftop-recovery"
_RECOVERY_VERSION = 1

Point = tuple[float, float]


# --------------------------------------------------------------------------------------- regions


@dataclass(frozen=True)
class Region:
    """A half-open pixel rectangle: rows ``y0 <= r < y1``, columns ``x0 <= c < x1``."""

    y0: int
    y1: int
    x0: int
    x1: int

    def __post_init__(self) -> None:
        if self.y1 < self.y0 or self.x1 < self.x0:
            raise ValueError(f"invalid region {self}")

    @classmethod
    def full(cls, shape: tuple[int, ...]) -> Region:
        """The whole of an array of ``shape`` (H, W, ...)."""
        return cls(0, int(shape[0]), 0, int(shape[1]))

    @classmethod
    def from_slices(cls, slices: tuple[slice, slice]) -> Region:
        ys, xs = slices
        return cls(int(ys.start), int(ys.stop), int(xs.start), int(xs.stop))

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices: ``mask[region.slices]`` is the region's patch."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def area(self) -> int:
        return self.height * self.width

    @property
    def is_empty(self) -> bool:
        return self.area == 0

    def union(self, other: Region | None) -> Region:
        """The smallest region holding both (``other`` may be ``None``)."""
        if other is None:
            return self
        return Region(min(self.y0, other.y0), max(self.y1, other.y1),
                      min(self.x0, other.x0), max(self.x1, other.x1))

    __or__ = union

    def intersection(self, other: Region) -> Region | None:
        y0, y1 = max(self.y0, other.y0), min(self.y1, other.y1)
        x0, x1 = max(self.x0, other.x0), min(self.x1, other.x1)
        if y0 >= y1 or x0 >= x1:
            return None
        return Region(y0, y1, x0, x1)

    def expanded(self, margin: int, shape: tuple[int, ...] | None = None) -> Region:
        """Grown by ``margin`` pixels on every side, clipped to ``shape`` when given."""
        y0, y1, x0, x1 = self.y0 - margin, self.y1 + margin, self.x0 - margin, self.x1 + margin
        if shape is not None:
            y0, x0 = max(0, y0), max(0, x0)
            y1, x1 = min(int(shape[0]), y1), min(int(shape[1]), x1)
            y1, x1 = max(y0, y1), max(x0, x1)
        return Region(y0, y1, x0, x1)

    def contains(self, x: int, y: int) -> bool:
        return self.x0 <= x < self.x1 and self.y0 <= y < self.y1


def union_regions(*regions: Region | None) -> Region | None:
    """The union of the regions that are not ``None`` (``None`` when all are)."""
    out: Region | None = None
    for region in regions:
        if region is not None:
            out = region.union(out)
    return out


def _bbox(changed: np.ndarray, y0: int = 0, x0: int = 0) -> Region | None:
    """Tight bounding box of the True pixels of ``changed``, offset by ``(y0, x0)``."""
    rows = np.logical_or.reduce(changed, axis=1).nonzero()[0]
    if rows.size == 0:
        return None
    cols = np.logical_or.reduce(changed, axis=0).nonzero()[0]
    return Region(y0 + int(rows[0]), y0 + int(rows[-1]) + 1, x0 + int(cols[0]), x0 + int(cols[-1]) + 1)


# ------------------------------------------------------------------------------ argument checks


def _check_mask(mask: np.ndarray) -> None:
    if not isinstance(mask, np.ndarray) or mask.dtype != bool or mask.ndim != 2:
        raise TypeError("a mask must be a 2-D numpy bool array, got "
                        f"{getattr(mask, 'dtype', type(mask))} {getattr(mask, 'shape', '')}")


def _check_radius(radius: float) -> float:
    radius = float(radius)
    if not radius >= 0 or not math.isfinite(radius):
        raise ValueError(f"brush radius must be a finite number >= 0, got {radius}")
    return max(radius, MIN_RADIUS)


def _as_points(points: Iterable[Sequence[float]] | np.ndarray) -> np.ndarray:
    pts = np.asarray(list(points) if not isinstance(points, np.ndarray) else points, dtype=np.float64)
    if pts.size == 0:
        return pts.reshape(0, 2)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must be (x, y) pairs, got an array of shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("points must be finite numbers")
    return pts


def _pixel(mask: np.ndarray, x: float, y: float) -> tuple[int, int] | None:
    """``(row, col)`` of the pixel whose centre is nearest to ``(x, y)``; ``None`` outside."""
    if not (math.isfinite(x) and math.isfinite(y)):
        return None
    col, row = math.floor(x + 0.5), math.floor(y + 0.5)
    if 0 <= row < mask.shape[0] and 0 <= col < mask.shape[1]:
        return row, col
    return None


# -------------------------------------------------------------------------------------- brushes


# The brush code runs on every mouse move, so it works on plain Python floats (the same IEEE
# double arithmetic as numpy scalars, without their per-operation overhead) and calls numpy only
# on the small pixel boxes.

_XY = tuple[float, float]


def _clip_segment(p: Sequence[float], q: Sequence[float], xmin: float, xmax: float, ymin: float,
                  ymax: float) -> tuple[_XY, _XY] | None:
    """Liang-Barsky: the part of segment ``p``-``q`` inside the rectangle, or ``None``."""
    px, py = p
    dx, dy = q[0] - px, q[1] - py
    t0, t1 = 0.0, 1.0
    for pk, qk in ((-dx, px - xmin), (dx, xmax - px), (-dy, py - ymin), (dy, ymax - py)):
        if pk == 0:
            if qk < 0:
                return None
        else:
            t = qk / pk
            if pk < 0:
                t0 = max(t0, t)
            else:
                t1 = min(t1, t)
    if t0 > t1:
        return None
    return (px + t0 * dx, py + t0 * dy), (px + t1 * dx, py + t1 * dy)


def _segment_hit(shape: tuple[int, int], a: _XY, b: _XY,
                 radius: float) -> tuple[int, int, int, int, np.ndarray] | None:
    """Pixels whose centre lies within ``radius`` of segment ``a``-``b``, on its bounding box:
    ``(y0, y1, x0, x1, hit)``."""
    height, width = shape
    ax, ay = a
    bx, by = b
    x0 = max(0, math.ceil(min(ax, bx) - radius))
    x1 = min(width, math.floor(max(ax, bx) + radius) + 1)
    y0 = max(0, math.ceil(min(ay, by) - radius))
    y1 = min(height, math.floor(max(ay, by) + radius) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    xs = np.arange(x0, x1, dtype=np.float64)[None, :] - ax
    ys = np.arange(y0, y1, dtype=np.float64)[:, None] - ay
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    if length2 > 0.0:
        t = (xs * dx + ys * dy) * (1.0 / length2)
        np.minimum(np.maximum(t, 0.0, out=t), 1.0, out=t)  # clip to [0, 1]
        ex, ey = xs - t * dx, ys - t * dy
        dist2 = ex * ex + ey * ey
    else:
        dist2 = xs * xs + ys * ys
    hit = dist2 <= radius * radius * (1.0 + 1e-12)
    return y0, y1, x0, x1, hit


def _stroke_pieces(shape: tuple[int, int], points: Sequence[Sequence[float]],
                   radius: float) -> Iterator[tuple[int, int, int, int, np.ndarray]]:
    """Cover the stroke through ``points`` with short pieces, each with a small bounding box."""
    if len(points) == 0:
        return
    height, width = shape
    # Pieces no longer than the brush diameter keep every bounding box small, even for a stroke
    # across the whole image; the union of the pieces' disks is exactly the stroke.
    step = max(2.0 * radius, 16.0)
    segments = [(points[0], points[0])] if len(points) == 1 else zip(points[:-1], points[1:], strict=True)
    for p, q in segments:
        clipped = _clip_segment(p, q, -radius - 1.0, width + radius, -radius - 1.0, height + radius)
        if clipped is None:
            continue
        (ax, ay), (bx, by) = clipped
        dx, dy = bx - ax, by - ay
        n = max(1, math.ceil(float(np.hypot(dx, dy)) / step))
        for i in range(n):
            f0, f1 = i / n, (i + 1) / n
            piece = _segment_hit(shape, (ax + dx * f0, ay + dy * f0), (ax + dx * f1, ay + dy * f1),
                                 radius)
            if piece is not None:
                yield piece


def _paint(mask: np.ndarray, pieces: Iterable[tuple[int, int, int, int, np.ndarray]], value: bool,
           before_change=None) -> Region | None:
    """Set the hit pixels of each piece to ``value``; ``before_change(region)`` is called first."""
    changed_region: Region | None = None
    for y0, y1, x0, x1, hit in pieces:
        patch = mask[y0:y1, x0:x1]
        change = hit > patch if value else hit & patch  # (bools: hit > patch is hit & ~patch)
        tight = _bbox(change, y0, x0)
        if tight is None:
            continue
        if before_change is not None:
            before_change(tight)
        if value:
            patch |= hit
        else:
            patch &= ~hit
        changed_region = tight.union(changed_region)
    return changed_region


def stamp_disk(mask: np.ndarray, x: float, y: float, radius: float, value: bool = True) -> Region | None:
    """Set every pixel whose centre is within ``radius`` of ``(x, y)`` to ``value``.

    ``radius`` below ``sqrt(0.5)`` is raised to it, so a stamp always covers at least one pixel when
    its centre is inside the image. Returns the changed region, ``None`` if nothing changed.
    """
    return paint_stroke(mask, [(x, y)], radius, value)


def paint_stroke(mask: np.ndarray, points: Iterable[Sequence[float]] | np.ndarray, radius: float,
                 value: bool = True) -> Region | None:
    """Paint (``value=True``) or erase (``False``) a continuous stroke through ``points``.

    The stroke is every pixel whose centre is within ``radius`` of the polyline through the
    ``(x, y)`` points, so far-apart points (a fast mouse) leave no gaps. Work is done only on small
    bounding boxes along the stroke, never on the whole image.
    """
    _check_mask(mask)
    pts = _as_points(points).tolist()
    return _paint(mask, _stroke_pieces(mask.shape, pts, _check_radius(radius)), bool(value))


# --------------------------------------------------------------------------- plans (no writes)
# A plan is ``(region, new_patch)``: the new content of the tight region holding every change.
# Computing the change before writing it lets MaskEditor copy the "before" patch cheaply.

_Plan = tuple[Region, np.ndarray]


def _apply(mask: np.ndarray, plan: _Plan | None) -> Region | None:
    if plan is None:
        return None
    region, new = plan
    mask[region.slices] = new
    return region


def _component(mask: np.ndarray, x: float, y: float, structure: np.ndarray,
               target: bool) -> tuple[Region, np.ndarray] | None:
    """The connected component of pixels equal to ``target`` at ``(x, y)``: bbox and its patch."""
    pixel = _pixel(mask, x, y)
    if pixel is None or bool(mask[pixel]) != target:
        return None
    labels, _ = ndimage.label(mask if target else ~mask, structure=structure)
    label = int(labels[pixel])
    slices = ndimage.find_objects(labels, max_label=label)[label - 1]
    region = Region.from_slices(slices)
    return region, labels[slices] == label


def _plan_set(mask: np.ndarray, region: Region, selected: np.ndarray, value: bool) -> _Plan | None:
    """Plan setting the ``selected`` pixels of ``region`` to ``value`` (tight, ``None`` if no-op)."""
    patch = mask[region.slices]
    change = selected & ~patch if value else selected & patch
    tight = _bbox(change, region.y0, region.x0)
    if tight is None:
        return None
    sub = (slice(tight.y0 - region.y0, tight.y1 - region.y0),
           slice(tight.x0 - region.x0, tight.x1 - region.x0))
    new = mask[tight.slices].copy()
    new[change[sub]] = value
    return tight, new


def _plan_fill(mask: np.ndarray, x: float, y: float, value: bool) -> _Plan | None:
    _check_mask(mask)
    value = bool(value)
    found = _component(mask, x, y, _FOUR, not value)
    if found is None:  # outside the image, or the pixel already has the value
        return None
    region, component = found
    new = mask[region.slices].copy()
    new[component] = value
    return region, new


def _plan_polygon(mask: np.ndarray, points, value: bool) -> _Plan | None:
    _check_mask(mask)
    pts = _as_points(points)
    if len(pts) < 3:
        return None
    vertices = np.floor(pts + 0.5).astype(np.int64)
    height, width = mask.shape
    x0, x1 = max(0, int(vertices[:, 0].min())), min(width, int(vertices[:, 0].max()) + 1)
    y0, y1 = max(0, int(vertices[:, 1].min())), min(height, int(vertices[:, 1].max()) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    canvas = Image.new("L", (x1 - x0, y1 - y0), 0)
    shifted = [(int(vx) - x0, int(vy) - y0) for vx, vy in vertices]
    ImageDraw.Draw(canvas).polygon(shifted, fill=1, outline=1)
    return _plan_set(mask, Region(y0, y1, x0, x1), np.asarray(canvas, dtype=bool), bool(value))


def _check_prediction(label: np.ndarray, prediction: np.ndarray) -> None:
    _check_mask(label)
    if not isinstance(prediction, np.ndarray) or prediction.dtype != bool:
        raise TypeError("the prediction must be a bool mask; threshold probabilities first "
                        "(core.postprocess.to_mask)")
    if prediction.shape != label.shape:
        raise ValueError(f"prediction is {prediction.shape[1]} x {prediction.shape[0]} but the label "
                         f"is {label.shape[1]} x {label.shape[0]}")


def _plan_accept(label: np.ndarray, prediction: np.ndarray, at: Point | None) -> _Plan | None:
    _check_prediction(label, prediction)
    if at is None:
        region = _bbox(label != prediction)
        if region is None:
            return None
        return region, prediction[region.slices].copy()
    found = _component(prediction, float(at[0]), float(at[1]), _EIGHT, True)
    if found is None:
        return None
    region, component = found
    return _plan_set(label, region, component, True)


# ------------------------------------------------------------------------------ one-shot edits


def flood_fill(mask: np.ndarray, x: float, y: float, value: bool = True) -> Region | None:
    """Set the 4-connected area of equal pixels containing ``(x, y)`` to ``value``.

    Filling inside a closed roof outline fills the roof (4-connectivity: a diagonal one-pixel line
    is a closed wall). ``None`` when ``(x, y)`` is outside the image or already has ``value``.
    """
    return _apply(mask, _plan_fill(mask, x, y, value))


def fill_polygon(mask: np.ndarray, points: Iterable[Sequence[float]] | np.ndarray,
                 value: bool = True) -> Region | None:
    """Fill the polygon through the ``(x, y)`` vertices (rounded to pixels), boundary included.

    Needs at least 3 points (else ``None``); parts outside the image are clipped.
    """
    return _apply(mask, _plan_polygon(mask, points, value))


def connected_roof(mask: np.ndarray, x: float, y: float) -> np.ndarray | None:
    """The 8-connected component of True pixels at ``(x, y)`` as a full-size bool mask.

    ``None`` when ``(x, y)`` is background or outside the image.
    """
    _check_mask(mask)
    found = _component(mask, x, y, _EIGHT, True)
    if found is None:
        return None
    region, component = found
    out = np.zeros(mask.shape, dtype=bool)
    out[region.slices] = component
    return out


def accept_prediction(label: np.ndarray, prediction: np.ndarray,
                      at: Point | None = None) -> Region | None:
    """Copy a predicted mask into ``label``.

    ``at=None`` replaces the whole label by the prediction. ``at=(x, y)`` adds only the predicted
    roof (8-connected component) under that point (``label |= component``), leaving the rest of
    the label untouched; ``None`` if no roof is predicted there.
    """
    return _apply(label, _plan_accept(label, prediction, at))


# ------------------------------------------------------------------------------------ undo/redo


@dataclass(frozen=True, eq=False)
class Edit:
    """One undo step: the pixels of ``parts`` before and after the edit, stored bit-packed.

    ``region`` is the bounding box of the change (what to repaint). ``parts`` are disjoint
    rectangles inside it whose pixels are stored, in order, each row-major; pixels of ``region``
    outside them did not change. Empty ``parts`` (the default) means the whole ``region``. A brush
    stroke stores only the tiles it changed, so a long diagonal stroke costs its own area, not the
    area of its bounding box.
    """

    region: Region
    before_bits: np.ndarray = field(repr=False)
    after_bits: np.ndarray = field(repr=False)
    revision_before: int = 0
    revision_after: int = 0
    parts: tuple[Region, ...] = ()

    @classmethod
    def from_patches(cls, region: Region, before: np.ndarray, after: np.ndarray,
                     revision_before: int = 0, revision_after: int = 0) -> Edit:
        if before.shape != region.shape or after.shape != region.shape:
            raise ValueError(f"patches {before.shape}/{after.shape} do not match region {region}")
        return cls(region, np.packbits(before, axis=None), np.packbits(after, axis=None),
                   revision_before, revision_after)

    @classmethod
    def from_parts(cls, region: Region, parts: Sequence[Region], before: Sequence[np.ndarray],
                   after: Sequence[np.ndarray], revision_before: int = 0,
                   revision_after: int = 0) -> Edit:
        """An edit that changed only ``parts`` (disjoint, inside ``region``) from ``before[i]``
        to ``after[i]``."""
        parts = tuple(parts)
        if not parts or len(before) != len(parts) or len(after) != len(parts):
            raise ValueError("give one before and one after patch for each of at least one part")
        for part, b, a in zip(parts, before, after, strict=True):
            shape = (part.y1 - part.y0, part.x1 - part.x0)
            if b.shape != shape or a.shape != shape:
                raise ValueError(f"patches {b.shape}/{a.shape} do not match part {part}")
            if part.y0 < region.y0 or part.x0 < region.x0 or part.y1 > region.y1 \
                    or part.x1 > region.x1:
                raise ValueError(f"part {part} is not inside region {region}")

        def pack(patches: Sequence[np.ndarray]) -> np.ndarray:
            return np.packbits(np.concatenate([np.ravel(p) for p in patches]).astype(bool, copy=False))

        return cls(region, pack(before), pack(after), revision_before, revision_after, parts)

    @property
    def stored_parts(self) -> tuple[Region, ...]:
        """The rectangles whose pixels are stored (``(region,)`` for a whole-region edit)."""
        return self.parts or (self.region,)

    def _flat(self, bits: np.ndarray) -> np.ndarray:
        count = sum(part.area for part in self.stored_parts)
        return np.unpackbits(bits, count=count).view(bool)

    def _unpack(self, bits: np.ndarray) -> np.ndarray:
        if self.parts and self.parts != (self.region,):
            raise ValueError("this edit stores only the parts it changed: use apply() on the mask")
        return self._flat(bits).reshape(self.region.shape)

    @property
    def before(self) -> np.ndarray:
        """The whole region before the edit (whole-region edits only; see :meth:`apply`)."""
        return self._unpack(self.before_bits)

    @property
    def after(self) -> np.ndarray:
        """The whole region after the edit (whole-region edits only; see :meth:`apply`)."""
        return self._unpack(self.after_bits)

    def apply(self, mask: np.ndarray, after: bool) -> Region:
        """Write the stored ``after`` (redo) or ``before`` (undo) pixels into ``mask``."""
        flat = self._flat(self.after_bits if after else self.before_bits)
        offset = 0
        for part in self.stored_parts:
            mask[part.slices] = flat[offset:offset + part.area].reshape(part.shape)
            offset += part.area
        return self.region

    @property
    def nbytes(self) -> int:
        return int(self.before_bits.nbytes + self.after_bits.nbytes)


class UndoStack:
    """A bounded linear undo history of :class:`Edit` steps.

    ``push`` adds a step and clears the redo branch; past ``limit`` steps (or ``max_bytes`` of
    patches; the newest step is always kept) the oldest steps are dropped.
    """

    def __init__(self, limit: int = UNDO_LIMIT, max_bytes: int = UNDO_MAX_BYTES):
        if int(limit) < 1:
            raise ValueError(f"undo limit must be at least 1, got {limit}")
        self.limit = int(limit)
        self.max_bytes = int(max_bytes)
        self._undo: list[Edit] = []
        self._redo: list[Edit] = []
        self._nbytes = 0

    def push(self, edit: Edit) -> None:
        self._nbytes -= sum(e.nbytes for e in self._redo)
        self._redo.clear()
        self._undo.append(edit)
        self._nbytes += edit.nbytes
        while len(self._undo) > self.limit or (self._nbytes > self.max_bytes and len(self._undo) > 1):
            self._nbytes -= self._undo.pop(0).nbytes

    def record(self, region: Region, before: np.ndarray, after: np.ndarray,
               revision_before: int = 0, revision_after: int = 0) -> Edit:
        """Push the step that changed ``region`` from ``before`` to ``after`` (bool patches)."""
        edit = Edit.from_patches(region, before, after, revision_before, revision_after)
        self.push(edit)
        return edit

    def undo(self, mask: np.ndarray) -> Region | None:
        """Restore the newest step's ``before`` patch into ``mask``; ``None`` if nothing to undo."""
        if not self._undo:
            return None
        edit = self._undo.pop()
        edit.apply(mask, after=False)
        self._redo.append(edit)
        return edit.region

    def redo(self, mask: np.ndarray) -> Region | None:
        """Re-apply the last undone step; ``None`` if nothing to redo."""
        if not self._redo:
            return None
        edit = self._redo.pop()
        edit.apply(mask, after=True)
        self._undo.append(edit)
        return edit.region

    def peek_undo(self) -> Edit | None:
        return self._undo[-1] if self._undo else None

    def peek_redo(self) -> Edit | None:
        return self._redo[-1] if self._redo else None

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_count(self) -> int:
        return len(self._undo)

    @property
    def redo_count(self) -> int:
        return len(self._redo)

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self._nbytes = 0


class _TileSnapshot:
    """Copies of the mask's tiles taken just before a stroke first changes them.

    Press and moves copy only the tiles a stroke reaches (``tile`` x ``tile`` pixels, clipped at
    the border); release turns the tiles that changed into one undo step. Nothing here touches the
    whole mask or the stroke's bounding box, so the cost follows the painted area.
    """

    def __init__(self, tile: int = 64):
        self.tile = tile
        self.tiles: dict[tuple[int, int], np.ndarray] = {}

    def _region(self, key: tuple[int, int], saved: np.ndarray) -> Region:
        y0, x0 = key[0] * self.tile, key[1] * self.tile
        return Region(y0, y0 + saved.shape[0], x0, x0 + saved.shape[1])

    def capture(self, mask: np.ndarray, region: Region) -> None:
        t = self.tile
        for ty in range(region.y0 // t, (region.y1 - 1) // t + 1):
            for tx in range(region.x0 // t, (region.x1 - 1) // t + 1):
                if (ty, tx) not in self.tiles:
                    self.tiles[ty, tx] = mask[ty * t:(ty + 1) * t, tx * t:(tx + 1) * t].copy()

    def changed(self, mask: np.ndarray,
                bounds: Region) -> tuple[list[Region], list[np.ndarray], list[np.ndarray]]:
        """The copied tiles clipped to ``bounds`` (which holds every change): their regions, their
        content before the stroke and now. (Every copied tile had a change in its box, so nearly
        all differ; comparing them would cost more than the few bytes it could save.)"""
        t = self.tile
        parts, before, after = [], [], []
        for (ty, tx), saved in self.tiles.items():
            ty0, tx0 = ty * t, tx * t
            y0, y1 = max(ty0, bounds.y0), min(ty0 + saved.shape[0], bounds.y1)
            x0, x1 = max(tx0, bounds.x0), min(tx0 + saved.shape[1], bounds.x1)
            if y0 >= y1 or x0 >= x1:
                continue
            parts.append(Region(y0, y1, x0, x1))
            before.append(saved[y0 - ty0:y1 - ty0, x0 - tx0:x1 - tx0])
            after.append(mask[y0:y1, x0:x1])
        return parts, before, after

    def restore(self, mask: np.ndarray) -> None:
        """Put every copied tile back (the mask as it was before the stroke)."""
        for key, saved in self.tiles.items():
            mask[self._region(key, saved).slices] = saved


@dataclass
class _Stroke:
    value: bool
    radius: float
    revision_before: int
    last: tuple[float, float] | None = None
    region: Region | None = None
    snapshot: _TileSnapshot = field(default_factory=_TileSnapshot)


# ----------------------------------------------------------------------------------- recovery


@dataclass(frozen=True)
class RecoveryCopy:
    """What :func:`load_recovery` reads back: the mask, the label file it belongs to, metadata."""

    mask: np.ndarray
    label_path: Path | None
    metadata: dict


def save_recovery(path: str | Path, mask: np.ndarray, label_path: str | Path | None = None,
                  metadata: dict | None = None) -> Path:
    """Write ``mask`` and the label path it belongs to into one ``.npz`` file, atomically.

    ``metadata`` (JSON-serialisable) is stored alongside and returned by :func:`load_recovery`.
    """
    _check_mask(mask)
    path = Path(path)
    meta = {
        "format": _RECOVERY_FORMAT,
        "version": _RECOVERY_VERSION,
        "label_path": str(label_path) if label_path is not None else None,
        "shape": list(mask.shape),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "metadata": dict(metadata or {}),
    }
    try:
        meta_json = json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"recovery metadata must be JSON-serialisable: {exc}") from exc
    buffer = _io.BytesIO()
    np.savez_compressed(buffer, mask=np.packbits(mask, axis=None), meta=np.array(meta_json))
    try:
        with atomic_output(path) as tmp:
            tmp.write_bytes(buffer.getvalue())
    except ImageWriteError:
        raise
    except Exception as exc:
        raise ImageWriteError(f"cannot write the recovery copy ({exc})", path) from exc
    return path


def load_recovery(path: str | Path) -> RecoveryCopy:
    """Read a file written by :func:`save_recovery`; ImageReadError naming it if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError("recovery file not found", path)
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"][()]))
            bits = data["mask"]
        if meta.get("format") != _RECOVERY_FORMAT:
            raise ValueError("not a Rooftop recovery file")
        if int(meta.get("version", 0)) > _RECOVERY_VERSION:
            raise ValueError(f"written by a newer version (format {meta.get('version')})")
        height, width = (int(v) for v in meta["shape"])
        if height < 0 or width < 0 or bits.size * 8 < height * width:
            raise ValueError("mask data is truncated")
        mask = np.unpackbits(bits, count=height * width).astype(bool).reshape(height, width)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise ImageReadError(f"not a readable recovery copy ({exc})", path) from exc
    label = meta.get("label_path")
    return RecoveryCopy(mask, Path(label) if label else None, dict(meta.get("metadata") or {}))


# ------------------------------------------------------------------------------------- editor


class MaskEditor:
    """One label mask being edited: tools, undo/redo, dirty flag, atomic save, recovery copies.

    ``MaskEditor(mask)`` edits a copy of ``mask``; ``MaskEditor(None, shape)`` starts from an empty
    mask (an image without a label: the first :meth:`save` creates the label file). Read the live
    mask from :attr:`mask` (do not modify it directly; use the methods so undo stays right).

    Every method that changes the mask returns the changed :class:`Region` (``None`` when nothing
    changed; then no undo step is recorded). A brush stroke -- :meth:`begin_stroke` on press,
    :meth:`stroke_to` on every move, :meth:`end_stroke` on release -- is a single undo step. Any
    other edit, undo or redo ends an open stroke first.

    :attr:`revision` identifies the mask's content: every change gets a new number, and undo/redo
    go back to the number the restored state had. :attr:`dirty` is ``revision != saved_revision``,
    so undoing back to the saved state makes the editor clean again.
    """

    def __init__(self, mask: np.ndarray | None = None, shape: tuple[int, int] | None = None, *,
                 path: str | Path | None = None, undo_limit: int = UNDO_LIMIT,
                 undo_max_bytes: int = UNDO_MAX_BYTES):
        if mask is None:
            if shape is None:
                raise ValueError("give a mask or the shape (H, W) of an empty one")
            height, width = (int(v) for v in shape)
            if height <= 0 or width <= 0:
                raise ValueError(f"mask shape must be positive, got {shape}")
            self._mask = np.zeros((height, width), dtype=bool)
        else:
            array = np.asarray(mask)
            if array.ndim != 2:
                raise ValueError(f"a mask must be 2-D, got shape {array.shape}")
            if shape is not None and tuple(shape) != array.shape:
                raise ValueError(f"mask shape {array.shape} differs from the given shape {tuple(shape)}")
            self._mask = np.array(array != 0 if array.dtype != bool else array, dtype=bool, order="C")
        self.path: Path | None = Path(path) if path is not None else None
        self.undo_stack = UndoStack(undo_limit, undo_max_bytes)
        self._next_revision = 0
        self.revision = 0
        self.saved_revision: int | None = 0
        self._stroke: _Stroke | None = None

    # -- state ---------------------------------------------------------------------------------

    @property
    def mask(self) -> np.ndarray:
        return self._mask

    @property
    def shape(self) -> tuple[int, int]:
        return self._mask.shape  # type: ignore[return-value]

    @property
    def dirty(self) -> bool:
        return self.revision != self.saved_revision

    @property
    def can_undo(self) -> bool:
        return self.undo_stack.can_undo or self._stroke_changed()

    @property
    def can_redo(self) -> bool:
        return self.undo_stack.can_redo and self._stroke is None

    @property
    def in_stroke(self) -> bool:
        return self._stroke is not None

    def mark_saved(self) -> None:
        """Declare the current content saved (e.g. written elsewhere): ``dirty`` becomes False."""
        self.saved_revision = self.revision

    def _new_revision(self) -> int:
        self._next_revision += 1
        self.revision = self._next_revision
        return self.revision

    def _stroke_changed(self) -> bool:
        return self._stroke is not None and self._stroke.region is not None

    # -- brush ---------------------------------------------------------------------------------

    def begin_stroke(self, value: bool = True, radius: float = 5.0) -> None:
        """Start a brush (``value=True``) or eraser (``False``) stroke of ``radius`` pixels."""
        self.end_stroke()
        self._stroke = _Stroke(bool(value), _check_radius(radius), self.revision)

    def stroke_to(self, x: float, y: float) -> Region | None:
        """Extend the open stroke to ``(x, y)`` (the first call stamps one disk).

        Returns the region changed by this call; ``None`` if nothing changed or no stroke is open.
        """
        stroke = self._stroke
        if stroke is None:
            return None
        point = (float(x), float(y))
        if not (math.isfinite(point[0]) and math.isfinite(point[1])):
            return None
        points = [point] if stroke.last is None else [stroke.last, point]
        stroke.last = point
        changed = _paint(self._mask, _stroke_pieces(self.shape, points, stroke.radius), stroke.value,
                         before_change=lambda region: stroke.snapshot.capture(self._mask, region))
        if changed is not None:
            stroke.region = changed.union(stroke.region)
            self._new_revision()
        return changed

    def end_stroke(self) -> Region | None:
        """Close the open stroke as one undo step; returns the whole stroke's changed region."""
        stroke, self._stroke = self._stroke, None
        if stroke is None or stroke.region is None:
            return None
        region = stroke.region
        parts, before, after = stroke.snapshot.changed(self._mask, region)
        if parts:  # (a stroke only ever sets pixels to one value, so what changed stays changed)
            self.undo_stack.push(Edit.from_parts(region, parts, before, after,
                                                 stroke.revision_before, self.revision))
        return region

    def cancel_stroke(self) -> Region | None:
        """Undo the open stroke without recording it (Escape while painting)."""
        stroke, self._stroke = self._stroke, None
        if stroke is None or stroke.region is None:
            return None
        region = stroke.region
        stroke.snapshot.restore(self._mask)
        self.revision = stroke.revision_before
        return region

    def stamp(self, x: float, y: float, value: bool = True, radius: float = 5.0) -> Region | None:
        """A single click with the brush: one disk, one undo step."""
        self.begin_stroke(value, radius)
        self.stroke_to(x, y)
        return self.end_stroke()

    # -- one-shot tools ------------------------------------------------------------------------

    def _commit(self, plan: _Plan | None) -> Region | None:
        if plan is None:
            return None
        region, new = plan
        before = self._mask[region.slices].copy()
        self._mask[region.slices] = new
        revision_before = self.revision
        self.undo_stack.record(region, before, new, revision_before, self._new_revision())
        return region

    def fill(self, x: float, y: float, value: bool = True) -> Region | None:
        """Flood fill (see :func:`flood_fill`) as one undo step."""
        self.end_stroke()
        return self._commit(_plan_fill(self._mask, x, y, value))

    def polygon(self, points: Iterable[Sequence[float]] | np.ndarray, value: bool = True) -> Region | None:
        """Fill a polygon (see :func:`fill_polygon`) as one undo step."""
        self.end_stroke()
        return self._commit(_plan_polygon(self._mask, points, value))

    def accept_prediction(self, prediction: np.ndarray, at: Point | None = None) -> Region | None:
        """Accept the whole prediction, or the predicted roof under ``at`` (see
        :func:`accept_prediction`), as one undo step."""
        self.end_stroke()
        return self._commit(_plan_accept(self._mask, prediction, at))

    def clear(self) -> Region | None:
        """Erase the whole mask as one undo step."""
        self.end_stroke()
        region = _bbox(self._mask)
        if region is None:
            return None
        return self._commit((region, np.zeros(region.shape, dtype=bool)))

    # -- history -------------------------------------------------------------------------------

    def undo(self) -> Region | None:
        self.end_stroke()
        edit = self.undo_stack.peek_undo()
        region = self.undo_stack.undo(self._mask)
        if edit is not None:
            self.revision = edit.revision_before
        return region

    def redo(self) -> Region | None:
        self.end_stroke()
        edit = self.undo_stack.peek_redo()
        region = self.undo_stack.redo(self._mask)
        if edit is not None:
            self.revision = edit.revision_after
        return region

    # -- files ---------------------------------------------------------------------------------

    def save(self, path: str | Path | None = None) -> Path:
        """Write the mask as a 0/255 PNG atomically (to :attr:`path` when ``path`` is omitted).

        On success ``dirty`` becomes False and :attr:`path` is set. Any failure raises
        :class:`ImageWriteError` naming the file; the mask stays in memory and dirty. An open stroke
        stays open (saving mid-stroke saves what is painted so far).
        """
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no label path to save to")
        try:
            write_mask(target, self._mask)
        except ImageWriteError:
            raise
        except Exception as exc:  # any other failure must reach the user as a write error
            raise ImageWriteError(f"cannot save the label ({exc})", target) from exc
        self.path = target
        self.saved_revision = self.revision
        return target

    def save_recovery(self, path: str | Path, metadata: dict | None = None) -> Path:
        """Write a recovery copy of the current mask (with :attr:`path`) atomically; see
        :func:`save_recovery`. Does not change ``dirty``."""
        return save_recovery(path, self._mask, self.path, metadata)

    @classmethod
    def from_recovery(cls, path: str | Path, **kwargs) -> MaskEditor:
        """An editor holding a recovered mask (dirty: it differs from what is on disk)."""
        copy = load_recovery(path)
        editor = cls(copy.mask, path=copy.label_path, **kwargs)
        editor.saved_revision = None
        return editor
