"""Strokes (partial labels) and smart select in the annotation: a part of
:class:`rooftop_gui.annotation.AnnotationController` (a base class of it).

* Roof strokes (R) / Background strokes (K): drag to paint a stroke of that class, ilastik's way
  (roof yellow, background violet); the right button unlabels. Unlabel (U): drag to erase
  strokes back to unlabelled. They edit ``<split>/scribble/NAME.png``
  (:class:`core.annotate.StrokeEditor`), which training learns from when the image has no full
  label; the same undo/redo (on the layer edited last), Ctrl+S (the stroke file is written
  atomically) and recovery copies as the label.
* Smart select (S): click a roof to get a proposed outline from the image (and the model's
  probability when shown; :func:`core.smart_select.smart_select`); Shift+click adds the region
  under the pointer to it; Enter adds the proposal to the label, Esc drops it.

A stroke file that cannot be read (corrupt, wrong size) is reported and the image still shows;
its strokes cannot be edited then, so the file is never overwritten by an empty one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from core.annotate import Region, StrokeEditor, label_key, recovery_path_for, stroke_path_of
from core.errors import RooftopError
from core.scribbles import BACKGROUND, ROOF, UNLABELLED, read_scribble
from rooftop_gui import dialogs
from rooftop_gui.errors import describe
from rooftop_gui.stroke_layers import extra_layers

log = logging.getLogger(__name__)

#: The stroke tools and the code each paints with the left button.
STROKE_CODES = {"roof_stroke": ROOF, "background_stroke": BACKGROUND, "unlabel": UNLABELLED}


class StrokeSupport:
    """The strokes of the current image, their save and recovery, and smart select."""

    def _init_strokes(self) -> None:
        self.strokes: StrokeEditor | None = None
        self.stroke_path: Path | None = None
        self._strokes_error: str | None = None
        self._stroke_pending: dict[str, Any] = {}
        self._stroke_recovery_file: Path | None = None
        self._stroke_recovered_revision: int | None = None
        #: which layer undo / redo step: the one edited (or whose tool was chosen) last
        self.active_layer = "label"
        self._proposal: np.ndarray | None = None
        self.layers = extra_layers(self.canvas)

    # ------------------------------------------------------------------ loading
    def stroke_path_of(self, sample: Any) -> Path:
        return stroke_path_of(self.root, sample)

    def _load_strokes(self, sample: Any) -> None:
        """Read the strokes of ``sample`` (or take back its unsaved / recovered ones)."""
        self._stroke_recovery_file = None
        self._stroke_recovered_revision = None
        self.strokes, self._strokes_error = None, None
        self.stroke_path = self.stroke_path_of(sample) if sample is not None else None
        if sample is None or self._shape is None:
            self.layers.set_strokes(None)
            return
        pending = self._stroke_pending.pop(label_key(self.stroke_path), None)
        if pending is not None and pending.editor.shape == self._shape:
            self.strokes = pending.editor
            self.strokes.path = self.stroke_path
            self._stroke_recovery_file = pending.file
            self.status_message.emit(f"Restored unsaved strokes of {sample.split}/{sample.name}")
        elif self.stroke_path.is_file():
            try:
                codes = read_scribble(self.stroke_path, self._shape)
            except (RooftopError, OSError, ValueError) as exc:
                self._strokes_error = describe(exc)
                self.status_message.emit(f"Strokes not shown: {self._strokes_error}")
                log.warning("cannot read strokes: %s", exc)
            else:
                self.strokes = StrokeEditor(codes, path=self.stroke_path)
        self.layers.set_strokes(self.strokes.codes if self.strokes is not None else None)

    def _ensure_strokes(self) -> StrokeEditor | None:
        if self.strokes is not None:
            return self.strokes
        if self.sample is None or self._shape is None or self.canvas.image() is None:
            self.status_message.emit("Open an image first.")
            return None
        if self._strokes_error is not None:
            self.status_message.emit(
                f"Cannot paint strokes: the stroke file could not be read "
                f"({self._strokes_error}). Fix or remove it first."
            )
            return None
        self.strokes = StrokeEditor(None, self._shape, path=self.stroke_path)
        self.layers.set_strokes(self.strokes.codes)
        return self.strokes

    def has_strokes(self) -> bool:
        return self.strokes is not None and not self.strokes.is_empty()

    # ------------------------------------------------------------------ painting
    def _begin_stroke(self, px: float, py: float, left: bool, right: bool) -> None:
        strokes = self._ensure_strokes()
        if strokes is None:
            return
        code = STROKE_CODES[self.tool] if left else UNLABELLED
        strokes.begin_stroke(code, self.radius)
        self._erase_hint = code == UNLABELLED
        self.active_layer = "strokes"
        self._strokes_changed(strokes.stroke_to(px, py))

    def _strokes_changed(self, region: Region | None) -> None:
        if region is None or self.strokes is None:
            return
        if self.layers.shown_strokes() is not self.strokes.codes:
            self.layers.set_strokes(self.strokes.codes)
        else:
            self.layers.update_strokes(self.strokes.codes, region)
        self._update_actions()

    def stroke(self, points: list[tuple[float, float]], code: int) -> Region | None:
        """Paint one stroke through canvas points with ``code`` (tests and scripts)."""
        strokes = self._ensure_strokes()
        if strokes is None or not points:
            return None
        strokes.begin_stroke(code, self.radius)
        for x, y in points:
            strokes.stroke_to(x - 0.5, y - 0.5)
        region = strokes.end_stroke()
        self.active_layer = "strokes"
        self._strokes_changed(region)
        self.layers.set_strokes(strokes.codes)
        return region

    # ------------------------------------------------------------------ saving and recovery
    def save_strokes(self) -> bool:
        strokes, path = self.strokes, self.stroke_path
        if strokes is None or path is None or not strokes.dirty:
            return True
        if strokes.in_stroke:
            strokes.end_stroke()
        try:
            strokes.save(path)
        except (RooftopError, OSError, ValueError) as exc:
            dialogs.show_save_error(self.window, path, exc)
            self.status_message.emit(f"Strokes not saved: {describe(exc)}")
            return False
        self._delete_stroke_recovery()
        self.strokes_saved.emit(self.sample, path)
        return True

    def write_stroke_recovery(self) -> Path | None:
        strokes = self.strokes
        if strokes is None or not strokes.dirty or self.stroke_path is None:
            return None
        if (
            strokes.revision == self._stroke_recovered_revision
            and self._stroke_recovery_file is not None
            and self._stroke_recovery_file.exists()
        ):
            return None
        from rooftop_gui.annotation import recovery_dir

        target = recovery_path_for(recovery_dir(), self.stroke_path)
        meta = {
            "dataset": str(self.root) if self.root else None,
            "kind": "strokes",
            "split": getattr(self.sample, "split", None),
            "name": getattr(self.sample, "name", None),
        }
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            strokes.save_recovery(target, meta)
        except (RooftopError, OSError, ValueError) as exc:
            log.warning("cannot write a recovery copy of strokes: %s", exc)
            self.status_message.emit(f"Cannot write a recovery copy: {describe(exc)}")
            return None
        self._stroke_recovery_file = target
        self._stroke_recovered_revision = strokes.revision
        return target

    def _delete_stroke_recovery(self) -> None:
        from rooftop_gui.annotation import recovery_dir

        files = {self._stroke_recovery_file}
        if self.stroke_path is not None:
            files.add(recovery_path_for(recovery_dir(), self.stroke_path))
        for file in files - {None}:
            try:
                file.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot delete the recovery copy %s: %s", file, exc)
        self._stroke_recovery_file = None
        self._stroke_recovered_revision = None

    def _restore_stroke_entry(self, entry: Any, pending_type: type) -> bool:
        try:
            editor = StrokeEditor.from_recovery(entry.file)
        except (RooftopError, ValueError) as exc:
            from rooftop_gui.errors import show_error

            show_error(self.window, "Cannot restore recovered strokes", exc)
            return False
        self._stroke_pending[label_key(entry.label_path)] = pending_type(editor, entry.file)
        return True

    # ------------------------------------------------------------------ smart select
    def smart_click(self, x: float, y: float, add: bool = False) -> np.ndarray | None:
        """Propose the roof under canvas point ``(x, y)`` (``add``: grow the proposal)."""
        from core.smart_select import smart_select

        image = self.canvas.image()
        if image is None:
            return None
        prob = self.canvas.probability()
        if prob is not None and prob.shape != image.shape[:2]:
            prob = None
        region = smart_select(image, x - 0.5, y - 0.5, prob)
        if region is None:
            self.status_message.emit(
                "No roof outline found there (the region ran into the "
                "ground): click inside a roof, or use the polygon tool."
            )
            return self._proposal
        if add and self._proposal is not None:
            region = region | self._proposal
        self._proposal = region
        self.layers.set_proposal(region)
        self.status_message.emit(
            f"Proposed roof of {int(region.sum()):,} px: Enter adds it to "
            "the label, Shift+click grows it, Esc drops it."
        )
        return region

    def proposal(self) -> np.ndarray | None:
        return self._proposal

    def accept_proposal(self) -> Region | None:
        proposal, self._proposal = self._proposal, None
        self.layers.set_proposal(None)
        if proposal is None:
            return None
        editor = self._ensure_editor()
        if editor is None:
            return None
        merged = editor.mask | proposal
        region = editor.accept_prediction(merged)
        self.active_layer = "label"
        self._changed(region)
        if region is not None:
            self.status_message.emit("Added the proposed roof to the label (Ctrl+Z undoes).")
        return region

    def drop_proposal(self) -> bool:
        had = self._proposal is not None
        self._proposal = None
        self.layers.set_proposal(None)
        return had
