"""Right-angled building outlines: dominant-orientation orthogonalisation of a polygon."""

from __future__ import annotations

import math

import numpy as np
import shapely

__all__ = ["regularize_polygon"]


def _dominant_angle(polygon: shapely.Polygon) -> float:
    """Angle (radians, in [-pi/4, pi/4)) of the edge directions modulo 90°, length-weighted."""
    total = 0j
    for r in [polygon.exterior, *polygon.interiors]:
        d = np.diff(np.asarray(r.coords), axis=0)
        total += np.sum(np.hypot(d[:, 0], d[:, 1]) * np.exp(4j * np.arctan2(d[:, 1], d[:, 0])))
    if abs(total) < 1e-9 * max(polygon.length, 1e-300):  # no dominant direction (a circle)
        rect = np.asarray(shapely.oriented_envelope(polygon).exterior.coords)
        e = rect[1] - rect[0]
        return float(math.atan2(e[1], e[0]))
    return float(np.angle(total) / 4.0)


def _orthogonal_ring(pts: np.ndarray, eps: float) -> np.ndarray | None:
    """A closed ring (already rotated so that its main directions are the axes) with each run of
    near-horizontal (near-vertical) edges replaced by one horizontal (vertical) line at the runs'
    length-weighted mean position; None when fewer than four runs remain."""
    pts = pts[:-1]
    d = np.roll(pts, -1, 0) - pts
    length = np.hypot(d[:, 0], d[:, 1])
    horiz = np.abs(d[:, 0]) >= np.abs(d[:, 1])
    starts = np.flatnonzero(horiz != np.roll(horiz, 1))
    if len(starts) < 4:
        return None
    order = np.roll(np.arange(len(pts)), -starts[0])
    runs = []
    for i in order:
        mid = (pts[i] + pts[(i + 1) % len(pts)]) / 2.0
        if not runs or runs[-1][0] != horiz[i]:
            runs.append([horiz[i], 0.0, 0.0])
        runs[-1][1] += length[i] * (mid[1] if horiz[i] else mid[0])
        runs[-1][2] += length[i]
    values = [s / w if w > 0 else 0.0 for _, s, w in runs]
    verts = []
    for j, (h, _, _) in enumerate(runs):
        nxt = values[(j + 1) % len(runs)]
        verts.append((nxt, values[j]) if h else (values[j], nxt))
    ring = np.array(verts)
    changed = True
    while changed and len(ring) >= 4:  # drop repeated vertices, then collinear ones and spikes
        before = ring - np.roll(ring, 1, 0)
        keep = np.hypot(before[:, 0], before[:, 1]) > eps
        after = np.roll(ring, -1, 0) - ring
        keep &= np.abs(before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]) > eps * eps
        changed = not keep.all()
        ring = ring[keep]
    return np.vstack([ring, ring[:1]]) if len(ring) >= 4 else None


def regularize_polygon(polygon: shapely.Polygon, tolerance: float) -> shapely.Polygon:
    """A right-angled, parallel-edged version of ``polygon`` (same units as ``tolerance``).

    The outline is simplified (Douglas-Peucker, ``tolerance``: about 1.5 pixels removes a
    mask's staircase), its dominant direction found (length-weighted edge angles modulo 90°), and
    every ring rotated so that direction is horizontal; each run of near-horizontal (near-vertical)
    edges becomes one horizontal (vertical) line at the run's length-weighted mean position, the
    corners are those lines' intersections, and the result is rotated back. Holes that do not
    survive are dropped. When the result is not a valid polygon of 0.8 to 1.25 times the input's
    area, the polygon's minimum rotated rectangle is used if its area is in that range, else the
    simplified outline as it is (not right-angled).
    """
    if polygon.is_empty or polygon.area <= 0:
        return polygon
    simple = shapely.simplify(polygon, tolerance, preserve_topology=True)
    if simple.geom_type != "Polygon" or simple.is_empty:
        simple = polygon
    theta = _dominant_angle(simple)
    cx, cy = polygon.centroid.x, polygon.centroid.y
    c, s = math.cos(theta), math.sin(theta)
    eps = 1e-9 * max(math.sqrt(polygon.area), 1.0)

    def to_local(coords: np.ndarray) -> np.ndarray:  # rotate by -theta about the centroid
        x, y = coords[:, 0] - cx, coords[:, 1] - cy
        return np.column_stack([c * x + s * y, c * y - s * x])

    def to_world(coords: np.ndarray) -> np.ndarray:  # rotate by +theta, back in place
        x, y = coords[:, 0], coords[:, 1]
        return np.column_stack([c * x - s * y + cx, s * x + c * y + cy])

    def ok(candidate) -> bool:
        return (
            candidate is not None
            and candidate.geom_type == "Polygon"
            and candidate.is_valid
            and 0.8 <= candidate.area / polygon.area <= 1.25
        )

    shell = _orthogonal_ring(to_local(np.asarray(simple.exterior.coords)), eps)
    result = None
    if shell is not None:
        holes = [
            h
            for h in (
                _orthogonal_ring(to_local(np.asarray(r.coords)), eps) for r in simple.interiors
            )
            if h is not None
        ]
        for rings in (holes, []):
            candidate = shapely.Polygon(to_world(shell), [to_world(h) for h in rings])
            if ok(candidate):
                result = candidate
                break
    if result is None:
        rect = shapely.oriented_envelope(polygon)
        result = rect if ok(rect) else simple
    return result
