"""Annotation on the canvas: tools, undo/redo, save, unsaved-edit prompts and recovery copies.

:class:`AnnotationController` turns the canvas's mouse intent into :class:`core.annotate.MaskEditor`
calls and repaints only the :class:`core.annotate.Region` each call returns
(``canvas.update_label_region``). Everything runs in the GUI thread on numpy arrays: painting never
waits for torch or for a running training.

Tools (one checkable action each, in :class:`AnnotationToolBar`):

* Pan (V): the left button pans (as without annotation).
* Brush (B) / Eraser (X): drag to paint / erase a stroke of the brush size (``[`` / ``]``, the
  spin box); the right button does the opposite (erases while brushing). The brush outline follows
  the pointer at the canvas zoom.
* Fill (G): left click fills the enclosed area with roof, right click clears the roof under it.
* Polygon (O): click vertices; double click, Enter or a click on the first vertex closes and fills
  it, right click closes it as an eraser, Backspace drops the last vertex, Esc cancels.
* Accept roof (A): click a predicted roof to add that connected roof to the label;
  Shift+A accepts the whole shown prediction as the label.

Undo/redo (Ctrl+Z, Ctrl+Shift+Z or Ctrl+Y) keep 200 steps. Ctrl+S saves atomically
(``MaskEditor.save``). While edits are unsaved, a recovery copy is written every few seconds to
``<data dir>/recovery/``; it is removed on save or discard and offered back when its dataset is
opened again (after a crash).

The dialogs are module-level functions (:func:`ask_unsaved_changes`, :func:`ask_restore_recovery`,
:func:`show_save_error`) so that tests can replace them.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QBrush,
    QColor,
    QKeyEvent,
    QKeySequence,
    QPainterPath,
    QPen,
)
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsRectItem,
    QLabel,
    QListWidget,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from core.annotate import MaskEditor, Region, load_recovery
from core.errors import ImageReadError, RooftopError
from rooftop_gui import settings as cfg
from rooftop_gui.canvas import ImageCanvas
from rooftop_gui.errors import describe, show_error
from rooftop_gui.resources import icon

log = logging.getLogger(__name__)

TOOLS = ("pan", "brush", "eraser", "fill", "polygon", "accept")
PAINT_TOOLS = ("brush", "eraser")
#: How often a recovery copy of unsaved edits is written (only when the mask changed since).
RECOVERY_INTERVAL_MS = 5000
MIN_BRUSH, MAX_BRUSH, DEFAULT_BRUSH = 1, 400, 16
#: A click closer than this (screen pixels) to the first polygon vertex closes the polygon.
CLOSE_DISTANCE_PX = 8.0

SAVE, DISCARD, CANCEL = "save", "discard", "cancel"
RESTORE, LATER = "restore", "later"


# ----------------------------------------------------------------------------- paths


def label_path_of(root: Path | None, sample: Any) -> Path:
    """Where ``sample``'s label lives, or will be created (``core.dataset.label_path_for``)."""
    existing = getattr(sample, "label_path", None)
    if existing is not None:
        return Path(existing)
    try:
        from core.dataset import label_path_for
    except ImportError:
        label_path_for = None
    if label_path_for is not None and root is not None:
        return Path(label_path_for(root, sample.split, sample.name))
    base = Path(root) if root is not None else Path(sample.image_path).parent.parent.parent
    return base / sample.split / "label" / f"{Path(sample.name).stem}.png"


def recovery_dir() -> Path:
    """``<data dir>/recovery``: ``ROOFTOP_DATA_DIR`` or the platform's user data folder."""
    return cfg.data_dir() / "recovery"


def _key(path: Path | str) -> str:
    return str(Path(path).resolve())


def recovery_path_for(label_path: Path | str) -> Path:
    """The recovery copy of ``label_path``: ``<stem>-<hash of the full path>.npz``."""
    digest = hashlib.sha1(_key(label_path).encode("utf-8")).hexdigest()[:16]
    return recovery_dir() / f"{Path(label_path).stem}-{digest}.npz"


@dataclass
class RecoveryEntry:
    """A recovery copy on disk that belongs to an image of the open dataset."""

    file: Path
    label_path: Path
    sample: Any
    created: str = ""

    def describe(self) -> str:
        when = f"   (last copy {self.created})" if self.created else ""
        return f"{self.sample.split}/{self.sample.name}{when}"


def find_recovery(root: Path, samples: list[Any]) -> list[RecoveryEntry]:
    """The readable recovery copies whose label path belongs to one of ``samples``."""
    folder = recovery_dir()
    if not folder.is_dir():
        return []
    by_label = {_key(label_path_of(root, s)): s for s in samples}
    found: list[RecoveryEntry] = []
    for file in sorted(folder.glob("*.npz")):
        try:
            copy = load_recovery(file)
        except ImageReadError as exc:
            log.warning("skipping unreadable recovery copy: %s", exc)
            continue
        if copy.label_path is None:
            continue
        sample = by_label.get(_key(copy.label_path))
        if sample is not None:
            try:
                created = _dt.datetime.fromtimestamp(file.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
            except OSError:
                created = ""
            found.append(RecoveryEntry(file, Path(copy.label_path), sample, created))
    return found


# ----------------------------------------------------------------------------- dialogs


def ask_unsaved_changes(parent: QWidget | None, what: str) -> str:
    """Ask what to do with unsaved edits of ``what``: SAVE, DISCARD or CANCEL."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved label edits",
                      f"The label of {what} has unsaved edits.",
                      QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                      | QMessageBox.StandardButton.Cancel, parent)
    box.setInformativeText("Save them before going on?")
    box.setDefaultButton(QMessageBox.StandardButton.Save)
    answer = box.exec()
    if answer == QMessageBox.StandardButton.Save:
        return SAVE
    if answer == QMessageBox.StandardButton.Discard:
        return DISCARD
    return CANCEL


class RecoveryDialog(QDialog):
    """Lists recovered edits; Restore / Discard / Decide later."""

    def __init__(self, entries: list[RecoveryEntry], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Recover unsaved label edits")
        self.choice = LATER
        text = QLabel(f"Rooftop Studio found {len(entries)} label(s) with edits that were not "
                      "saved (the app closed unexpectedly). Restore them as unsaved edits?")
        text.setWordWrap(True)
        self.list = QListWidget()
        self.list.addItems([e.describe() for e in entries])
        buttons = QDialogButtonBox()
        restore = QPushButton("Restore")
        restore.setDefault(True)
        discard = QPushButton("Discard")
        later = QPushButton("Decide later")
        buttons.addButton(restore, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(discard, QDialogButtonBox.ButtonRole.DestructiveRole)
        buttons.addButton(later, QDialogButtonBox.ButtonRole.RejectRole)
        restore.clicked.connect(lambda: self._done(RESTORE))
        discard.clicked.connect(lambda: self._done(DISCARD))
        later.clicked.connect(lambda: self._done(LATER))
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(self.list)
        layout.addWidget(buttons)
        self.resize(480, 300)

    def _done(self, choice: str) -> None:
        self.choice = choice
        self.accept()


def ask_restore_recovery(parent: QWidget | None, entries: list[RecoveryEntry]) -> str:
    """Offer recovered edits back: RESTORE, DISCARD or LATER (keep the copies for next time)."""
    dialog = RecoveryDialog(entries, parent)
    dialog.exec()
    return dialog.choice


def show_save_error(parent: QWidget | None, path: Path, exc: BaseException) -> None:
    """The label at ``path`` could not be written; the edits stay in memory."""
    text = describe(exc)
    if str(path) not in text:
        text = f"{path}: {text}"
    show_error(parent, "Cannot save the label",
               f"{text}\n\nYour edits are still in memory and unsaved: fix the problem and "
               "save again (Ctrl+S).")


# ----------------------------------------------------------------------------- canvas items


class _Circle(QGraphicsEllipseItem):
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


class _BrushOutline:
    """The brush's circle on the canvas: white over black, cosmetic (1 screen pixel) pens."""

    def __init__(self, canvas: ImageCanvas) -> None:
        self.dark = _Circle()
        self.light = _Circle()
        for item, color, width, z in ((self.dark, QColor(0, 0, 0, 170), 3.0, 100),
                                      (self.light, QColor(255, 255, 255), 1.2, 101)):
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


class _PolygonBand:
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


# ----------------------------------------------------------------------------- controller


@dataclass
class _Pending:
    editor: MaskEditor
    file: Path


class AnnotationController(QObject):
    """Edits the label of the image on the canvas. See the module docstring.

    The main window calls :meth:`set_dataset` and :meth:`set_sample` (after the image is shown),
    :meth:`resolve_unsaved` before anything that would drop the edits, and
    :meth:`offer_recovery` after opening a dataset.
    """

    dirty_changed = Signal(bool)
    label_saved = Signal(object, object)   # sample, label path
    status_message = Signal(str)
    tool_changed = Signal(str)

    def __init__(self, canvas: ImageCanvas, settings: QSettings, window: QWidget) -> None:
        super().__init__(window)
        self.canvas = canvas
        self.settings = settings
        self.window = window
        self.root: Path | None = None
        self.sample: Any = None
        self.label_path: Path | None = None
        self.editor: MaskEditor | None = None
        self.tool = "pan"
        self._shape: tuple[int, int] | None = None
        self._label_error: str | None = None
        self._label_is_new = False
        self._pending: dict[str, _Pending] = {}
        self._recovery_file: Path | None = None
        self._recovered_revision: int | None = None
        self._last_dirty = False
        self._stroke_button = Qt.MouseButton.NoButton
        self._polygon: list[QPointF] = []
        self._pointer: QPointF | None = None
        self._erase_hint = False

        self.brush_size = min(MAX_BRUSH, max(MIN_BRUSH, cfg.get_int(settings, "annotate/brush_size",
                                                                    DEFAULT_BRUSH)))
        self._outline = _BrushOutline(canvas)
        self._band = _PolygonBand(canvas)
        self._make_actions()
        self.toolbar = AnnotationToolBar(self, window)

        self.recovery_timer = QTimer(self)
        self.recovery_timer.setInterval(RECOVERY_INTERVAL_MS)
        self.recovery_timer.timeout.connect(self.write_recovery)
        self.recovery_timer.start()

        canvas.mouse_pressed_image.connect(self._pressed)
        canvas.mouse_moved_image.connect(self._moved)
        canvas.mouse_released_image.connect(self._released)
        canvas.mouse_double_clicked_image.connect(self._double_clicked)
        canvas.mouse_left.connect(self._left)
        canvas.zoom_changed.connect(lambda _z: self._refresh_cursor())
        canvas.installEventFilter(self)
        self._update_actions()

    # ------------------------------------------------------------------ actions
    def _make_actions(self) -> None:
        def action(text: str, keys: list[str], icon_name: str, tip: str,
                   checkable: bool = False) -> QAction:
            act = QAction(icon(icon_name) if icon_name else icon("blank"), text, self)
            act.setShortcuts([QKeySequence(k) for k in keys])
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            shown = " or ".join(QKeySequence(k).toString(QKeySequence.SequenceFormat.NativeText)
                                for k in keys)
            act.setToolTip(f"{tip} ({shown})" if keys else tip)
            act.setStatusTip(tip)
            act.setCheckable(checkable)
            act.setProperty("shortcutGroup", "Annotate")
            self.window.addAction(act)
            return act

        self.tool_group = QActionGroup(self)
        self.tool_group.setExclusive(True)
        self.tool_actions: dict[str, QAction] = {}
        for name, text, key, tip in (
                ("pan", "&Pan tool", "V", "Pan: the left button drags the image"),
                ("brush", "&Brush", "B", "Brush: paint roof (right button erases)"),
                ("eraser", "&Eraser", "X", "Eraser: erase roof (right button paints)"),
                ("fill", "&Fill", "G", "Fill: click inside an outline to fill it with roof "
                                        "(right click clears the roof under the pointer)"),
                ("polygon", "P&olygon", "O", "Polygon: click the corners; double click or Enter "
                                             "fills it, right click erases it, Esc cancels"),
                ("accept", "&Accept predicted roof", "A",
                 "Accept roof: click a predicted roof to add it to the label")):
            act = action(text, [key], "pan" if name == "pan" else
                         ("accept-roof" if name == "accept" else name), tip, checkable=True)
            act.triggered.connect(lambda _c=False, n=name: self.set_tool(n))
            self.tool_group.addAction(act)
            self.tool_actions[name] = act
        self.tool_actions["pan"].setChecked(True)

        self.accept_all_action = action("Accept &whole prediction as label", ["Shift+A"],
                                        "accept-all",
                                        "Replace the label by the prediction as shown "
                                        "(threshold and dilation)")
        self.accept_all_action.triggered.connect(lambda _c=False: self.accept_all())
        self.undo_action = action("&Undo", ["Ctrl+Z"], "undo", "Undo the last label edit")
        self.undo_action.triggered.connect(lambda _c=False: self.undo())
        self.redo_action = action("&Redo", ["Ctrl+Shift+Z", "Ctrl+Y"], "redo",
                                  "Redo the last undone label edit")
        self.redo_action.triggered.connect(lambda _c=False: self.redo())
        self.save_action = action("&Save label", ["Ctrl+S"], "save",
                                  "Save the label mask of this image")
        self.save_action.triggered.connect(lambda _c=False: self.save())
        self.smaller_action = action("Brush s&maller", ["["], "", "Make the brush smaller")
        self.smaller_action.triggered.connect(lambda _c=False: self.step_brush(-1))
        self.bigger_action = action("Brush &bigger", ["]"], "", "Make the brush bigger")
        self.bigger_action.triggered.connect(lambda _c=False: self.step_brush(+1))

    def actions_list(self) -> list[QAction]:
        """Tool actions then edit actions (for the Edit menu)."""
        return [*self.tool_actions.values()]

    def edit_actions(self) -> list[QAction]:
        return [self.undo_action, self.redo_action, self.save_action, self.accept_all_action,
                self.smaller_action, self.bigger_action]

    # ------------------------------------------------------------------ tool state
    def set_tool(self, name: str) -> None:
        if name not in TOOLS:
            raise ValueError(f"unknown tool {name!r}; tools are {TOOLS}")
        self._finish_interaction()
        self.tool = name
        self.tool_actions[name].setChecked(True)
        self.canvas.left_button_pans = name == "pan"
        self._refresh_cursor()
        self.tool_changed.emit(name)
        hints = {
            "pan": "Pan: drag with the left button.",
            "brush": "Brush: drag to paint roof, right-drag to erase; [ and ] change the size.",
            "eraser": "Eraser: drag to erase, right-drag to paint; [ and ] change the size.",
            "fill": "Fill: click inside a closed outline; right click clears a roof.",
            "polygon": "Polygon: click the corners, double click or Enter to fill, Esc cancels.",
            "accept": "Accept roof: click a predicted roof to add it to the label.",
        }
        self.status_message.emit(hints[name])

    def set_brush_size(self, size: int) -> None:
        size = int(min(MAX_BRUSH, max(MIN_BRUSH, size)))
        if size != self.brush_size:
            self.brush_size = size
            self.settings.setValue("annotate/brush_size", size)
        self.toolbar.sync_size(size)
        self._refresh_cursor()

    def step_brush(self, direction: int) -> None:
        size = self.brush_size
        step = 1 if size < 10 else max(2, round(size * 0.2))
        self.set_brush_size(size + direction * step)

    @property
    def radius(self) -> float:
        """Brush radius in image pixels (the size is the diameter)."""
        return self.brush_size / 2.0

    # ------------------------------------------------------------------ dataset / sample
    def set_dataset(self, root: Path | None) -> None:
        self.root = Path(root) if root is not None else None

    def label_path_of(self, sample: Any) -> Path:
        return label_path_of(self.root, sample)

    def set_sample(self, sample: Any, shape: tuple[int, int] | None = None,
                   mask: np.ndarray | None = None, label_error: str | None = None) -> None:
        """The canvas now shows ``sample`` (image of ``shape``) with its label ``mask``.

        ``mask`` is ``None`` when the image has no label yet (the first edit creates it) or when
        it could not be read (``label_error``: editing is then refused, so a file we cannot read
        is never overwritten).
        """
        self._finish_interaction()
        self._drop_editor(keep_recovery=True)
        self.sample = sample
        self.label_path = self.label_path_of(sample) if sample is not None else None
        self._shape = tuple(shape) if shape is not None else None
        self._label_error = label_error
        # only a label that does not exist yet may create its folder when saved
        self._label_is_new = (mask is None and label_error is None and self.label_path is not None
                              and not self.label_path.exists())
        editor = None
        if sample is not None and self._shape is not None:
            pending = self._pending.pop(_key(self.label_path), None)
            if pending is not None and pending.editor.shape == self._shape:
                editor = pending.editor
                editor.path = self.label_path
                self._recovery_file = pending.file
                self._label_error = None
                self.status_message.emit(f"Restored unsaved edits of {sample.split}/{sample.name}")
            elif pending is not None:
                self.status_message.emit(
                    f"Recovered edits of {sample.name} do not match its size; kept on disk")
            if editor is None and mask is not None:
                # (also when a recovered copy did not fit: edit the label on disk, never an
                # empty mask that a save would write over it)
                editor = MaskEditor(mask, path=self.label_path)
        self.editor = editor
        self._show_label()
        self._update_actions()

    def _show_label(self) -> None:
        if self.canvas.image() is None:
            return
        self.canvas.set_label(self.editor.mask if self.editor is not None else None)

    def _drop_editor(self, keep_recovery: bool) -> None:
        if not keep_recovery:
            self._delete_recovery()
        self.editor = None
        self._recovery_file = None
        self._recovered_revision = None

    def _ensure_editor(self) -> MaskEditor | None:
        """The editor of the current image, created empty for an image without a label."""
        if self.editor is not None:
            return self.editor
        if self.sample is None or self._shape is None or self.canvas.image() is None:
            self.status_message.emit("Open an image first.")
            return None
        if self._label_error is not None:
            self.status_message.emit(f"Cannot edit: the label could not be read "
                                     f"({self._label_error}). Fix or remove the file first.")
            return None
        self.editor = MaskEditor(None, self._shape, path=self.label_path)
        self._show_label()
        return self.editor

    # ------------------------------------------------------------------ state
    def has_unsaved(self) -> bool:
        return self.editor is not None and self.editor.dirty

    def _changed(self, region: Region | None) -> None:
        if region is None:
            return
        label = self.canvas.label_array()
        if label is not self.editor.mask:  # the canvas copied the mask: keep it in step
            if label is None or label.shape != self.editor.mask.shape:
                self._show_label()
                self._update_actions()
                return
            label[region.slices] = self.editor.mask[region.slices]
        self.canvas.update_label_region(region)
        self._update_actions()

    def _update_actions(self) -> None:
        editor = self.editor
        self.undo_action.setEnabled(editor is not None and editor.can_undo)
        self.redo_action.setEnabled(editor is not None and editor.can_redo)
        dirty = self.has_unsaved()
        self.save_action.setEnabled(dirty)
        if dirty != self._last_dirty:
            self._last_dirty = dirty
            self.dirty_changed.emit(dirty)
        if not dirty and self._recovery_file is not None and editor is not None:
            self._delete_recovery()  # back at the saved state (undo): nothing to recover

    # ------------------------------------------------------------------ mouse
    def _editing_tool(self) -> bool:
        return self.tool != "pan" and self.canvas.image() is not None

    def _pressed(self, x: float, y: float, buttons: Any) -> None:
        if not self._editing_tool():
            return
        buttons = Qt.MouseButton(buttons)
        left = bool(buttons & Qt.MouseButton.LeftButton)
        right = bool(buttons & Qt.MouseButton.RightButton)
        if not (left or right) or (self.editor is not None and self.editor.in_stroke):
            return
        px, py = x - 0.5, y - 0.5
        if self.tool in PAINT_TOOLS:
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
            editor = self._ensure_editor()
            if editor is not None:
                region = editor.fill(px, py, value=not (right and not left))
                if region is None:
                    self.status_message.emit("Nothing to fill there.")
                self._changed(region)
        elif self.tool == "polygon":
            self._polygon_click(QPointF(x, y), erase=right and not left)
        elif self.tool == "accept" and left:
            self.accept_roof(x, y)

    def _moved(self, x: float, y: float, _buttons: Any) -> None:
        self._pointer = QPointF(x, y)
        editor = self.editor
        if editor is not None and editor.in_stroke:
            self._changed(editor.stroke_to(x - 0.5, y - 0.5))
        self._refresh_cursor()

    def _released(self, _x: float, _y: float, button: Any) -> None:
        editor = self.editor
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
        if self.tool in PAINT_TOOLS and pointer is not None and self.canvas.image() is not None:
            self._outline.show_at(pointer.x(), pointer.y(), max(self.radius, 0.5),
                                  erase=(self.tool == "eraser") != self._erase_hint)
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
            elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self._polygon:
                self.close_polygon()
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
        self._stroke_button = Qt.MouseButton.NoButton
        self._erase_hint = False
        self.cancel_polygon()

    # ------------------------------------------------------------------ prediction
    def _shown_prediction(self) -> np.ndarray | None:
        prediction = self.canvas.displayed_mask()
        if prediction is None:
            self.status_message.emit("No prediction for this image yet: predict it first "
                                     "(Prediction > Predict current image).")
        return prediction

    def accept_roof(self, x: float, y: float) -> Region | None:
        """Add the predicted roof under canvas point ``(x, y)`` to the label."""
        prediction = self._shown_prediction()
        if prediction is None:
            return None
        editor = self._ensure_editor()
        if editor is None:
            return None
        region = editor.accept_prediction(prediction, at=(x - 0.5, y - 0.5))
        if region is None:
            self.status_message.emit("No new predicted roof there.")
        self._changed(region)
        return region

    def accept_all(self) -> Region | None:
        """Replace the whole label by the prediction as shown."""
        self._finish_interaction()
        prediction = self._shown_prediction()
        if prediction is None:
            return None
        editor = self._ensure_editor()
        if editor is None:
            return None
        region = editor.accept_prediction(prediction)
        self._changed(region)
        if region is not None:
            self.status_message.emit("Accepted the prediction as the label (Ctrl+Z undoes).")
        return region

    # ------------------------------------------------------------------ history
    def undo(self) -> None:
        self._step_history(lambda editor: editor.undo())

    def redo(self) -> None:
        self._step_history(lambda editor: editor.redo())

    def _step_history(self, step) -> None:
        self.cancel_polygon()
        if self.editor is not None:
            self._changed(step(self.editor))
            self._update_actions()

    # ------------------------------------------------------------------ saving
    def save(self) -> bool:
        """Write the label atomically; False (error shown, edits kept) if it fails."""
        editor, path = self.editor, self.label_path
        if editor is None or path is None or not editor.dirty:
            return True
        if editor.in_stroke:
            editor.end_stroke()
        if self._label_is_new and not path.parent.exists():
            try:  # a brand-new label may create its folder; an existing one's never
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                show_save_error(self.window, path, exc)
                return False
        try:
            editor.save(path)
        except (RooftopError, OSError, ValueError) as exc:
            show_save_error(self.window, path, exc)
            self.status_message.emit(f"Not saved: {describe(exc)}")
            self._update_actions()
            return False
        self._label_is_new = False
        self._delete_recovery()
        self._update_actions()
        self.status_message.emit(f"Saved {path}")
        self.label_saved.emit(self.sample, path)
        return True

    def discard(self) -> None:
        """Forget the unsaved edits (and their recovery copy); the file on disk is unchanged."""
        self._finish_interaction()
        self._drop_editor(keep_recovery=False)
        self._update_actions()

    def describe_current(self) -> str:
        if self.sample is None:
            return "this image"
        return f"{self.sample.split}/{self.sample.name}"

    def resolve_unsaved(self) -> bool:
        """Before the edits would be lost: ask Save / Discard / Cancel. True means go on."""
        if not self.has_unsaved():
            return True
        answer = ask_unsaved_changes(self.window, self.describe_current())
        if answer == SAVE:
            return self.save()
        if answer == DISCARD:
            self.discard()
            return True
        return False

    # ------------------------------------------------------------------ recovery
    def write_recovery(self) -> Path | None:
        """Write a recovery copy if there are unsaved edits new since the last copy."""
        editor = self.editor
        if editor is None or not editor.dirty or self.label_path is None:
            return None
        if editor.revision == self._recovered_revision and self._recovery_file is not None \
                and self._recovery_file.exists():
            return None
        target = recovery_path_for(self.label_path)
        meta = {"dataset": str(self.root) if self.root else None,
                "split": getattr(self.sample, "split", None),
                "name": getattr(self.sample, "name", None),
                "image_path": str(getattr(self.sample, "image_path", ""))}
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            editor.save_recovery(target, meta)
        except (RooftopError, OSError, ValueError) as exc:
            log.warning("cannot write a recovery copy: %s", exc)
            self.status_message.emit(f"Cannot write a recovery copy: {describe(exc)}")
            return None
        if self._recovery_file is not None and self._recovery_file != target:
            self._recovery_file.unlink(missing_ok=True)
        self._recovery_file = target
        self._recovered_revision = editor.revision
        return target

    def _delete_recovery(self) -> None:
        for file in {self._recovery_file, recovery_path_for(self.label_path)
                     if self.label_path is not None else None} - {None}:
            try:
                file.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot delete the recovery copy %s: %s", file, exc)
        self._recovery_file = None
        self._recovered_revision = None

    def offer_recovery(self, samples: list[Any]) -> list[Any]:
        """Offer the recovery copies of this dataset back; returns the samples restored."""
        if self.root is None:
            return []
        entries = [e for e in find_recovery(self.root, samples)
                   if _key(e.label_path) not in self._pending
                   and not (self.label_path is not None and _key(e.label_path) == _key(self.label_path)
                            and self.has_unsaved())]
        if not entries:
            return []
        answer = ask_restore_recovery(self.window, entries)
        if answer == DISCARD:
            for entry in entries:
                entry.file.unlink(missing_ok=True)
            self.status_message.emit(f"Discarded {len(entries)} recovered edit(s).")
            return []
        if answer != RESTORE:
            return []
        restored = []
        for entry in entries:
            try:
                editor = MaskEditor.from_recovery(entry.file)
            except (RooftopError, ValueError) as exc:
                show_error(self.window, "Cannot restore recovered edits", exc)
                continue
            self._pending[_key(entry.label_path)] = _Pending(editor, entry.file)
            restored.append(entry.sample)
        current = self.sample
        if current is not None and self.label_path is not None \
                and _key(self.label_path) in self._pending and self._shape is not None:
            # the label on the canvas (saved: entries with unsaved edits are not offered) stays
            # what is edited if the recovered copy does not fit the image
            on_disk = self.editor.mask.copy() if self.editor is not None else None
            self.set_sample(current, self._shape, on_disk, self._label_error)
        return restored

    def shutdown(self) -> None:
        self.recovery_timer.stop()


# ----------------------------------------------------------------------------- tool bar


class AnnotationToolBar(QToolBar):
    """Tool buttons, the brush size and undo/redo/save/accept for the main window."""

    def __init__(self, controller: AnnotationController, parent: QWidget | None = None) -> None:
        super().__init__("Annotate", parent)
        self.setObjectName("toolbar_annotate")
        self.setMovable(False)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.controller = controller
        self.addActions(list(controller.tool_actions.values()))
        self.size_label = QLabel(" Size ")
        self.size_label.setObjectName("muted")
        self.addWidget(self.size_label)
        self.size = QSpinBox()
        self.size.setObjectName("brushSize")
        self.size.setRange(MIN_BRUSH, MAX_BRUSH)
        self.size.setSuffix(" px")
        self.size.setValue(controller.brush_size)
        self.size.setToolTip("Brush and eraser diameter in image pixels ([ smaller, ] bigger)")
        self.size.setKeyboardTracking(False)
        self.size.valueChanged.connect(controller.set_brush_size)
        self.addWidget(self.size)
        self.addSeparator()
        self.addActions([controller.accept_all_action, controller.undo_action,
                         controller.redo_action, controller.save_action])

    def sync_size(self, size: int) -> None:
        if self.size.value() != size:
            self.size.blockSignals(True)
            self.size.setValue(size)
            self.size.blockSignals(False)
