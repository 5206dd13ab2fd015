""":class:`StrokeEditor`: the strokes (partial label, :mod:`core.scribbles`) of one image being
painted: roof and background brushes and the unlabelled eraser, undo/redo, a dirty flag, an
atomic save and recovery copies -- :class:`~core.annotate.editor.MaskEditor`'s contract for a
map of codes 0 (unlabelled), 1 (background) and 2 (roof) instead of a bool mask."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.annotate.history import UNDO_LIMIT, UNDO_MAX_BYTES, Revisions, _TileSnapshot
from core.annotate.recovery import load_recovery, save_recovery
from core.annotate.regions import Region, _check_radius, _stroke_pieces
from core.errors import ImageWriteError
from core.scribbles import CODES, UNLABELLED, write_scribble


@dataclass(frozen=True, eq=False)
class _CodeEdit:
    region: Region
    parts: tuple[Region, ...]
    before: tuple[np.ndarray, ...]
    after: tuple[np.ndarray, ...]
    revision_before: int
    revision_after: int

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.before) + sum(a.nbytes for a in self.after)

    def apply(self, codes: np.ndarray, after: bool) -> Region:
        for part, patch in zip(self.parts, self.after if after else self.before, strict=True):
            codes[part.slices] = patch
        return self.region


@dataclass
class _Open:
    code: int
    radius: float
    revision_before: int
    last: tuple[float, float] | None = None
    region: Region | None = None
    snapshot: _TileSnapshot = field(default_factory=_TileSnapshot)


class StrokeEditor(Revisions):
    """The stroke codes ``(H, W) uint8`` of one image being painted (see the module docstring).

    A stroke -- :meth:`begin_stroke` (code, radius), :meth:`stroke_to` on every move,
    :meth:`end_stroke` -- is one undo step storing only the tiles it changed. Methods that change
    the codes return the changed :class:`Region` (None: nothing changed). ``dirty`` is
    ``revision != saved_revision``, so undoing back to the saved state is clean again.
    """

    def __init__(
        self,
        codes: np.ndarray | None = None,
        shape: tuple[int, int] | None = None,
        *,
        path: str | Path | None = None,
        undo_limit: int = UNDO_LIMIT,
        undo_max_bytes: int = UNDO_MAX_BYTES,
    ):
        if codes is None:
            if shape is None:
                raise ValueError("give the codes or the shape (H, W) of empty strokes")
            self._codes = np.zeros(tuple(int(v) for v in shape), np.uint8)
        else:
            array = np.asarray(codes)
            if array.ndim != 2 or (array.size and int(array.max()) > max(CODES)):
                raise ValueError(f"stroke codes must be 2-D of 0, 1 and 2, got {array.shape}")
            self._codes = np.array(array, dtype=np.uint8, order="C")
        self.path: Path | None = Path(path) if path is not None else None
        self.undo_limit, self.undo_max_bytes = int(undo_limit), int(undo_max_bytes)
        self._undo: list[_CodeEdit] = []
        self._redo: list[_CodeEdit] = []
        Revisions.__init__(self)
        self._stroke: _Open | None = None

    # -- state ---------------------------------------------------------------------------------
    @property
    def codes(self) -> np.ndarray:
        return self._codes

    @property
    def shape(self) -> tuple[int, int]:
        return self._codes.shape  # type: ignore[return-value]

    @property
    def in_stroke(self) -> bool:
        return self._stroke is not None

    @property
    def can_undo(self) -> bool:
        return bool(self._undo) or (self._stroke is not None and self._stroke.region is not None)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo) and self._stroke is None

    @property
    def labelled(self) -> np.ndarray:
        """The painted pixels (codes 1 and 2)."""
        return self._codes != UNLABELLED

    def is_empty(self) -> bool:
        return not self._codes.any()

    # -- strokes -------------------------------------------------------------------------------
    def begin_stroke(self, code: int, radius: float = 5.0) -> None:
        """Start a stroke painting ``code`` (2 roof, 1 background, 0 the unlabelled eraser)."""
        if int(code) not in CODES:
            raise ValueError(f"a stroke paints 0, 1 or 2, not {code}")
        self.end_stroke()
        self._stroke = _Open(int(code), _check_radius(radius), self.revision)

    def stroke_to(self, x: float, y: float) -> Region | None:
        stroke = self._stroke
        if stroke is None or not (math.isfinite(x) and math.isfinite(y)):
            return None
        point = (float(x), float(y))
        points = [point] if stroke.last is None else [stroke.last, point]
        stroke.last = point
        changed: Region | None = None
        for y0, y1, x0, x1, hit in _stroke_pieces(self.shape, points, stroke.radius):
            patch = self._codes[y0:y1, x0:x1]
            change = hit & (patch != stroke.code)
            if not change.any():
                continue
            rows, cols = np.flatnonzero(change.any(axis=1)), np.flatnonzero(change.any(axis=0))
            tight = Region(
                y0 + int(rows[0]), y0 + int(rows[-1]) + 1, x0 + int(cols[0]), x0 + int(cols[-1]) + 1
            )
            stroke.snapshot.capture(self._codes, tight)
            patch[change] = stroke.code
            changed = tight.union(changed)
        if changed is not None:
            stroke.region = changed.union(stroke.region)
            self._new_revision()
        return changed

    def end_stroke(self) -> Region | None:
        stroke, self._stroke = self._stroke, None
        if stroke is None or stroke.region is None:
            return None
        parts, before, after = stroke.snapshot.changed(self._codes, stroke.region)
        if parts:
            self._push(
                _CodeEdit(
                    stroke.region,
                    tuple(parts),
                    tuple(before),
                    tuple(a.copy() for a in after),
                    stroke.revision_before,
                    self.revision,
                )
            )
        return stroke.region

    def cancel_stroke(self) -> Region | None:
        stroke, self._stroke = self._stroke, None
        if stroke is None or stroke.region is None:
            return None
        stroke.snapshot.restore(self._codes)
        self.revision = stroke.revision_before
        return stroke.region

    def stamp(self, x: float, y: float, code: int, radius: float = 5.0) -> Region | None:
        self.begin_stroke(code, radius)
        self.stroke_to(x, y)
        return self.end_stroke()

    def clear(self) -> Region | None:
        """Unlabel every pixel as one undo step."""
        self.end_stroke()
        if self.is_empty():
            return None
        rows, cols = (
            np.flatnonzero(self._codes.any(axis=1)),
            np.flatnonzero(self._codes.any(axis=0)),
        )
        region = Region(int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
        before = self._codes[region.slices].copy()
        self._codes[region.slices] = UNLABELLED
        revision = self.revision
        self._push(
            _CodeEdit(
                region,
                (region,),
                (before,),
                (self._codes[region.slices].copy(),),
                revision,
                self._new_revision(),
            )
        )
        return region

    # -- history -------------------------------------------------------------------------------
    def _push(self, edit: _CodeEdit) -> None:
        self._redo.clear()
        self._undo.append(edit)
        while len(self._undo) > self.undo_limit or (
            len(self._undo) > 1 and sum(e.nbytes for e in self._undo) > self.undo_max_bytes
        ):
            self._undo.pop(0)

    def undo(self) -> Region | None:
        self.end_stroke()
        if not self._undo:
            return None
        edit = self._undo.pop()
        edit.apply(self._codes, after=False)
        self._redo.append(edit)
        self.revision = edit.revision_before
        return edit.region

    def redo(self) -> Region | None:
        self.end_stroke()
        if not self._redo:
            return None
        edit = self._redo.pop()
        edit.apply(self._codes, after=True)
        self._undo.append(edit)
        self.revision = edit.revision_after
        return edit.region

    # -- files ---------------------------------------------------------------------------------
    def save(self, path: str | Path | None = None) -> Path:
        """Write the codes atomically (:func:`core.scribbles.write_scribble`); ImageWriteError
        naming the file on failure (the strokes stay in memory and dirty). The stroke folder
        is created when missing (not the folders above it)."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no stroke file to save to")
        try:
            if not target.parent.exists() and target.parent.parent.is_dir():
                target.parent.mkdir(exist_ok=True)  # the split's first stroke file
            write_scribble(target, self._codes)
        except ImageWriteError:
            raise
        except Exception as exc:
            raise ImageWriteError(f"cannot save the strokes ({exc})", target) from exc
        self.path = target
        self.saved_revision = self.revision
        return target

    def save_recovery(self, path: str | Path, metadata: dict | None = None) -> Path:
        return save_recovery(path, self._codes, self.path, metadata)

    @classmethod
    def from_recovery(cls, path: str | Path, **kwargs) -> StrokeEditor:
        copy = load_recovery(path)
        if copy.kind != "strokes":
            raise ValueError(f"{path} is a recovery copy of a label, not of strokes")
        editor = cls(copy.mask, path=copy.label_path, **kwargs)
        editor.saved_revision = None
        return editor
