"""Raster edits of a label mask: brush and eraser strokes, flood fill, polygons, accepting a
prediction.

Every function modifies the mask in place and returns the tight bounding :class:`Region` of the
pixels it changed, or ``None``. The ``_plan_*`` functions compute an edit without writing it, so
that :class:`core.annotate.editor.MaskEditor` can copy the "before" patch cheaply.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from core.annotate.regions import (
    Point,
    Region,
    _as_points,
    _bbox,
    _check_mask,
    _check_radius,
    _pixel,
    _stroke_pieces,
)

_FOUR = ndimage.generate_binary_structure(2, 1)
_EIGHT = ndimage.generate_binary_structure(2, 2)


def _paint(
    mask: np.ndarray,
    pieces: Iterable[tuple[int, int, int, int, np.ndarray]],
    value: bool,
    before_change=None,
) -> Region | None:
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


def stamp_disk(
    mask: np.ndarray, x: float, y: float, radius: float, value: bool = True
) -> Region | None:
    """Set every pixel whose centre is within ``radius`` of ``(x, y)`` to ``value``.

    ``radius`` below ``sqrt(0.5)`` is raised to it, so a stamp always covers at least one pixel when
    its centre is inside the image. Returns the changed region, ``None`` if nothing changed.
    """
    return paint_stroke(mask, [(x, y)], radius, value)


def paint_stroke(
    mask: np.ndarray,
    points: Iterable[Sequence[float]] | np.ndarray,
    radius: float,
    value: bool = True,
) -> Region | None:
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


def _component(
    mask: np.ndarray, x: float, y: float, structure: np.ndarray, target: bool
) -> tuple[Region, np.ndarray] | None:
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
    sub = (
        slice(tight.y0 - region.y0, tight.y1 - region.y0),
        slice(tight.x0 - region.x0, tight.x1 - region.x0),
    )
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
        raise TypeError(
            "the prediction must be a bool mask; threshold probabilities first "
            "(core.postprocess.to_mask)"
        )
    if prediction.shape != label.shape:
        raise ValueError(
            f"prediction is {prediction.shape[1]} x {prediction.shape[0]} but the label "
            f"is {label.shape[1]} x {label.shape[0]}"
        )


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


def fill_area(mask: np.ndarray, x: float, y: float, value: bool = True) -> int:
    """How many pixels :func:`flood_fill` with the same arguments would change; the mask is not
    changed. 0 when ``(x, y)`` is outside the image or already has ``value``."""
    _check_mask(mask)
    found = _component(mask, x, y, _FOUR, not bool(value))
    return 0 if found is None else int(np.count_nonzero(found[1]))


def fill_polygon(
    mask: np.ndarray, points: Iterable[Sequence[float]] | np.ndarray, value: bool = True
) -> Region | None:
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


def accept_prediction(
    label: np.ndarray, prediction: np.ndarray, at: Point | None = None
) -> Region | None:
    """Copy a predicted mask into ``label``.

    ``at=None`` replaces the whole label by the prediction. ``at=(x, y)`` adds only the predicted
    roof (8-connected component) under that point (``label |= component``), leaving the rest of
    the label untouched; ``None`` if no roof is predicted there.
    """
    return _apply(label, _plan_accept(label, prediction, at))
