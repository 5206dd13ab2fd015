"""The building outline layer: vectorised buildings (``core.vector``) drawn over the image.

:func:`building_rings` turns a ``core.vector.BuildingSet`` into rings of image-pixel coordinates
(the inverse of the image's geotransform when the buildings are in map coordinates), in the worker
that vectorised them; :class:`BuildingOutlineItem` draws the rings with a cosmetic pen (the same
width on screen at every zoom), only those whose bounding box meets the exposed rectangle, so an
orthophoto's tens of thousands of buildings pan smoothly. :func:`summary_text` is the prediction
panel's "N buildings, A m²" line.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

#: Colour of the outlines: white with a dark edge reads on roofs of every colour and differs from
#: the label's yellow outline and the prediction's sky-blue fill.
BUILDING_COLOR = (255, 255, 255)
BUILDING_EDGE = (20, 20, 20)


def building_rings(buildings: Any, transform: Any = None) -> list[np.ndarray]:
    """Every ring (exterior and holes) of ``buildings`` as ``(N, 2)`` float arrays of image pixel
    ``x, y``; ``transform`` (an affine ``a, b, c, d, e, f`` or ``Affine``) is the geotransform
    the buildings' coordinates went through (None: they are pixel coordinates already)."""
    import shapely

    rings: list[np.ndarray] = []
    inverse = None
    if transform is not None:
        from affine import Affine

        t = transform if isinstance(transform, Affine) else Affine(*tuple(transform)[:6])
        if not t.is_identity:
            inverse = ~t
    for building in buildings:
        geometry = building.geometry
        polygons = getattr(geometry, "geoms", [geometry])
        for polygon in polygons:
            for ring in (polygon.exterior, *polygon.interiors):
                xy = np.asarray(shapely.get_coordinates(ring), np.float64)
                if inverse is not None and len(xy):
                    a, b, c, d, e, f = inverse[:6]
                    xy = np.column_stack(
                        [a * xy[:, 0] + b * xy[:, 1] + c, d * xy[:, 0] + e * xy[:, 1] + f]
                    )
                rings.append(xy)
    return rings


def summary_text(count: int, area: float, unit: str) -> str:
    """``"12 buildings · 1 234.5 m²"`` (px² for a mask without georeferencing)."""
    noun = "building" if count == 1 else "buildings"
    squared = "m²" if unit == "m" else "px²"
    return f"{count} {noun} · {area:,.1f} {squared}".replace(",", " ")


class BuildingOutlineItem(QGraphicsItem):
    """Outlines of buildings in image-pixel scene coordinates (see the module docstring)."""

    def __init__(self, z: float = 45) -> None:
        super().__init__()
        self._polygons: list[QPolygonF] = []
        self._boxes = np.zeros((0, 4), np.float64)  # x0, y0, x1, y1 per polygon
        self._bounds = QRectF()
        self.setZValue(z)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    def set_rings(self, rings: list[np.ndarray] | None) -> None:
        self.prepareGeometryChange()
        self._polygons, self._boxes, self._bounds = [], np.zeros((0, 4)), QRectF()
        if rings:
            self._append(rings)
        self.update()

    def add_rings(self, rings: list[np.ndarray]) -> None:
        if rings:
            self.prepareGeometryChange()
            self._append(rings)
            self.update()

    def _append(self, rings: list[np.ndarray]) -> None:
        boxes = []
        for xy in rings:
            if len(xy) < 2:
                continue
            self._polygons.append(QPolygonF([QPointF(float(x), float(y)) for x, y in xy]))
            boxes.append((xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()))
        if boxes:
            self._boxes = np.concatenate([self._boxes.reshape(-1, 4), np.array(boxes)])
            x0, y0 = self._boxes[:, 0].min(), self._boxes[:, 1].min()
            x1, y1 = self._boxes[:, 2].max(), self._boxes[:, 3].max()
            self._bounds = QRectF(x0 - 1, y0 - 1, x1 - x0 + 2, y1 - y0 + 2)

    def count(self) -> int:
        """Number of rings drawn (exteriors and holes)."""
        return len(self._polygons)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        return self._bounds

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        if not self._polygons:
            return
        r = option.exposedRect
        boxes = self._boxes
        hits = np.flatnonzero(
            (boxes[:, 2] >= r.left())
            & (boxes[:, 0] <= r.right())
            & (boxes[:, 3] >= r.top())
            & (boxes[:, 1] <= r.bottom())
        )
        if not len(hits):
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, len(hits) < 5000)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for color, width in ((BUILDING_EDGE, 3.0), (BUILDING_COLOR, 1.5)):
            pen = QPen(QColor(*color), width)
            pen.setCosmetic(True)
            pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
            painter.setPen(pen)
            for i in hits:
                painter.drawPolygon(self._polygons[i])
