"""Annotation on the canvas: tools, undo/redo, save, unsaved-edit prompts and recovery copies.

:class:`AnnotationController` turns the canvas's mouse intent into
:class:`core.annotate.MaskEditor` calls and repaints only the :class:`core.annotate.Region` each
call returns (``canvas.update_label_region``). Everything runs in the GUI thread on numpy arrays:
painting never waits for torch or for a running training.

Tools (one checkable action each, in :class:`~rooftop_gui.annotation_toolbar.AnnotationToolBar`):

* Pan (V): the left button pans (as without annotation).
* Brush (B) / Eraser (X): drag to paint / erase a stroke of the brush size (``[`` / ``]``, the
  spin box); the right button does the opposite (erases while brushing). The brush outline follows
  the pointer at the canvas zoom.
* Fill (G): left click fills the enclosed area with roof, right click clears the roof under it. A
  fill that would cover more than a quarter of the image asks first.
* Polygon (O): click vertices; double click, Enter or a click on the first vertex closes and fills
  it, right click closes it as an eraser, Backspace drops the last vertex, Esc cancels.
* Accept roof (A): click a predicted roof to add that connected roof to the label;
  Shift+A accepts the whole shown prediction as the label (on a partly labelled image the
  strokes win where they disagree with it: :func:`core.scribbles.merge_into_label`).
* Roof strokes (R), Background strokes (K), Unlabel (U) and Smart select (S): see
  :mod:`rooftop_gui.annotation_strokes` (partial labels, issue 16).

Undo/redo (Ctrl+Z, Ctrl+Shift+Z or Ctrl+Y) keep 200 steps. Ctrl+S saves atomically
(``MaskEditor.save``). While edits are unsaved, a recovery copy is written every few seconds to
``<data dir>/recovery/`` (:mod:`core.annotate.recovery`); it is removed on save or discard and
offered back when its dataset is opened again (after a crash).

The questions are asked through :mod:`rooftop_gui.dialogs` (looked up at each call, so tests can
replace them there); the canvas items are in :mod:`rooftop_gui.annotation_items`, the actions and
the tool bar in :mod:`rooftop_gui.annotation_toolbar`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QSettings, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QWidget

from core.annotate import (
    MaskEditor,
    Region,
    fill_area,
    find_recovery,
    label_key,
    label_path_of,
    recovery_path_for,
)
from core.errors import RooftopError
from rooftop_gui import dialogs
from rooftop_gui import settings as cfg
from rooftop_gui.annotation_input import CanvasInput
from rooftop_gui.annotation_strokes import StrokeSupport
from rooftop_gui.annotation_toolbar import (
    DEFAULT_BRUSH,
    MAX_BRUSH,
    MIN_BRUSH,
    STROKE_TOOLS,
    TOOL_HINTS,
    TOOLS,
    AnnotationActions,
    AnnotationToolBar,
)
from rooftop_gui.canvas import ImageCanvas
from rooftop_gui.errors import describe, show_error

log = logging.getLogger(__name__)

#: How often a recovery copy of unsaved edits is written (only when the mask changed since).
RECOVERY_INTERVAL_MS = 5000
#: A roof fill covering more than this fraction of the image asks first.
LARGE_FILL_FRACTION = 0.25


def recovery_dir() -> Path:
    """``<data dir>/recovery``: ``ROOFTOP_DATA_DIR`` or the platform's user data folder."""
    return cfg.data_dir() / "recovery"


@dataclass
class _Pending:
    editor: MaskEditor
    file: Path


class AnnotationController(StrokeSupport, CanvasInput, QObject):
    """Edits the label of the image on the canvas. See the module docstring.

    The main window calls :meth:`set_dataset` and :meth:`set_sample` (after the image is shown),
    :meth:`resolve_unsaved` before anything that would drop the edits, and
    :meth:`offer_recovery` after opening a dataset.
    """

    dirty_changed = Signal(bool)
    label_saved = Signal(object, object)  # sample, label path
    strokes_saved = Signal(object, object)  # sample, stroke file
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

        self.brush_size = min(
            MAX_BRUSH, max(MIN_BRUSH, cfg.get_int(settings, "annotate/brush_size", DEFAULT_BRUSH))
        )
        self._init_input(canvas)
        self._init_strokes()
        actions = AnnotationActions(self, window)
        self.tool_group = actions.tool_group
        self.tool_actions: dict[str, QAction] = actions.tools
        self.accept_all_action = actions.accept_all
        self.undo_action, self.redo_action = actions.undo, actions.redo
        self.save_action = actions.save
        self.smaller_action, self.bigger_action = actions.smaller, actions.bigger
        self.toolbar = AnnotationToolBar(self, window)

        self.recovery_timer = QTimer(self)
        self.recovery_timer.setInterval(RECOVERY_INTERVAL_MS)
        self.recovery_timer.timeout.connect(self.write_recovery)
        self.recovery_timer.start()

        self._connect_input(canvas)
        self._update_actions()

    def actions_list(self) -> list[QAction]:
        """Tool actions then edit actions (for the Edit menu)."""
        return [*self.tool_actions.values()]

    def edit_actions(self) -> list[QAction]:
        return [
            self.undo_action,
            self.redo_action,
            self.save_action,
            self.accept_all_action,
            self.smaller_action,
            self.bigger_action,
        ]

    # ------------------------------------------------------------------ tool state
    def set_tool(self, name: str) -> None:
        if name not in TOOLS:
            raise ValueError(f"unknown tool {name!r}; tools are {TOOLS}")
        self._finish_interaction()
        self.tool = name
        if name in STROKE_TOOLS:
            self.active_layer = "strokes"
        elif name != "pan":
            self.active_layer = "label"
        self.tool_actions[name].setChecked(True)
        self.canvas.left_button_pans = name == "pan"
        self._refresh_cursor()
        self.tool_changed.emit(name)
        self.status_message.emit(TOOL_HINTS[name])

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

    def set_sample(
        self,
        sample: Any,
        shape: tuple[int, int] | None = None,
        mask: np.ndarray | None = None,
        label_error: str | None = None,
    ) -> None:
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
        self._label_is_new = (
            mask is None
            and label_error is None
            and self.label_path is not None
            and not self.label_path.exists()
        )
        editor = None
        if sample is not None and self._shape is not None:
            pending = self._pending.pop(label_key(self.label_path), None)
            if pending is not None and pending.editor.shape == self._shape:
                editor = pending.editor
                editor.path = self.label_path
                self._recovery_file = pending.file
                self._label_error = None
                self.status_message.emit(f"Restored unsaved edits of {sample.split}/{sample.name}")
            elif pending is not None:
                self.status_message.emit(
                    f"Recovered edits of {sample.name} do not match its size; kept on disk"
                )
            if editor is None and mask is not None:
                # (also when a recovered copy did not fit: edit the label on disk, never an
                # empty mask that a save would write over it)
                editor = MaskEditor(mask, path=self.label_path)
        self.editor = editor
        self._show_label()
        self._load_strokes(sample)
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
            self.status_message.emit(
                f"Cannot edit: the label could not be read "
                f"({self._label_error}). Fix or remove the file first."
            )
            return None
        self.editor = MaskEditor(None, self._shape, path=self.label_path)
        self._show_label()
        return self.editor

    # ------------------------------------------------------------------ state
    def has_unsaved(self) -> bool:
        return (self.editor is not None and self.editor.dirty) or (
            self.strokes is not None and self.strokes.dirty
        )

    def _history_editor(self):
        """The editor undo / redo step: the active layer's, else the other one."""
        first, second = (
            (self.strokes, self.editor)
            if self.active_layer == "strokes"
            else (self.editor, self.strokes)
        )
        return first if first is not None else second

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
        history = self._history_editor()
        self.undo_action.setEnabled(history is not None and history.can_undo)
        self.redo_action.setEnabled(history is not None and history.can_redo)
        dirty = self.has_unsaved()
        self.save_action.setEnabled(dirty)
        if dirty != self._last_dirty:
            self._last_dirty = dirty
            self.dirty_changed.emit(dirty)
        if editor is not None and not editor.dirty and self._recovery_file is not None:
            self._delete_recovery()  # back at the saved state (undo): nothing to recover
        if (
            self.strokes is not None
            and not self.strokes.dirty
            and self._stroke_recovery_file is not None
        ):
            self._delete_stroke_recovery()

    # ------------------------------------------------------------------ fill
    def fill(self, x: float, y: float, value: bool = True) -> Region | None:
        """Flood fill with roof (``value``) or background at canvas point ``(x, y)``.

        A roof fill that would cover more than :data:`LARGE_FILL_FRACTION` of the image (an open
        background: the outline has a gap) asks first (:func:`dialogs.ask_large_fill`).
        """
        editor = self._ensure_editor()
        if editor is None:
            return None
        x, y = x - 0.5, y - 0.5
        if value:
            fraction = fill_area(editor.mask, x, y, True) / editor.mask.size
            if fraction > LARGE_FILL_FRACTION and not dialogs.ask_large_fill(self.window, fraction):
                self.status_message.emit("Fill cancelled: nothing changed.")
                return None
        region = editor.fill(x, y, value)
        if region is None:
            self.status_message.emit("Nothing to fill there.")
        self._changed(region)
        return region

    # ------------------------------------------------------------------ prediction
    def _shown_prediction(self) -> np.ndarray | None:
        prediction = self.canvas.displayed_mask()
        if prediction is None:
            self.status_message.emit(
                "No prediction for this image yet: predict it first "
                "(Prediction > Predict current image)."
            )
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
        """Replace the whole label by the prediction as shown; where the image has strokes,
        they win (:func:`core.scribbles.merge_into_label`)."""
        self._finish_interaction()
        prediction = self._shown_prediction()
        if prediction is None:
            return None
        editor = self._ensure_editor()
        if editor is None:
            return None
        strokes = self.has_strokes()
        if strokes:
            from core.scribbles import merge_into_label

            prediction = merge_into_label(self.strokes.codes, prediction)
        region = editor.accept_prediction(prediction)
        self.active_layer = "label"
        self._changed(region)
        if region is not None:
            self.status_message.emit(
                "Accepted the prediction as the label"
                + (", the strokes winning where they disagree" if strokes else "")
                + " (Ctrl+Z undoes; Ctrl+S saves the label)."
            )
        return region

    # ------------------------------------------------------------------ history
    def undo(self) -> None:
        self._step_history(lambda editor: editor.undo())

    def redo(self) -> None:
        self._step_history(lambda editor: editor.redo())

    def _step_history(self, step) -> None:
        self.cancel_polygon()
        editor = self._history_editor()
        if editor is None:
            return
        if editor is self.strokes:
            self._strokes_changed(step(editor))
        else:
            self._changed(step(editor))
        self._update_actions()

    # ------------------------------------------------------------------ saving
    def save(self) -> bool:
        """Write the label and the strokes atomically; False (error shown, edits kept) if one
        fails."""
        if not self._save_label():
            return False
        saved = self.save_strokes()
        self._update_actions()
        return saved

    def _save_label(self) -> bool:
        editor, path = self.editor, self.label_path
        if editor is None or path is None or not editor.dirty:
            return True
        if editor.in_stroke:
            editor.end_stroke()
        if self._label_is_new and not path.parent.exists():
            try:  # a brand-new label may create its folder; an existing one's never
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                dialogs.show_save_error(self.window, path, exc)
                return False
        try:
            editor.save(path)
        except (RooftopError, OSError, ValueError) as exc:
            dialogs.show_save_error(self.window, path, exc)
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
        if self.strokes is not None and self.strokes.dirty:
            self._delete_stroke_recovery()
            self._load_strokes_from_disk()
        self._update_actions()

    def _load_strokes_from_disk(self) -> None:
        """The strokes as saved (after a discard)."""
        if self.stroke_path is not None:
            self._stroke_pending.pop(label_key(self.stroke_path), None)
        self._load_strokes(self.sample)

    def describe_current(self) -> str:
        if self.sample is None:
            return "this image"
        return f"{self.sample.split}/{self.sample.name}"

    def resolve_unsaved(self) -> bool:
        """Before the edits would be lost: ask Save / Discard / Cancel. True means go on."""
        if not self.has_unsaved():
            return True
        answer = dialogs.ask_unsaved_changes(self.window, self.describe_current())
        if answer == dialogs.SAVE:
            return self.save()
        if answer == dialogs.DISCARD:
            self.discard()
            return True
        return False

    # ------------------------------------------------------------------ recovery
    def write_recovery(self) -> Path | None:
        """Write recovery copies of unsaved label edits and strokes new since the last copy;
        returns the label's copy (or the strokes' when only they changed)."""
        strokes_copy = self.write_stroke_recovery()
        return self._write_label_recovery() or strokes_copy

    def _write_label_recovery(self) -> Path | None:
        editor = self.editor
        if editor is None or not editor.dirty or self.label_path is None:
            return None
        if (
            editor.revision == self._recovered_revision
            and self._recovery_file is not None
            and self._recovery_file.exists()
        ):
            return None
        target = recovery_path_for(recovery_dir(), self.label_path)
        meta = {
            "dataset": str(self.root) if self.root else None,
            "split": getattr(self.sample, "split", None),
            "name": getattr(self.sample, "name", None),
            "image_path": str(getattr(self.sample, "image_path", "")),
        }
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
        for file in {
            self._recovery_file,
            recovery_path_for(recovery_dir(), self.label_path)
            if self.label_path is not None
            else None,
        } - {None}:
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
        editing = {label_key(p) for p in (self.label_path, self.stroke_path) if p is not None}
        entries = [
            e
            for e in find_recovery(recovery_dir(), self.root, samples)
            if label_key(e.label_path) not in self._pending
            and label_key(e.label_path) not in self._stroke_pending
            and not (label_key(e.label_path) in editing and self.has_unsaved())
        ]
        if not entries:
            return []
        answer = dialogs.ask_restore_recovery(self.window, entries)
        if answer == dialogs.DISCARD:
            for entry in entries:
                entry.file.unlink(missing_ok=True)
            self.status_message.emit(f"Discarded {len(entries)} recovered edit(s).")
            return []
        if answer != dialogs.RESTORE:
            return []
        restored = []
        for entry in entries:
            if getattr(entry, "kind", "label") == "strokes":
                if self._restore_stroke_entry(entry, _Pending):
                    restored.append(entry.sample)
                continue
            try:
                editor = MaskEditor.from_recovery(entry.file)
            except (RooftopError, ValueError) as exc:
                show_error(self.window, "Cannot restore recovered edits", exc)
                continue
            self._pending[label_key(entry.label_path)] = _Pending(editor, entry.file)
            restored.append(entry.sample)
        current = self.sample
        if (
            current is not None
            and self.stroke_path is not None
            and label_key(self.stroke_path) in self._stroke_pending
            and self._shape is not None
        ):
            self._load_strokes(current)
        if (
            current is not None
            and self.label_path is not None
            and label_key(self.label_path) in self._pending
            and self._shape is not None
        ):
            # the label on the canvas (saved: entries with unsaved edits are not offered) stays
            # what is edited if the recovered copy does not fit the image
            on_disk = self.editor.mask.copy() if self.editor is not None else None
            self.set_sample(current, self._shape, on_disk, self._label_error)
        return restored

    def shutdown(self) -> None:
        self.recovery_timer.stop()
