"""The annotation's items on the canvas: the brush outline that follows the pointer and the
polygon being drawn. They take no mouse buttons (the canvas reports the mouse to the controller).
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainterPath, QPen
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsRectItem,
)

from rooftop_gui.canvas import ImageCanvas


class Circle(QGraphicsEllipseItem):
    """An ellipse item with a cheap bounding rectangle: its rectangle grown by half the pen width.

    QGraphicsEllipseItem finds its bounding rectangle by stroking the ellipse with its pen
    (QPainterPathStroker) after every ``setRect``; for the brush outline, which moves on every
    mouse move, that was half the cost of repainting the canvas during a stroke. The stroke of an
    ellipse lies inside the rectangle grown by half the pen width, which is what that stroking
    finds too.
    """

    def __init__(self) -> None:
        super().__init__()
        self._bounds = QRectF()

    def set_circle(self, rect: QRectF) -> None:
        self.setRect(rect)  # (prepares the geometry change with the old bounds)
        half = self.pen().widthF() / 2.0
        self._bounds = rect.adjusted(-half, -half, half, half)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        return self._bounds


class BrushOutline:
    """The brush's circle on the canvas: white over black, cosmetic (1 screen pixel) pens."""

    def __init__(self, canvas: ImageCanvas) -> None:
        self.dark = Circle()
        self.light = Circle()
        for item, color, width, z in (
            (self.dark, QColor(0, 0, 0, 170), 3.0, 100),
            (self.light, QColor(255, 255, 255), 1.2, 101),
        ):
            pen = QPen(color, width)
            pen.setCosmetic(True)
            item.setPen(pen)
            item.setBrush(QBrush(Qt.BrushStyle.NoBrush))
            item.setZValue(z)
            item.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
            item.setVisible(False)
            canvas.scene().addItem(item)
        # what the items show now: Qt calls are skipped when nothing changed (every mouse move
        # comes here)
        self._circle: tuple[float, float, float] | None = None
        self._erase: bool | None = None
        self._visible = False

    def show_at(self, x: float, y: float, radius: float, erase: bool) -> None:
        if self._circle != (x, y, radius):
            self._circle = (x, y, radius)
            rect = QRectF(x - radius, y - radius, 2 * radius, 2 * radius)
            self.dark.set_circle(rect)
            self.light.set_circle(rect)
        if self._erase != erase:
            self._erase = erase
            pen = self.light.pen()
            pen.setColor(QColor(255, 150, 170) if erase else QColor(255, 255, 255))
            self.light.setPen(pen)
        if not self._visible:
            self._visible = True
            self.dark.setVisible(True)
            self.light.setVisible(True)

    def hide(self) -> None:
        if self._visible:
            self._visible = False
            self.dark.setVisible(False)
            self.light.setVisible(False)


class PolygonBand:
    """The polygon being drawn: edges so far, the rubber band to the pointer, vertex handles."""

    def __init__(self, canvas: ImageCanvas) -> None:
        self.canvas = canvas
        self.edges = QGraphicsPathItem()
        self.band = QGraphicsPathItem()
        fill = QColor(0, 200, 255, 45)
        for item, style in ((self.edges, Qt.PenStyle.SolidLine), (self.band, Qt.PenStyle.DashLine)):
            pen = QPen(QColor(255, 220, 60), 1.6, style)
            pen.setCosmetic(True)
            item.setPen(pen)
            item.setZValue(110)
            item.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
            canvas.scene().addItem(item)
        self.edges.setBrush(QBrush(fill))
        self.handles: list[QGraphicsRectItem] = []

    def update(self, points: list[QPointF], pointer: QPointF | None) -> None:
        path = QPainterPath()
        if points:
            path.moveTo(points[0])
            for p in points[1:]:
                path.lineTo(p)
            if pointer is not None:
                path.lineTo(pointer)
        self.edges.setPath(path)
        band = QPainterPath()
        if points and pointer is not None and len(points) >= 2:
            band.moveTo(pointer)
            band.lineTo(points[0])
        self.band.setPath(band)
        while len(self.handles) < len(points):
            handle = QGraphicsRectItem(-3.5, -3.5, 7, 7)
            handle.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
            handle.setBrush(QBrush(QColor(255, 220, 60)))
            pen = QPen(QColor(0, 0, 0), 1)
            pen.setCosmetic(True)
            handle.setPen(pen)
            handle.setZValue(111)
            handle.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
            self.canvas.scene().addItem(handle)
            self.handles.append(handle)
        for i, handle in enumerate(self.handles):
            if i < len(points):
                handle.setPos(points[i])
                handle.setVisible(True)
            else:
                handle.setVisible(False)
