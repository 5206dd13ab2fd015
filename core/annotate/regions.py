"""Pixel regions and the geometry under the editing tools: :class:`Region` (the rectangle every
edit returns, what the canvas repaints), argument checks, and the brush's segment maths.

Coordinates: ``x`` is the column and ``y`` the row; the centre of pixel ``mask[r, c]`` is at
``(x, y) = (c, r)`` (see :mod:`core.annotate`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

#: Smallest effective brush radius: a disk of this radius covers at least one pixel wherever it is.
MIN_RADIUS = math.sqrt(0.5) + 1e-9

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
        return Region(
            min(self.y0, other.y0),
            max(self.y1, other.y1),
            min(self.x0, other.x0),
            max(self.x1, other.x1),
        )

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
    return Region(
        y0 + int(rows[0]), y0 + int(rows[-1]) + 1, x0 + int(cols[0]), x0 + int(cols[-1]) + 1
    )


# ------------------------------------------------------------------------------ argument checks


def _check_mask(mask: np.ndarray) -> None:
    if not isinstance(mask, np.ndarray) or mask.dtype != bool or mask.ndim != 2:
        raise TypeError(
            "a mask must be a 2-D numpy bool array, got "
            f"{getattr(mask, 'dtype', type(mask))} {getattr(mask, 'shape', '')}"
        )


def _check_radius(radius: float) -> float:
    radius = float(radius)
    if not radius >= 0 or not math.isfinite(radius):
        raise ValueError(f"brush radius must be a finite number >= 0, got {radius}")
    return max(radius, MIN_RADIUS)


def _as_points(points: Iterable[Sequence[float]] | np.ndarray) -> np.ndarray:
    pts = np.asarray(
        list(points) if not isinstance(points, np.ndarray) else points, dtype=np.float64
    )
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


# ------------------------------------------------------------------------------ brush geometry


# The brush code runs on every mouse move, so it works on plain Python floats (the same IEEE
# double arithmetic as numpy scalars, without their per-operation overhead) and calls numpy only
# on the small pixel boxes.

_XY = tuple[float, float]


def _clip_segment(
    p: Sequence[float], q: Sequence[float], xmin: float, xmax: float, ymin: float, ymax: float
) -> tuple[_XY, _XY] | None:
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


def _segment_hit(
    shape: tuple[int, int], a: _XY, b: _XY, radius: float
) -> tuple[int, int, int, int, np.ndarray] | None:
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


def _stroke_pieces(
    shape: tuple[int, int], points: Sequence[Sequence[float]], radius: float
) -> Iterator[tuple[int, int, int, int, np.ndarray]]:
    """Cover the stroke through ``points`` with short pieces, each with a small bounding box."""
    if len(points) == 0:
        return
    height, width = shape
    # Pieces no longer than the brush diameter keep every bounding box small, even for a stroke
    # across the whole image; the union of the pieces' disks is exactly the stroke.
    step = max(2.0 * radius, 16.0)
    segments = (
        [(points[0], points[0])] if len(points) == 1 else zip(points[:-1], points[1:], strict=True)
    )
    for p, q in segments:
        clipped = _clip_segment(p, q, -radius - 1.0, width + radius, -radius - 1.0, height + radius)
        if clipped is None:
            continue
        (ax, ay), (bx, by) = clipped
        dx, dy = bx - ax, by - ay
        n = max(1, math.ceil(float(np.hypot(dx, dy)) / step))
        for i in range(n):
            f0, f1 = i / n, (i + 1) / n
            piece = _segment_hit(
                shape, (ax + dx * f0, ay + dy * f0), (ax + dx * f1, ay + dy * f1), radius
            )
            if piece is not None:
                yield piece
