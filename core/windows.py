"""Where square windows go along an image: the one window planner of the core (torch-free).

Two jobs cut an image into windows of ``size`` pixels moved by ``step`` pixels, and both must
cover every pixel (which they do when ``step <= size``, as both use them):

* **Patch generation** (``core.generate``) keeps only windows that lie wholly inside the image:
  :func:`axis_starts` puts them at ``0, step, 2 * step, ...`` and adds a last window flush with the
  far edge when the steps do not land there. A window never reaches past the image; an axis
  shorter than the window has no window at all.
* **Tiled prediction** (``core.predict``) needs every tile on one regular grid (``k * step``, with
  ``step`` a multiple of the model's pooling factor, so that each tile sees the pooling grid of a
  whole-image pass): :func:`grid_starts` and the 2-D :func:`plan_tiles` put the tiles there and
  say how far the last one reaches; the image is padded to that length (``TilePlan.padded_*``).
  An axis no longer than the tile has one tile at 0.

Both take lengths in pixels and return starts in pixels, top/left first, in increasing order; a
window starting at ``s`` covers ``s <= i < s + size``. A reader of windows of a huge image (a
windowed GeoTIFF reader) can use :func:`plan_tiles` to know which pixels to read for each tile.

Examples::

    axis_starts(10, 4, 3)   -> [0, 3, 6]        (6 + 4 == 10: the steps land on the edge)
    axis_starts(11, 4, 3)   -> [0, 3, 6, 7]     (7 is flush with the edge)
    axis_starts(3, 4, 3)    -> []               (no whole window fits)
    grid_starts(11, 4, 3)   -> (13, [0, 3, 6, 9])  (the last tile reaches 13: pad 2 pixels)
    grid_starts(3, 4, 3)    -> (4, [0])
"""

from __future__ import annotations

from dataclasses import dataclass


def _check(size: int, step: int) -> None:
    if size < 1 or step < 1:
        raise ValueError(f"window size and step must be at least 1 pixel, got {size} and {step}")


def axis_starts(length: int, size: int, step: int) -> list[int]:
    """Starts of the windows of ``size`` px every ``step`` px that lie wholly inside ``length``
    px, plus a last one flush with the end (``length - size``) when the steps do not land there,
    so every pixel is covered when ``step <= size``. ``[]`` when ``length < size``."""
    _check(size, step)
    last = length - size
    if last < 0:
        return []
    starts = list(range(0, last + 1, step))
    if starts[-1] != last:
        starts.append(last)
    return starts


def grid_starts(length: int, size: int, step: int) -> tuple[int, list[int]]:
    """Starts ``0, step, 2 * step, ...`` of the fewest windows of ``size`` px that cover
    ``length`` px (``step <= size``), and the length they reach (at least ``length``: the last window may run past
    the end, into padding). One window at 0 when ``length <= size``."""
    _check(size, step)
    if length <= size:
        return size, [0]
    count = -(-(length - size) // step) + 1
    return size + (count - 1) * step, [i * step for i in range(count)]


@dataclass(frozen=True)
class TilePlan:
    """Tiles of ``tile`` x ``tile`` px on a regular grid over a ``height`` x ``width`` image."""

    height: int
    width: int
    tile: int
    #: tile rows' top edges and columns' left edges (:func:`grid_starts`)
    ys: tuple[int, ...]
    xs: tuple[int, ...]
    #: the size the image is padded to (bottom and right) so that every tile is whole
    padded_height: int
    padded_width: int

    def tiles(self) -> list[tuple[int, int]]:
        """Every tile's ``(y, x)`` top-left corner, row by row."""
        return [(y, x) for y in self.ys for x in self.xs]

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)


def plan_tiles(height: int, width: int, tile: int, step: int) -> TilePlan:
    """The regular grid of tiles over a ``height`` x ``width`` image (:func:`grid_starts` per
    axis): ``tile`` px tiles every ``step`` px, covering every pixel."""
    padded_height, ys = grid_starts(height, tile, step)
    padded_width, xs = grid_starts(width, tile, step)
    return TilePlan(height, width, tile, tuple(ys), tuple(xs), padded_height, padded_width)


__all__ = ["TilePlan", "axis_starts", "grid_starts", "plan_tiles"]
