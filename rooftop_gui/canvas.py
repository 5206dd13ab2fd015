"""The image canvas: an aerial image with label, prediction (mask or heat map) and error layers.

The canvas renders and emits *intent*; it edits nothing. Mouse events are reported in image
coordinates (``mouse_pressed_image(x, y, buttons)``, ``mouse_moved_image``,
``mouse_released_image``) so that an annotation tool can be added on top: a tool edits the label
array it got from :meth:`ImageCanvas.label_array` (a numpy array, in place) and calls
:meth:`ImageCanvas.update_label_region` with the rectangle it touched; only that rectangle of
the label (and error) overlay is re-uploaded. While a tool is active, set
``canvas.left_button_pans = False`` so that the left button is the tool's; panning stays on the
middle button and on space + drag. A press that starts a pan is not reported as a tool press;
``mouse_double_clicked_image`` reports double clicks (the polygon tool closes on one) and
``mouse_left`` says the pointer left the canvas (tools hide their cursor outline).
``cursor_moved`` (the pixel read-out) follows the pointer at most every ``CURSOR_REPORT_MS``
and always ends on its last position.

Rendering is built for slider speed on 2048 x 2048 images:

* every overlay is an 8-bit indexed image whose colour table does the colouring (no RGBA built
  in Python), converted once to a QPixmap;
* the label is drawn as its outline (``overlays.outline_region``); an edit recomputes only its
  rectangle grown by the outline's width. While the error map shows something the outline is
  not drawn: the error map shows the label itself, and the outline would hide its edge bands;
* opacity is the layers' item opacity (no pixel work at all);
* the thresholded mask is cached per threshold and the heat-map codes per kernel size; a
  threshold or dilation change costs one comparison, one fast uint8 max filter and one upload;
* the shown mask is exactly ``core.postprocess.to_mask(prob, threshold, dilation)``, the function
  export and ``rooftop predict --dilation`` use (computed as ``dilate(prob >= t)``, which is equal
  because max and threshold commute; tests check it): what you see is what you export.

Orthophotos of any size are shown through :meth:`ImageCanvas.set_raster` instead of an array: a
:class:`rooftop_gui.raster_item.RasterTileItem` draws an overview and full-resolution tiles read in
the background (bounded cache), requested after every scroll and zoom. On a raster, the
prediction layer is a *window* of it (:meth:`ImageCanvas.set_window_probability`: "Predict visible
area", at an offset, with the same threshold/dilation/heat-map path), a whole-raster prediction is
drawn as it arrives (:meth:`start_strip_preview`, decimated) and then from its mask file
(:meth:`set_mask_raster`, tiled too). Building outlines (:meth:`set_buildings`) are drawn on both
kinds of image.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import qimage2ndarray
from PySide6.QtCore import QPointF, QRect, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPixmap,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QStyleOptionGraphicsItem,
    QWidget,
)

from core import postprocess
from rooftop_gui import overlays
from rooftop_gui.buildings_layer import BuildingOutlineItem
from rooftop_gui.raster_item import RasterTileItem
from rooftop_gui.raster_view import RasterTileSource

LAYERS = ("label", "prediction", "error")
MIN_ZOOM, MAX_ZOOM = 1 / 64, 64.0
#: ``cursor_moved`` is emitted at most once per this many ms (about one 60 Hz frame); the last
#: position of a faster burst of moves is always emitted when the interval is over. The window's
#: pixel read-out is a text relayout (~0.5 ms): once per mouse event it was half the cost of a
#: brush stroke, for text that nobody can read faster than the screen refreshes.
CURSOR_REPORT_MS = 16


class IndexedLayerItem(QGraphicsItem):
    """An overlay drawn from an (H, W) uint8 code array through a colour table.

    The codes are converted once to a premultiplied ARGB32 QImage (Qt's own fast, multithreaded
    conversion; the format ``QPixmap.fromImage`` gives on raster back ends) that ``paint`` draws.
    :meth:`update_region` then rewrites only a rectangle of it, in numpy, through a look-up table
    of the very pixels Qt's conversion makes of each code: no QPainter, no QImage built per brush
    move.

    With ``outline`` > 0 the codes are a mask (0/1) drawn as its outline, ``outline`` pixels
    wide (:func:`rooftop_gui.overlays.outline_region`); :meth:`update_region` then recomputes the
    rectangle grown by ``outline`` pixels, all that an edit inside the rectangle can change.
    :meth:`codes` stays the mask.
    """

    def __init__(self, table: list[int], z: float, outline: int = 0) -> None:
        super().__init__()
        self._table = table
        self._outline = int(outline)
        self._lut: np.ndarray | None = None  # code -> ARGB32 premultiplied pixel (uint32)
        self._image = QImage()  # what paint() draws
        self._pixels: np.ndarray | None = None  # writable (H, W) uint32 view of _image
        self._bounds = QRectF()  # the image's rectangle (Qt asks for it many times per repaint)
        self._codes: np.ndarray | None = None
        self.setZValue(z)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    def set_table(self, table: list[int]) -> None:
        """Use ``table`` from the next :meth:`set_codes` on."""
        self._table = table
        self._lut = None

    def _qimage(self, codes: np.ndarray) -> QImage:
        """An indexed QImage over ``codes`` (no copy: use it while ``codes`` is alive).

        Built directly rather than with ``qimage2ndarray.gray2qimage``, which first fills a
        256-entry grey colour table one ``setColor`` call at a time (0.13 ms) only for it to be
        replaced by ours.
        """
        codes = np.require(codes, np.uint8, "C")
        height, width = codes.shape
        image = QImage(codes.data, width, height, codes.strides[0], QImage.Format.Format_Indexed8)
        image.setColorTable(self._table)
        return image

    def _argb(self, codes: np.ndarray) -> QImage:
        return self._qimage(codes).convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)

    @property
    def outline(self) -> int:
        """Outline width in image pixels (0: the codes are drawn filled)."""
        return self._outline

    def set_outline(self, width: int) -> None:
        """Draw the codes as an outline ``width`` pixels wide (0: filled); redraws the layer."""
        if int(width) != self._outline:
            self._outline = int(width)
            self.set_codes(self._codes)

    def _drawn(self, codes: np.ndarray) -> np.ndarray:
        return overlays.outline_codes(codes, self._outline) if self._outline > 0 else codes

    def set_codes(self, codes: np.ndarray | None) -> None:
        """Replace the whole layer (``None`` clears it)."""
        self.prepareGeometryChange()
        self._codes = codes
        self._pixels = None
        self._image = QImage() if codes is None else self._argb(self._drawn(codes))
        self._bounds = QRectF(0, 0, self._image.width(), self._image.height())
        self.update()

    def update_region(self, codes: np.ndarray, rect: QRect) -> None:
        """Re-upload only ``rect`` of ``codes`` (same shape as the current layer)."""
        if self._image.isNull() or self._codes is None or codes.shape != self._codes.shape:
            self.set_codes(codes)
            return
        self._codes = codes
        if self._outline > 0:  # an edit moves the boundary up to `outline` pixels around it
            rect = rect.adjusted(-self._outline, -self._outline, self._outline, self._outline)
        rect = rect.intersected(QRect(0, 0, codes.shape[1], codes.shape[0]))
        if rect.isEmpty():
            return
        if self._lut is None:  # every code's pixel, converted by Qt exactly as set_codes does
            row = self._argb(np.arange(256, dtype=np.uint8)[None, :])
            self._lut = np.frombuffer(row.constBits(), np.uint32, count=256).copy()
        if self._pixels is None:  # (bits() detaches the image: the view is ours alone)
            image = self._image
            self._pixels = np.frombuffer(image.bits(), np.uint32).reshape(
                image.height(), image.bytesPerLine() // 4
            )[:, : image.width()]
        rows = slice(rect.top(), rect.bottom() + 1)
        cols = slice(rect.left(), rect.right() + 1)
        if self._outline > 0:
            drawn = overlays.outline_region(
                codes, rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1, self._outline
            )
        else:
            drawn = codes[rows, cols]
        self._pixels[rows, cols] = self._lut[drawn]
        self.update(QRectF(rect))

    def codes(self) -> np.ndarray | None:
        """The codes given (for an outline layer, the mask, not its outline)."""
        return self._codes

    def rendered(self) -> QImage:
        """The layer's pixels as drawn (a copy; a null image when the layer is empty)."""
        return self._image.copy()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        return self._bounds

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        if self._image.isNull():
            return
        exposed = option.exposedRect.intersected(self._bounds)
        if exposed.isEmpty():
            return
        painter.drawImage(exposed, self._image, exposed)


@dataclass
class LayerState:
    """Everything about how overlays are drawn (what the layer panel edits and settings keep)."""

    show_label: bool = True
    show_prediction: bool = True
    show_error: bool = False
    heatmap: bool = False
    opacity: float = 0.5
    threshold: float = 0.5
    dilation_on: bool = False
    dilation_kernel: int = 5

    @property
    def dilation(self) -> int:
        """The kernel that applies now (0 when the toggle is off)."""
        return self.dilation_kernel if self.dilation_on else 0


class ImageCanvas(QGraphicsView):
    """Zoomable, pannable view of one image and its overlays. See the module docstring."""

    # Intent signals, all in image pixel coordinates (floats; pixel (i, j) spans [i, i + 1)).
    mouse_pressed_image = Signal(float, float, object)  # x, y, Qt.MouseButtons
    mouse_moved_image = Signal(float, float, object)
    mouse_released_image = Signal(float, float, object)
    mouse_double_clicked_image = Signal(float, float, object)
    mouse_left = Signal()  # the pointer left the canvas
    cursor_moved = Signal(
        int, int
    )  # pixel under the cursor, (-1, -1) outside; see CURSOR_REPORT_MS
    zoom_changed = Signal(float)  # 1.0 = 100 %
    layers_changed = Signal()  # state or data of an overlay changed
    rendered = Signal(float)  # milliseconds of the last overlay redraw

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("canvas")
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self.setBackgroundBrush(QBrush(QColor(30, 31, 34)))
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        # drawBackground fills every exposed pixel with the background brush, so the widgets
        # behind the viewport (the window, the style-sheet background) need no repaint on each
        # brush move.
        self.viewport().setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)

        self._image_item = QGraphicsPixmapItem()
        self._image_item.setZValue(0)
        self._image_item.setShapeMode(QGraphicsPixmapItem.ShapeMode.BoundingRectShape)
        # the label's outline is drawn above the prediction fill and the error map
        self._label_item = IndexedLayerItem(
            overlays.mask_table(overlays.LABEL_COLOR), 40, outline=overlays.OUTLINE_WIDTH
        )
        self._pred_item = IndexedLayerItem(overlays.mask_table(overlays.PREDICTION_COLOR), 20)
        self._error_item = IndexedLayerItem(overlays.error_table(), 30)
        self._buildings_item = BuildingOutlineItem(z=45)
        for item in (
            self._image_item,
            self._label_item,
            self._pred_item,
            self._error_item,
            self._buildings_item,
        ):
            self._scene.addItem(item)
        # an orthophoto shown by tiles (set_raster), its whole-raster prediction (a decimated
        # preview while it runs, then its mask file by tiles)
        self._raster: RasterTileSource | None = None
        self._raster_item: RasterTileItem | None = None
        self._mask_source: RasterTileSource | None = None
        self._mask_item: RasterTileItem | None = None
        self._strip_item = IndexedLayerItem(overlays.mask_table(overlays.PREDICTION_COLOR), 19)
        self._strip_codes: np.ndarray | None = None
        self._strip_factor = 1
        self._scene.addItem(self._strip_item)
        self._prob_offset = (0, 0)  # where the probability window lies (a raster's window)
        self._tile_timer = QTimer(self)
        self._tile_timer.setSingleShot(True)
        self._tile_timer.setInterval(0)
        self._tile_timer.timeout.connect(self._request_tiles)

        self.state = LayerState()
        self._image: np.ndarray | None = None
        self._label: np.ndarray | None = None
        self._prob: np.ndarray | None = None
        self._base: np.ndarray | None = None
        self._base_key: float | None = None
        self._heat: dict[int, np.ndarray] = {}
        self._shown_mask: np.ndarray | None = None
        self._message = "Open a dataset (File > Open dataset folder…) and pick an image."

        self.left_button_pans = True
        self._panning = False
        self._pan_last = QPointF()
        self._space_down = False
        self._fit_on_resize = True
        self.last_render_ms = 0.0
        self._cursor_pending: tuple[int, int] | None = None
        self._cursor_reported = -math.inf  # time.monotonic() of the last cursor_moved
        self._cursor_timer = QTimer(self)
        self._cursor_timer.setSingleShot(True)
        self._cursor_timer.timeout.connect(self._flush_cursor)
        self._apply_layer_state()

    # ------------------------------------------------------------------ data
    def set_image(self, image: np.ndarray | None, *, keep_view: bool = False) -> None:
        """Show ``image`` (H, W, 3 uint8) and clear label and prediction (``None`` clears)."""
        self._clear_raster()
        self._buildings_item.set_rings(None)
        self._image = image
        self._label = None
        self._prob = None
        self._prob_offset = (0, 0)
        self._pred_item.setPos(0, 0)
        self._base = None
        self._heat = {}
        if image is None:
            self._image_item.setPixmap(QPixmap())
            self._scene.setSceneRect(QRectF())
        else:
            self._image_item.setPixmap(QPixmap.fromImage(qimage2ndarray.array2qimage(image)))
            self._scene.setSceneRect(QRectF(0, 0, image.shape[1], image.shape[0]))
        self._label_item.set_codes(None)
        self._refresh_prediction()
        if not keep_view or image is None:
            self.fit()
        self.viewport().update()

    def set_label(self, mask: np.ndarray | None) -> None:
        """Show ``mask`` (H, W bool) as the label layer; the canvas keeps a reference to it."""
        if mask is not None:
            self._check_shape(mask, "label")
            mask = np.ascontiguousarray(mask, dtype=bool)
        self._label = mask
        self._label_item.set_codes(None if mask is None else overlays.mask_codes(mask))
        self._refresh_error()
        self._apply_layer_state()  # (emits layers_changed)

    def set_probability(self, prob: np.ndarray | None) -> None:
        """Show a probability map (H, W float32 in [0, 1]) as the prediction layer."""
        if prob is not None:
            self._check_shape(prob, "probability map")
            prob = np.ascontiguousarray(prob, dtype=np.float32)
        self._prob = prob
        self._base = None
        self._heat = {}
        self._refresh_prediction()

    def set_message(self, text: str) -> None:
        """Text drawn over an empty canvas (e.g. why an image could not be shown)."""
        self._message = text
        self.viewport().update()

    # ------------------------------------------------------------------ orthophotos
    def set_raster(self, source: RasterTileSource | None) -> None:
        """Show the raster ``source`` by tiles (it is opened here if it is not yet); clears the
        image, label and prediction. The canvas owns ``source`` from now on (closes it)."""
        self.set_image(None)
        if source is None:
            return
        self._raster = source
        self._raster_item = RasterTileItem(source, z=0)
        self._scene.addItem(self._raster_item)
        source.opened.connect(self._raster_opened)
        source.overview_ready.connect(self._schedule_tiles)
        if source.info is not None:
            self._raster_opened(source.info)
        elif not source.is_busy():
            source.open()
        self.viewport().update()

    def _raster_opened(self, info) -> None:
        if self._raster is None or self._raster.info is not info:
            return
        self._scene.setSceneRect(QRectF(0, 0, info.width, info.height))
        self.fit()
        self.layers_changed.emit()

    def _clear_raster(self) -> None:
        for source in (self._raster, self._mask_source):
            if source is not None:
                source.close()
        for item in (self._raster_item, self._mask_item):
            if item is not None:
                self._scene.removeItem(item)
        self._raster = self._raster_item = self._mask_source = self._mask_item = None
        self.stop_strip_preview()

    def raster(self) -> RasterTileSource | None:
        """The orthophoto shown by tiles (None for a plain image)."""
        return self._raster

    def raster_item(self) -> RasterTileItem | None:
        return self._raster_item

    def image_size(self) -> tuple[int, int] | None:
        """``(width, height)`` of what is shown: the image, or the raster once opened."""
        if self._image is not None:
            return self._image.shape[1], self._image.shape[0]
        if self._raster is not None and self._raster.info is not None:
            return self._raster.info.width, self._raster.info.height
        return None

    def visible_rect(self) -> QRectF:
        """The image-pixel rectangle the viewport shows (cut to the image)."""
        size = self.image_size()
        if size is None:
            return QRectF()
        rect = self.mapToScene(self.viewport().rect()).boundingRect()
        return rect.intersected(QRectF(0, 0, size[0], size[1]))

    def _schedule_tiles(self, *_args) -> None:
        if self._raster_item is not None or self._mask_item is not None:
            self._tile_timer.start()

    def _request_tiles(self) -> None:
        rect = self.mapToScene(self.viewport().rect()).boundingRect()
        for item in (self._raster_item, self._mask_item):
            if item is not None:
                item.request_visible(rect, self.zoom())

    def scrollContentsBy(self, dx: int, dy: int) -> None:  # noqa: N802 - Qt API
        super().scrollContentsBy(dx, dy)
        self._schedule_tiles()

    def set_window_probability(self, prob: np.ndarray | None, x0: int = 0, y0: int = 0) -> None:
        """Show a probability map of the raster's window at column ``x0``, row ``y0`` as the
        prediction layer (threshold, dilation and heat map apply as on an image)."""
        if prob is not None:
            size = self.image_size()
            if self._raster is None or size is None:
                raise ValueError("a window probability map needs a raster on the canvas")
            h, w = prob.shape[:2]
            if x0 < 0 or y0 < 0 or x0 + w > size[0] or y0 + h > size[1]:
                raise ValueError(
                    f"the window {w} x {h} at ({x0}, {y0}) is outside the "
                    f"{size[0]} x {size[1]} raster"
                )
            prob = np.ascontiguousarray(prob, dtype=np.float32)
        self._prob = prob
        self._prob_offset = (int(x0), int(y0)) if prob is not None else (0, 0)
        self._pred_item.setPos(*self._prob_offset)
        self._base = None
        self._heat = {}
        self._refresh_prediction()

    def probability_offset(self) -> tuple[int, int]:
        """``(x0, y0)`` of the probability map in the image (0, 0 on a plain image)."""
        return self._prob_offset

    def start_strip_preview(self, width: int, height: int, factor: int) -> None:
        """Begin drawing a whole-raster prediction decimated by ``factor`` as its strips come."""
        self._strip_factor = max(1, int(factor))
        self._strip_codes = np.zeros(
            (math.ceil(height / self._strip_factor), math.ceil(width / self._strip_factor)),
            np.uint8,
        )
        self._strip_item.set_codes(self._strip_codes)
        self._strip_item.setScale(self._strip_factor)
        self._apply_layer_state()

    def add_strip_preview(self, row: int, codes: np.ndarray) -> None:
        """Rows ``row..`` (in decimated rows) of the preview: 1 = roof."""
        if self._strip_codes is None:
            return
        codes = codes[: max(0, self._strip_codes.shape[0] - row)]
        if not len(codes):
            return
        self._strip_codes[row : row + len(codes)] = codes
        self._strip_item.update_region(self._strip_codes, QRect(0, row, codes.shape[1], len(codes)))

    def stop_strip_preview(self) -> None:
        self._strip_codes = None
        self._strip_item.set_codes(None)

    def strip_preview(self) -> np.ndarray | None:
        return self._strip_codes

    def set_mask_raster(self, source: RasterTileSource | None) -> None:
        """Show a written mask raster (``kind="mask"``) over the orthophoto, by tiles."""
        if self._mask_source is not None:
            self._mask_source.close()
        if self._mask_item is not None:
            self._scene.removeItem(self._mask_item)
        self._mask_source, self._mask_item = source, None
        if source is not None:
            self._mask_item = RasterTileItem(source, z=18)
            self._scene.addItem(self._mask_item)
            source.overview_ready.connect(self._schedule_tiles)
            if source.info is None and not source.is_busy():
                source.open()
            self.stop_strip_preview()
        self._apply_layer_state()

    def mask_raster(self) -> RasterTileSource | None:
        return self._mask_source

    # ------------------------------------------------------------------ buildings
    def set_buildings(self, rings: list | None) -> None:
        """Building outlines to draw: a list of (N, 2) arrays of image-pixel x, y (None clears)."""
        self._buildings_item.set_rings(rings)
        self.layers_changed.emit()

    def add_buildings(self, rings: list) -> None:
        self._buildings_item.add_rings(rings)

    def buildings_count(self) -> int:
        return self._buildings_item.count()

    def set_buildings_visible(self, visible: bool) -> None:
        self._buildings_item.setVisible(bool(visible))

    def buildings_visible(self) -> bool:
        return self._buildings_item.isVisible()

    def _check_shape(self, array: np.ndarray, what: str) -> None:
        if self._image is None:
            raise ValueError(f"cannot show a {what} without an image")
        if array.shape[:2] != self._image.shape[:2]:
            raise ValueError(
                f"{what} is {array.shape[1]} x {array.shape[0]} but the image is "
                f"{self._image.shape[1]} x {self._image.shape[0]}"
            )

    def image(self) -> np.ndarray | None:
        return self._image

    def label_array(self) -> np.ndarray | None:
        """The label mask shown (a reference: annotation tools edit it in place)."""
        return self._label

    def probability(self) -> np.ndarray | None:
        return self._prob

    def displayed_mask(self) -> np.ndarray | None:
        """The prediction mask as shown: ``to_mask(prob, threshold, dilation)``; what export writes."""
        return self._shown_mask

    def shown_overlay_codes(self, layer: str) -> np.ndarray | None:
        """The codes currently uploaded for ``layer`` (``None`` when the layer is empty)."""
        item = {
            "label": self._label_item,
            "prediction": self._pred_item,
            "error": self._error_item,
        }[layer]
        return item.codes()

    def update_label_region(self, region) -> None:
        """Repaint only ``region`` of the label (and error) overlay after an in-place edit.

        ``region`` is a ``core.annotate.Region`` (half-open ``y0:y1, x0:x1``), a QRect, or
        ``(x0, y0, x1, y1)`` with exclusive x1/y1, in image pixels. ``None`` does nothing.
        Cost is proportional to the region, not to the image (brush strokes on 2048 x 2048).
        """
        if self._label is None or region is None:
            return
        if isinstance(region, QRect):
            rect = region
        elif hasattr(region, "x0"):
            rect = QRect(
                int(region.x0),
                int(region.y0),
                int(region.x1 - region.x0),
                int(region.y1 - region.y0),
            )
        else:
            x0, y0, x1, y1 = (int(v) for v in region)
            rect = QRect(x0, y0, x1 - x0, y1 - y0)
        height, width = self._label.shape
        rect = rect.intersected(QRect(0, 0, width, height))
        if rect.isEmpty():
            return
        self._label_item.update_region(overlays.mask_codes(self._label), rect)
        if self._shown_mask is not None and self.state.show_error:
            codes = self._error_item.codes()
            if codes is None or codes.shape != self._label.shape:
                self._refresh_error()
            else:
                rows = slice(rect.top(), rect.bottom() + 1)
                cols = slice(rect.left(), rect.right() + 1)
                codes[rows, cols] = overlays.error_codes(
                    self._shown_mask[rows, cols], self._label[rows, cols]
                )
                self._error_item.update_region(codes, rect)
        self.layers_changed.emit()

    # ------------------------------------------------------------------ state
    def set_layer_visible(self, layer: str, visible: bool) -> None:
        if layer not in LAYERS:
            raise ValueError(f"unknown layer {layer!r}; layers are {LAYERS}")
        setattr(self.state, f"show_{layer}", bool(visible))
        if layer == "error":
            self._refresh_error()
        self._apply_layer_state()

    def is_layer_visible(self, layer: str) -> bool:
        return getattr(self.state, f"show_{layer}")

    def set_label_outline(self, outline: bool) -> None:
        """Draw the label as its outline (the default) or filled."""
        self._label_item.set_outline(overlays.OUTLINE_WIDTH if outline else 0)
        self._label_item.setZValue(40 if outline else 10)
        self._apply_layer_state()

    def label_outline(self) -> bool:
        return self._label_item.outline > 0

    def set_heatmap(self, on: bool) -> None:
        """Show the prediction as a probability heat map (True) or as the thresholded mask."""
        if self.state.heatmap != bool(on):
            self.state.heatmap = bool(on)
            self._refresh_prediction()

    def set_opacity(self, opacity: float) -> None:
        self.state.opacity = float(min(max(opacity, 0.0), 1.0))
        self._apply_layer_state()

    def set_threshold(self, threshold: float) -> None:
        threshold = postprocess.check_threshold(threshold)
        if threshold != self.state.threshold:
            self.state.threshold = threshold
            self._refresh_prediction()

    def set_dilation(self, enabled: bool, kernel: int | None = None) -> None:
        if kernel is not None:
            self.state.dilation_kernel = postprocess.check_kernel(kernel)
        self.state.dilation_on = bool(enabled)
        self._refresh_prediction()

    def set_state(self, state: LayerState) -> None:
        self.state = LayerState(**vars(state))
        self._refresh_prediction()

    def _apply_layer_state(self) -> None:
        s = self.state
        # While the error map shows something, it shows the label too (true positives + false
        # negatives); an outline on top would hide the narrow error bands along the roof edges
        # and, yellow beside the orange false positives, read as one thick border.
        self._label_item.setVisible(
            s.show_label
            and not (self.label_outline() and s.show_error and self._error_item.codes() is not None)
        )
        self._pred_item.setVisible(s.show_prediction)
        self._error_item.setVisible(s.show_error)
        self._pred_item.setOpacity(s.opacity)
        for item in (self._strip_item, self._mask_item):
            if item is not None:
                item.setVisible(s.show_prediction)
                item.setOpacity(s.opacity)
        # a thin outline needs more opacity than a fill to read: opaque from 50 % up
        self._label_item.setOpacity(min(1.0, 2 * s.opacity) if self.label_outline() else s.opacity)
        self._error_item.setOpacity(min(1.0, s.opacity + 0.25))
        self.layers_changed.emit()

    # ------------------------------------------------------------------ rendering
    def _base_mask(self) -> np.ndarray:
        """``prob >= threshold`` as uint8 0/1 (cached per threshold)."""
        key = self.state.threshold
        if self._base_key != key or self._base is None:
            # check_threshold + the comparison core.postprocess.to_mask makes (float32 vs scalar)
            self._base = (self._prob >= postprocess.check_threshold(key)).view(np.uint8)
            self._base_key = key
        return self._base

    def _heat_codes(self) -> np.ndarray:
        kernel = self.state.dilation
        if kernel not in self._heat:
            if 0 not in self._heat:
                self._heat[0] = overlays.heat_codes(self._prob)
            if len(self._heat) > 4:
                self._heat = {0: self._heat[0]}
            self._heat[kernel] = overlays.max_filter(self._heat[0], kernel)
        return self._heat[kernel]

    def _refresh_prediction(self) -> None:
        start = time.perf_counter()
        if self._prob is None:
            self._shown_mask = None
            self._pred_item.set_codes(None)
        else:
            # == core.postprocess.to_mask(prob, threshold, dilation): max and threshold commute.
            shown = overlays.max_filter(self._base_mask(), self.state.dilation)
            self._shown_mask = shown.view(bool)
            if self.state.heatmap:
                self._pred_item.set_table(overlays.heat_table_cached())
                self._pred_item.set_codes(self._heat_codes())
            else:
                self._pred_item.set_table(overlays.mask_table(overlays.PREDICTION_COLOR))
                self._pred_item.set_codes(shown)
        self._refresh_error()
        self.last_render_ms = (time.perf_counter() - start) * 1000.0
        self.rendered.emit(self.last_render_ms)
        self._apply_layer_state()

    def _refresh_error(self) -> None:
        if self.state.show_error and self._shown_mask is not None and self._label is not None:
            self._error_item.set_codes(overlays.error_codes(self._shown_mask, self._label))
        else:
            self._error_item.set_codes(None)

    def pixel_info(self, x: int, y: int) -> dict:
        """What is at image pixel (x, y): rgb, label, probability, shown prediction."""
        info: dict = {}
        if self._image is None and self._raster is not None:
            return self._raster_pixel_info(x, y)
        if self._image is None or not (
            0 <= y < self._image.shape[0] and 0 <= x < self._image.shape[1]
        ):
            return info
        info["rgb"] = tuple(int(v) for v in self._image[y, x])
        if self._label is not None:
            info["label"] = bool(self._label[y, x])
        if self._prob is not None:
            info["probability"] = float(self._prob[y, x])
            if self._shown_mask is not None:
                info["prediction"] = bool(self._shown_mask[y, x])
        return info

    def _raster_pixel_info(self, x: int, y: int) -> dict:
        """:meth:`pixel_info` on a raster: map coordinates and CRS, colour when its tile is read,
        the probability of a predicted window."""
        raster = self._raster
        info: dict = {}
        if raster is None or raster.info is None:
            return info
        meta = raster.info
        if not (0 <= x < meta.width and 0 <= y < meta.height):
            return info
        if meta.georeferenced:
            info["map"] = meta.map_xy(x + 0.5, y + 0.5)
            info["crs"] = meta.crs_name
        rgb = raster.pixel_rgb(x, y)
        if rgb is not None:
            info["rgb"] = rgb
        if self._prob is not None:
            x0, y0 = self._prob_offset
            px, py = x - x0, y - y0
            if 0 <= py < self._prob.shape[0] and 0 <= px < self._prob.shape[1]:
                info["probability"] = float(self._prob[py, px])
                if self._shown_mask is not None:
                    info["prediction"] = bool(self._shown_mask[py, px])
        return info

    # ------------------------------------------------------------------ zoom and pan
    def zoom(self) -> float:
        return float(self.transform().m11())

    def set_zoom(self, factor: float, anchor: QPointF | None = None) -> None:
        """Zoom to ``factor`` (1.0 = 100 %), keeping ``anchor`` (view coords) fixed if given."""
        factor = min(max(factor, MIN_ZOOM), MAX_ZOOM)
        self._fit_on_resize = False
        old = self.zoom()
        if old <= 0:
            return
        if anchor is not None:
            scene_before = self.mapToScene(anchor.toPoint())
        self.scale(factor / old, factor / old)
        if anchor is not None:
            delta = self.mapToScene(anchor.toPoint()) - scene_before
            self.translate(delta.x(), delta.y())
        self._after_zoom()

    def zoom_by(self, step: float, anchor: QPointF | None = None) -> None:
        self.set_zoom(self.zoom() * step, anchor)

    def zoom_in(self) -> None:
        self.zoom_by(1.25)

    def zoom_out(self) -> None:
        self.zoom_by(0.8)

    def fit(self) -> None:
        """Fit the whole image in the view."""
        self._fit_on_resize = True
        rect = self._scene.sceneRect()
        if rect.isEmpty():
            self.resetTransform()
        else:
            self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        self._after_zoom()

    def zoom_100(self) -> None:
        """One image pixel per screen pixel."""
        self.set_zoom(1.0, QPointF(self.viewport().rect().center()))

    def _after_zoom(self) -> None:
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.zoom() < 1.0)
        self.zoom_changed.emit(self.zoom())
        self._schedule_tiles()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if self._fit_on_resize:
            self.fit()
        self._schedule_tiles()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        delta = event.angleDelta().y() or event.angleDelta().x()
        if delta == 0:
            return
        self.zoom_by(1.25 ** (delta / 120.0), event.position())
        event.accept()

    # ------------------------------------------------------------------ mouse
    def image_pos(self, view_pos: QPointF) -> QPointF:
        return self.mapToScene(view_pos.toPoint())

    def _starts_pan(self, event: QMouseEvent) -> bool:
        button = event.button()
        return button == Qt.MouseButton.MiddleButton or (
            button == Qt.MouseButton.LeftButton and (self._space_down or self.left_button_pans)
        )

    def space_held(self) -> bool:
        """Whether Space is held (Space + left drag pans whatever tool is active)."""
        return self._space_down

    def is_panning(self) -> bool:
        return self._panning

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = self.image_pos(event.position())
        if not self._starts_pan(event):  # a press that pans is not a tool's
            self.mouse_pressed_image.emit(pos.x(), pos.y(), event.buttons())
        if self._starts_pan(event):
            self._panning = True
            self._pan_last = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        super().mousePressEvent(event)
        if not self.left_button_pans:
            event.accept()  # the annotation tool took it

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = self.image_pos(event.position())
        if self._panning:
            delta = event.position() - self._pan_last
            self._pan_last = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(delta.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(delta.y()))
            self._fit_on_resize = False
        else:
            self.mouse_moved_image.emit(pos.x(), pos.y(), event.buttons())
        self._emit_cursor(pos)
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = self.image_pos(event.position())
        if self._panning and not (
            event.buttons() & (Qt.MouseButton.MiddleButton | Qt.MouseButton.LeftButton)
        ):
            self._panning = False
            self.viewport().setCursor(
                Qt.CursorShape.OpenHandCursor if self._space_down else Qt.CursorShape.CrossCursor
            )
        self.mouse_released_image.emit(pos.x(), pos.y(), event.button())
        super().mouseReleaseEvent(event)
        if not self.left_button_pans:
            event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = self.image_pos(event.position())
        if self._starts_pan(event):
            self.mousePressEvent(event)  # a quick second press while panning still pans
            return
        self.mouse_double_clicked_image.emit(pos.x(), pos.y(), event.buttons())
        super().mouseDoubleClickEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802
        self._report_cursor(-1, -1)
        self.mouse_left.emit()
        super().leaveEvent(event)

    def _emit_cursor(self, pos: QPointF) -> None:
        """Report the pixel under the pointer, at most every ``CURSOR_REPORT_MS`` (the latest
        position of a burst is reported when the interval is over)."""
        x, y = math.floor(pos.x()), math.floor(pos.y())
        size = self.image_size()
        if size is None or not (0 <= x < size[0] and 0 <= y < size[1]):
            x, y = -1, -1
        wait_ms = CURSOR_REPORT_MS - (time.monotonic() - self._cursor_reported) * 1000.0
        if wait_ms <= 0 and not self._cursor_timer.isActive():
            self._report_cursor(x, y)
        else:
            self._cursor_pending = (x, y)
            if not self._cursor_timer.isActive():
                self._cursor_timer.start(max(1, math.ceil(wait_ms)))

    def _flush_cursor(self) -> None:
        if self._cursor_pending is not None:
            self._report_cursor(*self._cursor_pending)

    def _report_cursor(self, x: int, y: int) -> None:
        """Emit ``cursor_moved`` now (a pending, older position is dropped)."""
        self._cursor_timer.stop()
        self._cursor_pending = None
        self._cursor_reported = time.monotonic()
        self.cursor_moved.emit(x, y)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            self.viewport().setCursor(Qt.CursorShape.CrossCursor)
            event.accept()
            return
        super().keyReleaseEvent(event)

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        self.viewport().setCursor(Qt.CursorShape.CrossCursor)

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802
        if self._image is not None or self._raster is not None or not self._message:
            return
        painter.save()
        painter.resetTransform()
        painter.setPen(QColor(150, 155, 165))
        font = painter.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        painter.setFont(font)
        painter.drawText(
            self.viewport().rect().adjusted(40, 40, -40, -40),
            Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
            self._message,
        )
        painter.restore()
