"""What the brush-stroke fast paths must keep: overlays that match the mask after every stroke,
undo and redo, the dirty flag and recovery copy, region uploads identical to full uploads, the
pixel read-out ending on the pointer's pixel, and brush outlines repainted where they are drawn,
leaving no trails."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, QRect, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPen
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QGraphicsEllipseItem

from core import annotate
from core.annotate import load_recovery
from rooftop_gui import dialogs, overlays
from rooftop_gui.annotation_items import BrushOutline, Circle
from rooftop_gui.canvas import CURSOR_REPORT_MS, ImageCanvas, IndexedLayerItem
from tests.gui.test_annotation import Pointer, dispose, new_window, open_image, write_dataset


@pytest.fixture
def window(qtbot, monkeypatch, messages):
    monkeypatch.setattr(dialogs, "ask_unsaved_changes", lambda parent, what: dialogs.DISCARD)
    win = new_window(qtbot)
    yield win
    dispose(win)


def layers_match(canvas, mask: np.ndarray) -> bool:
    """The label layer shows ``mask`` and the error layer compares it with the prediction."""
    label = canvas.shown_overlay_codes("label")
    error = canvas.shown_overlay_codes("error")
    expected_error = overlays.error_codes(canvas.displayed_mask(), mask)
    return (
        np.array_equal(label.astype(bool), mask)
        and np.array_equal(error, expected_error)
        and canvas._label_item.rendered() == fresh_render(canvas._label_item, label)
        and canvas._error_item.rendered() == fresh_render(canvas._error_item, error)
    )


def fresh_render(item: IndexedLayerItem, codes: np.ndarray):
    other = IndexedLayerItem(item._table, 0, outline=item.outline)
    other.set_codes(codes.copy())
    return other.rendered()


def test_stroke_undo_redo_keep_layers_dirty_flag_and_recovery_in_step(window, qtbot, tmp_path):
    root = write_dataset(tmp_path / "roofs")
    ctl = open_image(window, qtbot, root, "train", "00001.png")
    canvas = window.canvas
    rng = np.random.default_rng(5)
    canvas.set_probability(rng.random((64, 64)).astype(np.float32))
    window.layers.error_action.setChecked(True)
    ctl.tool_actions["brush"].trigger()
    ctl.set_brush_size(7)
    pointer = Pointer(canvas)
    start = ctl.editor.mask.copy()
    assert layers_match(canvas, start) and not window.isWindowModified()

    drawn = pointer.drag([(3, 5), (20, 30), (45, 33), (60, 60), (63, 2)])
    painted = start.copy()
    annotate.paint_stroke(painted, drawn, 3.5, True)
    np.testing.assert_array_equal(ctl.editor.mask, painted)
    assert layers_match(canvas, painted)
    assert window.isWindowModified() and ctl.undo_action.isEnabled()
    copy = ctl.write_recovery()
    assert copy is not None and copy.exists()
    np.testing.assert_array_equal(load_recovery(copy).mask, painted)

    QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(ctl.editor.mask, start)
    assert layers_match(canvas, start)
    assert not window.isWindowModified() and not copy.exists()  # back at the file's content

    QTest.keyClick(
        canvas,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    np.testing.assert_array_equal(ctl.editor.mask, painted)
    assert layers_match(canvas, painted) and window.isWindowModified()

    # the eraser (right button) in the same way
    erased = painted.copy()
    annotate.paint_stroke(
        erased, pointer.drag([(60, 2), (2, 62)], Qt.MouseButton.RightButton), 3.5, False
    )
    np.testing.assert_array_equal(ctl.editor.mask, erased)
    assert layers_match(canvas, erased)
    QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(ctl.editor.mask, painted)
    assert layers_match(canvas, painted)


@pytest.mark.parametrize(
    "table",
    [overlays.mask_table(overlays.LABEL_COLOR), overlays.error_table(), overlays.heat_table()],
)
def test_region_uploads_render_exactly_like_a_full_upload(qapp, table):
    rng = np.random.default_rng(2)
    top = len(table)
    codes = rng.integers(0, top, (70, 90), dtype=np.uint8)
    item = IndexedLayerItem(table, 0)
    item.set_codes(codes)
    for _ in range(25):
        x0, y0 = rng.integers(-10, 90), rng.integers(-10, 70)
        w, h = rng.integers(1, 40, 2)
        rect = QRect(int(x0), int(y0), int(w), int(h))
        codes = codes.copy()
        codes[max(0, y0) : max(0, y0 + h), max(0, x0) : max(0, x0 + w)] = rng.integers(0, top)
        item.update_region(codes, rect)
    assert item.rendered() == fresh_render(item, codes)
    # a non-contiguous code array (a view) uploads the same pixels
    view = np.asfortranarray(codes)
    item.update_region(view, QRect(0, 0, 90, 70))
    assert item.rendered() == fresh_render(item, codes)


def test_cursor_reports_are_throttled_but_end_on_the_pointer(qtbot):
    canvas = ImageCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(400, 400)
    canvas.show()
    qtbot.waitExposed(canvas)
    canvas.set_image(np.zeros((100, 100, 3), np.uint8))
    reports = []
    canvas.cursor_moved.connect(lambda x, y: reports.append((x, y)))
    viewport = canvas.viewport()

    def at(x, y):
        return canvas.mapFromScene(QPointF(x + 0.5, y + 0.5))

    qtbot.wait(2 * CURSOR_REPORT_MS)
    QTest.mouseMove(viewport, at(10, 10))
    assert reports == [(10, 10)]  # reported at once after a pause
    started = time.monotonic()
    for i in range(11, 60):  # a burst far faster than the report interval
        QTest.mouseMove(viewport, at(i, i))
    burst_ms = (time.monotonic() - started) * 1000
    assert len(reports) - 1 <= burst_ms / CURSOR_REPORT_MS + 1
    qtbot.waitUntil(lambda: reports[-1] == (59, 59), timeout=1000)
    settled = len(reports)
    qtbot.wait(3 * CURSOR_REPORT_MS)
    assert len(reports) == settled  # nothing pending any more

    # leaving reports "outside" at once and drops a pending position
    for i in (30, 31, 32):
        QTest.mouseMove(viewport, at(i, i))
    QApplication.sendEvent(canvas, QEvent(QEvent.Type.Leave))
    assert reports[-1] == (-1, -1)
    qtbot.wait(3 * CURSOR_REPORT_MS)
    assert reports[-1] == (-1, -1)


@pytest.mark.parametrize("width", [3.0, 1.2, 0.0])
@pytest.mark.parametrize(
    "rect",
    [
        QRectF(10.3, 20.7, 40, 40),
        QRectF(-5, -5, 1, 1),
        QRectF(100, 100, 400, 400),
        QRectF(0, 0, 0.5, 0.5),
    ],
)
def test_outline_circle_bounds_are_what_qt_computes(qapp, width, rect):
    pen = QPen(QColor(0, 0, 0), width)
    pen.setCosmetic(True)
    stock, ours = QGraphicsEllipseItem(), Circle()
    for item in (stock, ours):
        item.setPen(pen)
    stock.setRect(rect)
    ours.set_circle(rect)
    assert ours.rect() == stock.rect()
    # what QGraphicsEllipseItem finds by stroking the ellipse: repaints cover the drawn circle
    mine, qts = ours.boundingRect(), stock.boundingRect()
    assert mine.contains(qts)
    for a, b in (
        (mine.left(), qts.left()),
        (mine.top(), qts.top()),
        (mine.right(), qts.right()),
        (mine.bottom(), qts.bottom()),
    ):
        assert a == pytest.approx(b, abs=1e-6)


def shown_canvas(qtbot, size=(300, 260)) -> ImageCanvas:
    canvas = ImageCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(*size)
    canvas.show()
    qtbot.waitExposed(canvas)
    rng = np.random.default_rng(4)
    canvas.set_image(rng.integers(0, 255, (120, 140, 3), dtype=np.uint8))
    return canvas


def pixels(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB32)
    return (
        np.array(image.constBits(), np.uint8)
        .reshape(image.height(), image.bytesPerLine())[:, : image.width() * 4]
        .copy()
    )


@pytest.mark.parametrize("zoom", [1.0, 2.0])
def test_strokes_and_brush_outline_leave_no_trails(qtbot, zoom):
    """After many small repaints (label and error layers, the moving outline) what is on screen
    equals a full repaint of the canvas."""
    canvas = shown_canvas(qtbot)
    rng = np.random.default_rng(6)
    canvas.set_probability(rng.random((120, 140)).astype(np.float32))
    canvas.set_layer_visible("error", True)
    editor = annotate.MaskEditor(None, (120, 140))
    canvas.set_label(editor.mask)
    outline = BrushOutline(canvas)
    canvas.set_zoom(zoom)
    app = QApplication.instance()
    app.processEvents()
    editor.begin_stroke(True, 6)
    for i in range(60):
        x, y = 10 + 2 * i + rng.uniform(0, 2), 20 + 1.5 * i
        canvas.update_label_region(editor.stroke_to(x, y))
        outline.show_at(x + 0.5, y + 0.5, 6, erase=i % 7 == 0)
        app.processEvents()
    editor.end_stroke()
    outline.hide()
    app.processEvents()
    on_screen = pixels(app.primaryScreen().grabWindow(canvas.winId()).toImage())
    assert np.array_equal(on_screen, pixels(canvas.grab().toImage()))
