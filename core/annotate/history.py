"""The undo history: :class:`Edit` (one step, stored bit-packed), the bounded :class:`UndoStack`,
and the tile snapshots that make a brush stroke one step costing only the area it painted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from core.annotate.regions import Region

#: Default number of undo steps kept by :class:`UndoStack` and :class:`MaskEditor`.
UNDO_LIMIT = 200
#: Default memory budget of an undo stack (patches are stored bit-packed, 1 bit per pixel).
UNDO_MAX_BYTES = 256 * 2**20


@dataclass(frozen=True, eq=False)
class Edit:
    """One undo step: the pixels of ``parts`` before and after the edit, stored bit-packed.

    ``region`` is the bounding box of the change (what to repaint). ``parts`` are disjoint
    rectangles inside it whose pixels are stored, in order, each row-major; pixels of ``region``
    outside them did not change. Empty ``parts`` (the default) means the whole ``region``. A brush
    stroke stores only the tiles it changed, so a long diagonal stroke costs its own area, not the
    area of its bounding box.
    """

    region: Region
    before_bits: np.ndarray = field(repr=False)
    after_bits: np.ndarray = field(repr=False)
    revision_before: int = 0
    revision_after: int = 0
    parts: tuple[Region, ...] = ()

    @classmethod
    def from_patches(
        cls,
        region: Region,
        before: np.ndarray,
        after: np.ndarray,
        revision_before: int = 0,
        revision_after: int = 0,
    ) -> Edit:
        if before.shape != region.shape or after.shape != region.shape:
            raise ValueError(f"patches {before.shape}/{after.shape} do not match region {region}")
        return cls(
            region,
            np.packbits(before, axis=None),
            np.packbits(after, axis=None),
            revision_before,
            revision_after,
        )

    @classmethod
    def from_parts(
        cls,
        region: Region,
        parts: Sequence[Region],
        before: Sequence[np.ndarray],
        after: Sequence[np.ndarray],
        revision_before: int = 0,
        revision_after: int = 0,
    ) -> Edit:
        """An edit that changed only ``parts`` (disjoint, inside ``region``) from ``before[i]``
        to ``after[i]``."""
        parts = tuple(parts)
        if not parts or len(before) != len(parts) or len(after) != len(parts):
            raise ValueError("give one before and one after patch for each of at least one part")
        for part, b, a in zip(parts, before, after, strict=True):
            shape = (part.y1 - part.y0, part.x1 - part.x0)
            if b.shape != shape or a.shape != shape:
                raise ValueError(f"patches {b.shape}/{a.shape} do not match part {part}")
            if (
                part.y0 < region.y0
                or part.x0 < region.x0
                or part.y1 > region.y1
                or part.x1 > region.x1
            ):
                raise ValueError(f"part {part} is not inside region {region}")

        def pack(patches: Sequence[np.ndarray]) -> np.ndarray:
            return np.packbits(
                np.concatenate([np.ravel(p) for p in patches]).astype(bool, copy=False)
            )

        return cls(region, pack(before), pack(after), revision_before, revision_after, parts)

    @property
    def stored_parts(self) -> tuple[Region, ...]:
        """The rectangles whose pixels are stored (``(region,)`` for a whole-region edit)."""
        return self.parts or (self.region,)

    def _flat(self, bits: np.ndarray) -> np.ndarray:
        count = sum(part.area for part in self.stored_parts)
        return np.unpackbits(bits, count=count).view(bool)

    def _unpack(self, bits: np.ndarray) -> np.ndarray:
        if self.parts and self.parts != (self.region,):
            raise ValueError("this edit stores only the parts it changed: use apply() on the mask")
        return self._flat(bits).reshape(self.region.shape)

    @property
    def before(self) -> np.ndarray:
        """The whole region before the edit (whole-region edits only; see :meth:`apply`)."""
        return self._unpack(self.before_bits)

    @property
    def after(self) -> np.ndarray:
        """The whole region after the edit (whole-region edits only; see :meth:`apply`)."""
        return self._unpack(self.after_bits)

    def apply(self, mask: np.ndarray, after: bool) -> Region:
        """Write the stored ``after`` (redo) or ``before`` (undo) pixels into ``mask``."""
        flat = self._flat(self.after_bits if after else self.before_bits)
        offset = 0
        for part in self.stored_parts:
            mask[part.slices] = flat[offset : offset + part.area].reshape(part.shape)
            offset += part.area
        return self.region

    @property
    def nbytes(self) -> int:
        return int(self.before_bits.nbytes + self.after_bits.nbytes)


class UndoStack:
    """A bounded linear undo history of :class:`Edit` steps.

    ``push`` adds a step and clears the redo branch; past ``limit`` steps (or ``max_bytes`` of
    patches; the newest step is always kept) the oldest steps are dropped.
    """

    def __init__(self, limit: int = UNDO_LIMIT, max_bytes: int = UNDO_MAX_BYTES):
        if int(limit) < 1:
            raise ValueError(f"undo limit must be at least 1, got {limit}")
        self.limit = int(limit)
        self.max_bytes = int(max_bytes)
        self._undo: list[Edit] = []
        self._redo: list[Edit] = []
        self._nbytes = 0

    def push(self, edit: Edit) -> None:
        self._nbytes -= sum(e.nbytes for e in self._redo)
        self._redo.clear()
        self._undo.append(edit)
        self._nbytes += edit.nbytes
        while len(self._undo) > self.limit or (
            self._nbytes > self.max_bytes and len(self._undo) > 1
        ):
            self._nbytes -= self._undo.pop(0).nbytes

    def record(
        self,
        region: Region,
        before: np.ndarray,
        after: np.ndarray,
        revision_before: int = 0,
        revision_after: int = 0,
    ) -> Edit:
        """Push the step that changed ``region`` from ``before`` to ``after`` (bool patches)."""
        edit = Edit.from_patches(region, before, after, revision_before, revision_after)
        self.push(edit)
        return edit

    def undo(self, mask: np.ndarray) -> Region | None:
        """Restore the newest step's ``before`` patch into ``mask``; ``None`` if nothing to undo."""
        if not self._undo:
            return None
        edit = self._undo.pop()
        edit.apply(mask, after=False)
        self._redo.append(edit)
        return edit.region

    def redo(self, mask: np.ndarray) -> Region | None:
        """Re-apply the last undone step; ``None`` if nothing to redo."""
        if not self._redo:
            return None
        edit = self._redo.pop()
        edit.apply(mask, after=True)
        self._undo.append(edit)
        return edit.region

    def peek_undo(self) -> Edit | None:
        return self._undo[-1] if self._undo else None

    def peek_redo(self) -> Edit | None:
        return self._redo[-1] if self._redo else None

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_count(self) -> int:
        return len(self._undo)

    @property
    def redo_count(self) -> int:
        return len(self._redo)

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self._nbytes = 0


class _TileSnapshot:
    """Copies of the mask's tiles taken just before a stroke first changes them.

    Press and moves copy only the tiles a stroke reaches (``tile`` x ``tile`` pixels, clipped at
    the border); release turns the tiles that changed into one undo step. Nothing here touches the
    whole mask or the stroke's bounding box, so the cost follows the painted area.
    """

    def __init__(self, tile: int = 64):
        self.tile = tile
        self.tiles: dict[tuple[int, int], np.ndarray] = {}

    def _region(self, key: tuple[int, int], saved: np.ndarray) -> Region:
        y0, x0 = key[0] * self.tile, key[1] * self.tile
        return Region(y0, y0 + saved.shape[0], x0, x0 + saved.shape[1])

    def capture(self, mask: np.ndarray, region: Region) -> None:
        t = self.tile
        for ty in range(region.y0 // t, (region.y1 - 1) // t + 1):
            for tx in range(region.x0 // t, (region.x1 - 1) // t + 1):
                if (ty, tx) not in self.tiles:
                    self.tiles[ty, tx] = mask[ty * t : (ty + 1) * t, tx * t : (tx + 1) * t].copy()

    def changed(
        self, mask: np.ndarray, bounds: Region
    ) -> tuple[list[Region], list[np.ndarray], list[np.ndarray]]:
        """The copied tiles clipped to ``bounds`` (which holds every change): their regions, their
        content before the stroke and now. (Every copied tile had a change in its box, so nearly
        all differ; comparing them would cost more than the few bytes it could save.)"""
        t = self.tile
        parts, before, after = [], [], []
        for (ty, tx), saved in self.tiles.items():
            ty0, tx0 = ty * t, tx * t
            y0, y1 = max(ty0, bounds.y0), min(ty0 + saved.shape[0], bounds.y1)
            x0, x1 = max(tx0, bounds.x0), min(tx0 + saved.shape[1], bounds.x1)
            if y0 >= y1 or x0 >= x1:
                continue
            parts.append(Region(y0, y1, x0, x1))
            before.append(saved[y0 - ty0 : y1 - ty0, x0 - tx0 : x1 - tx0])
            after.append(mask[y0:y1, x0:x1])
        return parts, before, after

    def restore(self, mask: np.ndarray) -> None:
        """Put every copied tile back (the mask as it was before the stroke)."""
        for key, saved in self.tiles.items():
            mask[self._region(key, saved).slices] = saved


@dataclass
class _Stroke:
    value: bool
    radius: float
    revision_before: int
    last: tuple[float, float] | None = None
    region: Region | None = None
    snapshot: _TileSnapshot = field(default_factory=_TileSnapshot)


class Revisions:
    """Revision numbers of an editor's content: every change gets a new number, undo and redo
    go back to the number the restored state had, and the content is :attr:`dirty` while its
    revision is not the one last saved (``saved_revision`` None: never saved as it is)."""

    def __init__(self) -> None:
        self._next_revision = 0
        self.revision = 0
        self.saved_revision: int | None = 0

    @property
    def dirty(self) -> bool:
        return self.revision != self.saved_revision

    def mark_saved(self) -> None:
        """Declare the current content saved (e.g. written elsewhere): ``dirty`` becomes False."""
        self.saved_revision = self.revision

    def _new_revision(self) -> int:
        self._next_revision += 1
        self.revision = self._next_revision
        return self.revision
