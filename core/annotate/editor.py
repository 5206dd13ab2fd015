""":class:`MaskEditor`: one label mask being edited, tying the raster edits, the undo history, the
dirty flag, the atomic save and the recovery copies together."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from core.annotate.edits import _paint, _Plan, _plan_accept, _plan_fill, _plan_polygon
from core.annotate.history import UNDO_LIMIT, UNDO_MAX_BYTES, Edit, Revisions, UndoStack, _Stroke
from core.annotate.recovery import load_recovery, save_recovery
from core.annotate.regions import Point, Region, _bbox, _check_radius, _stroke_pieces
from core.errors import ImageWriteError
from core.io import write_mask


class MaskEditor(Revisions):
    """One label mask being edited: tools, undo/redo, dirty flag, atomic save, recovery copies.

    ``MaskEditor(mask)`` edits a copy of ``mask``; ``MaskEditor(None, shape)`` starts from an empty
    mask (an image without a label: the first :meth:`save` creates the label file). Read the live
    mask from :attr:`mask` (do not modify it directly; use the methods so undo stays right).

    Every method that changes the mask returns the changed :class:`Region` (``None`` when nothing
    changed; then no undo step is recorded). A brush stroke -- :meth:`begin_stroke` on press,
    :meth:`stroke_to` on every move, :meth:`end_stroke` on release -- is a single undo step. Any
    other edit, undo or redo ends an open stroke first.

    :attr:`revision` identifies the mask's content: every change gets a new number, and undo/redo
    go back to the number the restored state had. :attr:`dirty` is ``revision != saved_revision``,
    so undoing back to the saved state makes the editor clean again.
    """

    def __init__(
        self,
        mask: np.ndarray | None = None,
        shape: tuple[int, int] | None = None,
        *,
        path: str | Path | None = None,
        undo_limit: int = UNDO_LIMIT,
        undo_max_bytes: int = UNDO_MAX_BYTES,
    ):
        if mask is None:
            if shape is None:
                raise ValueError("give a mask or the shape (H, W) of an empty one")
            height, width = (int(v) for v in shape)
            if height <= 0 or width <= 0:
                raise ValueError(f"mask shape must be positive, got {shape}")
            self._mask = np.zeros((height, width), dtype=bool)
        else:
            array = np.asarray(mask)
            if array.ndim != 2:
                raise ValueError(f"a mask must be 2-D, got shape {array.shape}")
            if shape is not None and tuple(shape) != array.shape:
                raise ValueError(
                    f"mask shape {array.shape} differs from the given shape {tuple(shape)}"
                )
            self._mask = np.array(
                array != 0 if array.dtype != bool else array, dtype=bool, order="C"
            )
        self.path: Path | None = Path(path) if path is not None else None
        self.undo_stack = UndoStack(undo_limit, undo_max_bytes)
        Revisions.__init__(self)
        self._stroke: _Stroke | None = None

    # -- state ---------------------------------------------------------------------------------

    @property
    def mask(self) -> np.ndarray:
        return self._mask

    @property
    def shape(self) -> tuple[int, int]:
        return self._mask.shape  # type: ignore[return-value]

    @property
    def can_undo(self) -> bool:
        return self.undo_stack.can_undo or self._stroke_changed()

    @property
    def can_redo(self) -> bool:
        return self.undo_stack.can_redo and self._stroke is None

    @property
    def in_stroke(self) -> bool:
        return self._stroke is not None

    def _stroke_changed(self) -> bool:
        return self._stroke is not None and self._stroke.region is not None

    # -- brush ---------------------------------------------------------------------------------

    def begin_stroke(self, value: bool = True, radius: float = 5.0) -> None:
        """Start a brush (``value=True``) or eraser (``False``) stroke of ``radius`` pixels."""
        self.end_stroke()
        self._stroke = _Stroke(bool(value), _check_radius(radius), self.revision)

    def stroke_to(self, x: float, y: float) -> Region | None:
        """Extend the open stroke to ``(x, y)`` (the first call stamps one disk).

        Returns the region changed by this call; ``None`` if nothing changed or no stroke is open.
        """
        stroke = self._stroke
        if stroke is None:
            return None
        point = (float(x), float(y))
        if not (math.isfinite(point[0]) and math.isfinite(point[1])):
            return None
        points = [point] if stroke.last is None else [stroke.last, point]
        stroke.last = point
        changed = _paint(
            self._mask,
            _stroke_pieces(self.shape, points, stroke.radius),
            stroke.value,
            before_change=lambda region: stroke.snapshot.capture(self._mask, region),
        )
        if changed is not None:
            stroke.region = changed.union(stroke.region)
            self._new_revision()
        return changed

    def end_stroke(self) -> Region | None:
        """Close the open stroke as one undo step; returns the whole stroke's changed region."""
        stroke, self._stroke = self._stroke, None
        if stroke is None or stroke.region is None:
            return None
        region = stroke.region
        parts, before, after = stroke.snapshot.changed(self._mask, region)
        if parts:  # (a stroke only ever sets pixels to one value, so what changed stays changed)
            self.undo_stack.push(
                Edit.from_parts(region, parts, before, after, stroke.revision_before, self.revision)
            )
        return region

    def cancel_stroke(self) -> Region | None:
        """Undo the open stroke without recording it (Escape while painting)."""
        stroke, self._stroke = self._stroke, None
        if stroke is None or stroke.region is None:
            return None
        region = stroke.region
        stroke.snapshot.restore(self._mask)
        self.revision = stroke.revision_before
        return region

    def stamp(self, x: float, y: float, value: bool = True, radius: float = 5.0) -> Region | None:
        """A single click with the brush: one disk, one undo step."""
        self.begin_stroke(value, radius)
        self.stroke_to(x, y)
        return self.end_stroke()

    # -- one-shot tools ------------------------------------------------------------------------

    def _commit(self, plan: _Plan | None) -> Region | None:
        if plan is None:
            return None
        region, new = plan
        before = self._mask[region.slices].copy()
        self._mask[region.slices] = new
        revision_before = self.revision
        self.undo_stack.record(region, before, new, revision_before, self._new_revision())
        return region

    def fill(self, x: float, y: float, value: bool = True) -> Region | None:
        """Flood fill (see :func:`flood_fill`) as one undo step."""
        self.end_stroke()
        return self._commit(_plan_fill(self._mask, x, y, value))

    def polygon(
        self, points: Iterable[Sequence[float]] | np.ndarray, value: bool = True
    ) -> Region | None:
        """Fill a polygon (see :func:`fill_polygon`) as one undo step."""
        self.end_stroke()
        return self._commit(_plan_polygon(self._mask, points, value))

    def accept_prediction(self, prediction: np.ndarray, at: Point | None = None) -> Region | None:
        """Accept the whole prediction, or the predicted roof under ``at`` (see
        :func:`accept_prediction`), as one undo step."""
        self.end_stroke()
        return self._commit(_plan_accept(self._mask, prediction, at))

    def clear(self) -> Region | None:
        """Erase the whole mask as one undo step."""
        self.end_stroke()
        region = _bbox(self._mask)
        if region is None:
            return None
        return self._commit((region, np.zeros(region.shape, dtype=bool)))

    # -- history -------------------------------------------------------------------------------

    def undo(self) -> Region | None:
        self.end_stroke()
        edit = self.undo_stack.peek_undo()
        region = self.undo_stack.undo(self._mask)
        if edit is not None:
            self.revision = edit.revision_before
        return region

    def redo(self) -> Region | None:
        self.end_stroke()
        edit = self.undo_stack.peek_redo()
        region = self.undo_stack.redo(self._mask)
        if edit is not None:
            self.revision = edit.revision_after
        return region

    # -- files ---------------------------------------------------------------------------------

    def save(self, path: str | Path | None = None) -> Path:
        """Write the mask as a 0/255 PNG atomically (to :attr:`path` when ``path`` is omitted).

        On success ``dirty`` becomes False and :attr:`path` is set. Any failure raises
        :class:`ImageWriteError` naming the file; the mask stays in memory and dirty. An open stroke
        stays open (saving mid-stroke saves what is painted so far).
        """
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no label path to save to")
        try:
            write_mask(target, self._mask)
        except ImageWriteError:
            raise
        except Exception as exc:  # any other failure must reach the user as a write error
            raise ImageWriteError(f"cannot save the label ({exc})", target) from exc
        self.path = target
        self.saved_revision = self.revision
        return target

    def save_recovery(self, path: str | Path, metadata: dict | None = None) -> Path:
        """Write a recovery copy of the current mask (with :attr:`path`) atomically; see
        :func:`save_recovery`. Does not change ``dirty``."""
        return save_recovery(path, self._mask, self.path, metadata)

    @classmethod
    def from_recovery(cls, path: str | Path, **kwargs) -> MaskEditor:
        """An editor holding a recovered mask (dirty: it differs from what is on disk)."""
        copy = load_recovery(path)
        editor = cls(copy.mask, path=copy.label_path, **kwargs)
        editor.saved_revision = None
        return editor
