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

The modules, by job: :mod:`~core.annotate.regions` (regions, argument checks, the brush's segment
maths), :mod:`~core.annotate.edits` (raster edits), :mod:`~core.annotate.history` (undo),
:mod:`~core.annotate.recovery` (recovery copies and finding them) and
:mod:`~core.annotate.editor` (:class:`MaskEditor`), :mod:`~core.annotate.strokes`
(:class:`StrokeEditor`, the same for strokes, a partial label). This package re-exports their public names.
"""

from core.annotate.editor import MaskEditor
from core.annotate.edits import (
    accept_prediction,
    connected_roof,
    fill_area,
    fill_polygon,
    flood_fill,
    paint_stroke,
    stamp_disk,
)
from core.annotate.history import UNDO_LIMIT, UNDO_MAX_BYTES, Edit, UndoStack
from core.annotate.recovery import (
    RecoveryCopy,
    RecoveryEntry,
    find_recovery,
    label_key,
    label_path_of,
    load_recovery,
    recovery_path_for,
    save_recovery,
    stroke_path_of,
)
from core.annotate.regions import MIN_RADIUS, Point, Region, union_regions
from core.annotate.strokes import StrokeEditor

__all__ = [
    "MIN_RADIUS",
    "UNDO_LIMIT",
    "UNDO_MAX_BYTES",
    "Edit",
    "MaskEditor",
    "Point",
    "RecoveryCopy",
    "RecoveryEntry",
    "Region",
    "StrokeEditor",
    "UndoStack",
    "accept_prediction",
    "connected_roof",
    "fill_area",
    "fill_polygon",
    "find_recovery",
    "flood_fill",
    "label_key",
    "label_path_of",
    "load_recovery",
    "paint_stroke",
    "recovery_path_for",
    "save_recovery",
    "stamp_disk",
    "stroke_path_of",
    "union_regions",
]
