"""Canvas input of the annotation: mouse presses, moves and releases become tool calls, keys
finish or cancel a polygon or a stroke, and the brush outline and the polygon being drawn follow
the pointer.

:class:`CanvasInput` is a part of :class:`rooftop_gui.annotation.AnnotationController` (a base
class of it): it uses the controller's ``canvas``, ``tool``, ``radius``, ``editor``,
``status_message`` and its ``_ensure_editor`` / ``_changed`` / ``_update_actions`` /
``fill`` / ``accept_roof`` methods.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QKeyEvent

from rooftop_gui.annotation_items import BrushOutline, PolygonBand
from rooftop_gui.annotation_toolbar import PAINT_TOOLS, STROKE_TOOLS
from rooftop_gui.canvas import ImageCanvas

#: A click closer than this (screen pixels) to the first polygon vertex closes the polygon.
CLOSE_DISTANCE_PX = 8.0


class CanvasInput:
    """Mouse and keys on the canvas, the polygon being drawn and the brush outline."""

    def _init_input(self, canvas: ImageCanvas) -> None:
        self._stroke_button = Qt.MouseButton.NoButton
        self._polygon: list[QPointF] = []
        self._pointer: QPointF | None = None
        self._erase_hint = False
        self._outline = BrushOutline(canvas)
        self._band = PolygonBand(canvas)

    def _connect_input(self, canvas: ImageCanvas) -> None:
        canvas.mouse_pressed_image.connect(self._pressed)
        canvas.mouse_moved_image.connect(self._moved)
        canvas.mouse_released_image.connect(self._released)
        canvas.mouse_double_clicked_image.connect(self._double_clicked)
        canvas.mouse_left.connect(self._left)
        canvas.zoom_changed.connect(lambda _z: self._refresh_cursor())
        canvas.installEventFilter(self)

    # ------------------------------------------------------------------ mouse
    def _editing_tool(self) -> bool:
        return self.tool != "pan" and self.canvas.image() is not None

    def _pressed(self, x: float, y: float, buttons: Any) -> None:
        if not self._editing_tool():
            return
        buttons = Qt.MouseButton(buttons)
        left = bool(buttons & Qt.MouseButton.LeftButton)
        right = bool(buttons & Qt.MouseButton.RightButton)
        if not (left or right) or self._painting():
            return
        px, py = x - 0.5, y - 0.5
        if self.tool in STROKE_TOOLS:
            self._stroke_button = Qt.MouseButton.LeftButton if left else Qt.MouseButton.RightButton
            self._begin_stroke(px, py, left, right)
            self._refresh_cursor()
        elif self.tool == "smart":
            if left:
                from PySide6.QtWidgets import QApplication

                shift = bool(QApplication.keyboardModifiers() & Qt.KeyboardModifier.ShiftModifier)
                self.smart_click(x, y, add=shift)
            elif self.drop_proposal():
                self.status_message.emit("Dropped the proposed roof.")
        elif self.tool in PAINT_TOOLS:
            editor = self._ensure_editor()
            if editor is None:
                return
            value = (self.tool == "brush") != (right and not left)
            self._stroke_button = Qt.MouseButton.LeftButton if left else Qt.MouseButton.RightButton
            self._erase_hint = not value
            editor.begin_stroke(value, self.radius)
            self._changed(editor.stroke_to(px, py))
            self._refresh_cursor()
        elif self.tool == "fill":
            self.fill(x, y, value=not (right and not left))
        elif self.tool == "polygon":
            self._polygon_click(QPointF(x, y), erase=right and not left)
        elif self.tool == "accept" and left:
            self.accept_roof(x, y)

    def _moved(self, x: float, y: float, _buttons: Any) -> None:
        self._pointer = QPointF(x, y)
        editor = self.editor
        if editor is not None and editor.in_stroke:
            self._changed(editor.stroke_to(x - 0.5, y - 0.5))
        elif self.strokes is not None and self.strokes.in_stroke:
            self._strokes_changed(self.strokes.stroke_to(x - 0.5, y - 0.5))
        self._refresh_cursor()

    def _painting(self) -> bool:
        """Whether a stroke (of the label or of the strokes) is open."""
        return (self.editor is not None and self.editor.in_stroke) or (
            self.strokes is not None and self.strokes.in_stroke
        )

    def _released(self, _x: float, _y: float, button: Any) -> None:
        editor = self.editor
        if editor is None or not editor.in_stroke:
            editor = self.strokes
        if editor is None or not editor.in_stroke:
            return
        if Qt.MouseButton(button) & self._stroke_button:
            editor.end_stroke()
            self._stroke_button = Qt.MouseButton.NoButton
            self._erase_hint = False
            self._update_actions()
            self._refresh_cursor()

    def _double_clicked(self, x: float, y: float, buttons: Any) -> None:
        if self.tool == "polygon":
            if len(self._polygon) >= 3:
                self.close_polygon()
            return
        self._pressed(x, y, buttons)  # a quick second click still paints / fills

    def _left(self) -> None:
        self._pointer = None
        self._outline.hide()
        if self._polygon:
            self._band.update(self._polygon, None)

    def _refresh_cursor(self) -> None:
        pointer = self._pointer
        painting = self.tool in PAINT_TOOLS or self.tool in STROKE_TOOLS
        if painting and pointer is not None and self.canvas.image() is not None:
            erase = self.tool in ("eraser", "unlabel")
            self._outline.show_at(
                pointer.x(), pointer.y(), max(self.radius, 0.5), erase=erase != self._erase_hint
            )
        else:
            self._outline.hide()
        if self.tool == "polygon":
            self._band.update(self._polygon, pointer)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if watched is self.canvas and event.type() == QEvent.Type.KeyPress:
            key = event.key() if isinstance(event, QKeyEvent) else None
            if key == Qt.Key.Key_Escape:
                if self._polygon:
                    self.cancel_polygon()
                    return True
                if self.editor is not None and self.editor.in_stroke:
                    self._changed(self.editor.cancel_stroke())
                    self._stroke_button = Qt.MouseButton.NoButton
                    return True
                if self.strokes is not None and self.strokes.in_stroke:
                    self._strokes_changed(self.strokes.cancel_stroke())
                    self._stroke_button = Qt.MouseButton.NoButton
                    return True
                if self.drop_proposal():
                    self.status_message.emit("Dropped the proposed roof.")
                    return True
            elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self._polygon:
                self.close_polygon()
                return True
            elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.proposal() is not None:
                self.accept_proposal()
                return True
            elif key == Qt.Key.Key_Backspace and self._polygon:
                self._polygon.pop()
                self._refresh_cursor()
                return True
        return super().eventFilter(watched, event)

    # ------------------------------------------------------------------ polygon
    def _polygon_click(self, point: QPointF, erase: bool) -> None:
        if erase:
            if len(self._polygon) >= 3:
                self.close_polygon(value=False)
            return
        if len(self._polygon) >= 3:
            first = self.canvas.mapFromScene(self._polygon[0])
            here = self.canvas.mapFromScene(point)
            if math.hypot(first.x() - here.x(), first.y() - here.y()) <= CLOSE_DISTANCE_PX:
                self.close_polygon()
                return
        self._polygon.append(point)
        self._refresh_cursor()

    def polygon_points(self) -> list[tuple[float, float]]:
        """The vertices placed so far, in canvas (scene) coordinates."""
        return [(p.x(), p.y()) for p in self._polygon]

    def close_polygon(self, value: bool = True) -> None:
        points = [(p.x() - 0.5, p.y() - 0.5) for p in self._polygon]
        self.cancel_polygon()
        if len(points) < 3:
            return
        editor = self._ensure_editor()
        if editor is not None:
            self._changed(editor.polygon(points, value))

    def cancel_polygon(self) -> None:
        self._polygon = []
        self._band.update([], None)

    def _finish_interaction(self) -> None:
        """End an open stroke and drop an unfinished polygon (tool or image change)."""
        if self.editor is not None and self.editor.in_stroke:
            self.editor.end_stroke()
        if self.strokes is not None and self.strokes.in_stroke:
            self.strokes.end_stroke()
        self.drop_proposal()
        self._stroke_button = Qt.MouseButton.NoButton
        self._erase_hint = False
        self.cancel_polygon()
