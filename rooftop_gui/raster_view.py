"""A tiled view of a raster of any size (an orthophoto of 30,000 px a side or more) for the canvas.

Nothing here holds the whole image. A :class:`RasterTileSource` opens the raster in a background
task (``core.raster.RasterSource``; rasterio is imported there, never on the window's start-up
path) and reads:

* an **overview** once (``RasterSource.read_overview``: the file's own overviews, else a decimated
  read) of at most :data:`OVERVIEW_MAX_SIDE` pixels a side, kept for as long as the raster is shown
  and drawn stretched under everything. A raster without overviews of its own is read in bands
  shown as they arrive (:func:`overview_bands`), and the result is kept in
  :mod:`core.overview_cache` (when the source is given a folder for it), so that it opens at once
  the next time;
* **tiles** of :data:`TILE` x :data:`TILE` output pixels at levels of detail ``L`` (decimation
  ``2 ** L``; level 0 is full resolution), read on request in a background task, visible tiles
  first, and kept in a bounded LRU (:class:`TileCache`, :data:`CACHE_BYTES`), so memory stays
  bounded whatever the raster's size and however far the user pans.

:class:`rooftop_gui.raster_item.RasterTileItem` is the QGraphicsItem that draws a source on the
canvas.

``kind="mask"`` shows a single-band mask raster (``rooftop predict``'s GeoTIFF, 255 = roof) as a
coloured overlay instead of an RGB image (roof opaque in ``color``, the rest transparent).

Tiles are premultiplied ARGB32 QImages (made in the worker thread; QImage, unlike QPixmap, may be
made there); pixels without data are transparent.

GDAL keeps decompressed blocks in its own cache, by default 5 % of the machine's memory: after
one overview read of a 30,000 px orthophoto that was 1.2 GB of the window's memory
(benchmarks/orthophoto_gui.py). ``core.raster`` sets ``GDAL_CACHEMAX`` to its
``GDAL_CACHE_MB`` unless the user set it; the tile cache here is the view's cache.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QRectF, Signal
from PySide6.QtGui import QImage

from core import overview_cache
from core.errors import RooftopError
from rooftop_gui.workers import Task, TaskRunner

log = logging.getLogger(__name__)

#: Side in output pixels of a tile (at every level of detail).
TILE = 512
#: Longest side of the overview read at open.
OVERVIEW_MAX_SIDE = 2048
#: Bytes of tiles the cache keeps (1 MiB per 512 px tile): the view's memory bound.
CACHE_BYTES = 192 << 20
#: Tiles read around the visible ones (in tiles), so that a pan finds its next tiles ready.
MARGIN_TILES = 1

TileKey = tuple[int, int, int]  # (level, tile row, tile column)


@dataclass(frozen=True)
class RasterInfo:
    """What the window needs to know of an open raster (plain Python values, no rasterio)."""

    path: Path
    width: int
    height: int
    crs_name: str | None  # "WGS 84 / UTM zone 33N"; None without a CRS
    crs_code: str | None  # "EPSG:32633" (or the CRS's text when it has no code)
    transform: tuple[float, ...]  # the geotransform's a, b, c, d, e, f (identity without one)
    overview_factors: tuple[int, ...]
    georeferenced: bool
    dtype: str
    crs_wkt: str | None = None  # the CRS as WKT (for the core's vector functions)
    units: str = ""  # the CRS's linear unit ("metre"), "" when unknown or geographic

    def map_xy(self, col: float, row: float) -> tuple[float, float]:
        """The CRS coordinates of pixel position ``(col, row)`` (pixel corners on integers)."""
        a, b, c, d, e, f = self.transform[:6]
        return a * col + b * row + c, d * col + e * row + f

    @property
    def pixel_size(self) -> float:
        """The ground size of a pixel along x, in CRS units (1 without a geotransform)."""
        a, b = self.transform[0], self.transform[1]
        return math.hypot(a, b) or 1.0

    def describe(self) -> str:
        size = f"{self.width:,} × {self.height:,} px".replace(",", " ")
        if self.crs_name:
            unit = {"metre": "m", "meter": "m"}.get(self.units, self.units or "units")
            return f"{size}, {self.crs_name} ({self.crs_code}), {self.pixel_size:g} {unit}/px"
        return f"{size}, no CRS (pixel coordinates)"


@dataclass(frozen=True)
class _Opened:
    info: RasterInfo


@dataclass(frozen=True)
class _Overview:
    image: QImage
    factor: int


#: A raster without overviews of its own is read for its overview in bands of rows, each shown
#: as it arrives (the whole decimated read decodes every block: 30 s at 30,000 px): the first
#: band is one row of the file's blocks, so that something shows within a second, and each next
#: band twice the last, up to a sixteenth of the raster.
OVERVIEW_BANDS = 16


def overview_bands(height: int, block_rows: int, factor: int) -> list[tuple[int, int]]:
    """``(row, rows)`` of the bands a progressive overview reads, top to bottom: each starts on
    a multiple of ``factor`` (so its decimated rows land on whole rows of the overview) at or
    after a block edge; one block row first, then doubling up to ``height / OVERVIEW_BANDS``."""
    block_rows = max(1, block_rows)
    largest = max(block_rows, math.ceil(height / OVERVIEW_BANDS))
    bands, row, size = [], 0, block_rows
    while row < height:
        end = min(height, math.ceil(min(height, row + size) / factor) * factor)
        if end <= row:
            end = min(height, row + factor)
        bands.append((row, end - row))
        row, size = end, min(largest, size * 2)
    return bands


def _progressive_overview(source: Any, max_side: int, picture, on_progress, should_stop):
    """The overview of a raster without overviews, read band by band; each band read so far is
    reported as an ``_Overview`` (the rest transparent); returns ``(rgb, valid, factor)`` of the
    whole one (None when stopped)."""
    factor = max(1, math.ceil(max(source.width, source.height) / max_side))
    out_h, out_w = math.ceil(source.height / factor), math.ceil(source.width / factor)
    rgb = np.zeros((out_h, out_w, 3), np.uint8)
    valid = np.zeros((out_h, out_w), bool)
    for row, rows in overview_bands(source.height, source.block_shape[0], factor):
        if should_stop():
            return None
        part_rgb, part_valid = source.read_decimated(row, 0, rows, source.width, factor)
        top = row // factor
        rgb[top : top + len(part_rgb), : part_rgb.shape[1]] = part_rgb
        valid[top : top + len(part_valid), : part_valid.shape[1]] = part_valid
        if row + rows < source.height:
            on_progress(_Overview(picture(rgb, valid), factor))
    return rgb, valid, factor


@dataclass(frozen=True)
class _TileRead:
    key: TileKey
    image: QImage


def crs_names(crs: Any) -> tuple[str | None, str | None]:
    """``(name, code)`` of a rasterio CRS: the WKT's own name ("WGS 84 / UTM zone 33N") and
    "EPSG:32633" (its text when it has no authority code); ``(None, None)`` without a CRS."""
    if crs is None:
        return None, None
    try:
        wkt = crs.to_wkt()
    except Exception:  # noqa: BLE001 - an odd CRS still has a text
        wkt = ""
    found = re.match(r'^\s*\w+\["([^"]+)"', wkt)
    try:
        authority = crs.to_authority()
    except Exception:  # noqa: BLE001
        authority = None
    code = f"{authority[0]}:{authority[1]}" if authority else crs.to_string()
    return (found.group(1) if found else code), code


def _linear_units(crs: Any) -> str:
    try:
        return "" if crs is None or crs.is_geographic else str(crs.linear_units or "")
    except Exception:  # noqa: BLE001 - an odd CRS: no unit shown
        return ""


def argb_image(rgb: np.ndarray, valid: np.ndarray) -> QImage:
    """A premultiplied ARGB32 QImage of ``rgb`` (H, W, 3 uint8), transparent where not ``valid``."""
    height, width = valid.shape
    pixels = np.empty((height, width, 4), np.uint8)
    pixels[..., 0] = rgb[..., 2]  # little-endian ARGB32 is B, G, R, A in memory
    pixels[..., 1] = rgb[..., 1]
    pixels[..., 2] = rgb[..., 0]
    pixels[..., 3] = np.where(valid, 255, 0)
    pixels[~valid, :3] = 0  # premultiplied: a transparent pixel is all zeros
    image = QImage(pixels.data, width, height, width * 4, QImage.Format.Format_ARGB32_Premultiplied)
    return image.copy()  # owns its pixels (the array goes away)


def mask_image(rgb: np.ndarray, valid: np.ndarray, color: tuple[int, int, int]) -> QImage:
    """A mask raster's pixels (band 1 as ``rgb[..., 0]``, non-zero = roof) as ``color`` on
    transparent."""
    roof = (rgb[..., 0] > 0) & valid
    coloured = np.zeros(rgb.shape, np.uint8)
    coloured[roof] = color
    return argb_image(coloured, roof)


def read_decimated(
    source: Any, row: int, col: int, height: int, width: int, factor: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(rgb, valid)`` of source rows ``row..row+height`` and columns ``col..col+width`` decimated
    by ``factor`` (``core.raster.RasterSource.read_decimated``)."""
    return source.read_decimated(row, col, height, width, factor)


class TileCache:
    """A least-recently-used cache of tile images bounded by their bytes."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[TileKey, QImage] = OrderedDict()
        self.bytes = 0
        self.peak_bytes = 0
        self.evicted = 0

    def get(self, key: TileKey) -> QImage | None:
        image = self._items.get(key)
        if image is not None:
            self._items.move_to_end(key)
        return image

    def peek(self, key: TileKey) -> QImage | None:
        """The tile without making it recently used (painting a stand-in)."""
        return self._items.get(key)

    def put(self, key: TileKey, image: QImage) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= old.sizeInBytes()
        self._items[key] = image
        self.bytes += image.sizeInBytes()
        while self.bytes > self.max_bytes and len(self._items) > 1:
            _key, dropped = self._items.popitem(last=False)
            self.bytes -= dropped.sizeInBytes()
            self.evicted += 1
        self.peak_bytes = max(self.peak_bytes, self.bytes)

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0

    def __contains__(self, key: TileKey) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[TileKey]:
        return list(self._items)


class RasterTileSource(QObject):
    """An open raster read by a background task: its :class:`RasterInfo`, an overview and tiles
    on request (see the module docstring). Signals are emitted in the GUI thread."""

    opened = Signal(object)  # RasterInfo
    overview_ready = Signal()
    tile_ready = Signal(object)  # TileKey
    failed = Signal(object)  # the exception that kept the raster from opening

    def __init__(
        self,
        path: str | Path,
        runner: TaskRunner,
        *,
        kind: str = "rgb",
        color: tuple[int, int, int] = (0, 190, 255),
        cache_bytes: int | None = None,
        overview_max_side: int | None = None,
        overview_cache_dir: str | Path | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        if kind not in ("rgb", "mask"):
            raise ValueError(f"kind must be 'rgb' or 'mask', got {kind!r}")
        self.path = Path(path)
        self.kind, self.color = kind, color
        self.runner = runner
        self.cache = TileCache(CACHE_BYTES if cache_bytes is None else cache_bytes)
        self.info: RasterInfo | None = None
        self.overview: QImage | None = None
        self.overview_factor = 1
        self.error: BaseException | None = None
        self.tiles_read = 0
        self._overview_max_side = overview_max_side or OVERVIEW_MAX_SIDE
        #: Where the overview of a raster without overviews of its own is kept for next time
        #: (:mod:`core.overview_cache`); None: not kept.
        self.overview_cache_dir = None if overview_cache_dir is None else Path(overview_cache_dir)
        self.overview_from_cache = False
        self._reader: Any = None  # the core RasterSource (opened and used in worker threads)
        self._lock = threading.Lock()
        self._wanted: list[TileKey] = []
        self._open_task: Task | None = None
        self._tile_task: Task | None = None
        self._closed = False

    # ----------------------------------------------------------------- life cycle
    def open(self) -> Task:
        """Open the raster and read its overview in the background."""
        path, kind, max_side = self.path, self.kind, self._overview_max_side
        color, cache_dir = self.color, self.overview_cache_dir

        def work(on_progress, should_stop):
            from core.raster import open_raster

            reader = open_raster(path, bands=(1,) if kind == "mask" else None)
            try:
                name, code = crs_names(reader.crs)
                t = reader.transform
                info = RasterInfo(
                    path,
                    reader.width,
                    reader.height,
                    name,
                    code,
                    (t.a, t.b, t.c, t.d, t.e, t.f),
                    tuple(reader.overview_factors()),
                    reader.crs is not None or not t.is_identity,
                    reader.dtype,
                    reader.crs.to_wkt() if reader.crs is not None else None,
                    _linear_units(reader.crs),
                )
                self._reader = reader
                on_progress(_Opened(info))
                if should_stop():
                    return None

                # the overview through a second handle: tiles are read meanwhile
                def picture(rgb, valid):
                    if kind == "mask":
                        return mask_image(rgb, valid, color)
                    return argb_image(rgb, valid)

                if info.overview_factors or max(info.width, info.height) <= max_side:
                    with open_raster(path, bands=(1,) if kind == "mask" else None) as other:
                        rgb, valid, factor = other.read_overview(max_side)
                    return _Overview(picture(rgb, valid), factor)
                if cache_dir is not None:
                    cached = overview_cache.load(cache_dir, path, kind, max_side)
                    if cached is not None:
                        self.overview_from_cache = True
                        return _Overview(picture(cached.rgb, cached.valid), cached.factor)
                with open_raster(path, bands=(1,) if kind == "mask" else None) as other:
                    whole = _progressive_overview(
                        other, max_side, picture, on_progress, should_stop
                    )
                if whole is None:
                    return None
                if cache_dir is not None:
                    try:
                        overview_cache.save(cache_dir, path, kind, max_side, *whole)
                    except (OSError, RooftopError) as exc:  # only the next opening is slower
                        log.warning("could not keep the overview of %s: %s", path, exc)
                return _Overview(picture(whole[0], whole[1]), whole[2])
            except BaseException:
                if self._reader is None:
                    reader.close()
                raise

        self._open_task = self.runner.start(
            work,
            on_progress=self._on_event,
            on_finished=self._on_overview,
            on_failed=self._on_failed,
            on_done=self._open_done,
            name="raster-open",
        )
        return self._open_task

    def _open_done(self) -> None:
        self._open_task = None
        if self._closed and self._tile_task is None:
            self._close_reader()
        elif self._wanted and self._tile_task is None:
            self._start_loader()

    def _on_failed(self, exc: BaseException) -> None:
        self.error = exc
        if not self._closed:
            self.failed.emit(exc)

    def _on_event(self, event: Any) -> None:
        if self._closed:
            return
        if isinstance(event, _Opened):
            self.info = event.info
            self.opened.emit(event.info)
        elif isinstance(event, _Overview):  # a band of a progressive overview
            self._on_overview(event)
        elif isinstance(event, _TileRead):
            self.cache.put(event.key, event.image)
            self.tiles_read += 1
            self.tile_ready.emit(event.key)

    def _on_overview(self, result: _Overview | None) -> None:
        if result is None or self._closed:
            return
        self.overview, self.overview_factor = result.image, result.factor
        self.overview_ready.emit()

    def close(self) -> None:
        """Stop reading and close the raster (once its tasks have ended)."""
        self._closed = True
        with self._lock:
            self._wanted = []
        for task in (self._open_task, self._tile_task):
            if task is not None:
                task.request_stop()
        if self._open_task is None and self._tile_task is None:
            self._close_reader()
        self.cache.clear()
        self.overview = None

    def _close_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def is_busy(self) -> bool:
        return self._open_task is not None or self._tile_task is not None

    def is_opening(self) -> bool:
        """True until the overview is read whole (a progressive one shows band by band)."""
        return self._open_task is not None

    def is_reading_tiles(self) -> bool:
        """True while requested tiles are being read."""
        return self._tile_task is not None or self.pending() > 0

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Wait for the running reads (tests)."""
        ok = True
        for task in (self._open_task, self._tile_task):
            if task is not None:
                ok = task.wait(timeout_ms) and ok
        return ok

    # ----------------------------------------------------------------- geometry
    def expected_factor(self) -> int:
        """The overview's decimation (known from the raster's size before it is read)."""
        if self.overview is not None:
            return self.overview_factor
        if self.info is None:
            return 1
        return max(1, math.ceil(max(self.info.width, self.info.height) / self._overview_max_side))

    def max_level(self) -> int:
        """The coarsest level of tiles: finer than the overview (coarser: the overview shows)."""
        return max(0, math.ceil(math.log2(self.expected_factor())) - 1)

    def level_for(self, zoom: float) -> int:
        """The tile level for a zoom (screen px per image px): the coarsest not coarser than
        the screen."""
        if zoom <= 0:
            return self.max_level()
        return min(self.max_level(), max(0, math.floor(math.log2(1.0 / zoom))))

    def needs_tiles(self, zoom: float) -> bool:
        """False while the overview is as detailed as the screen at ``zoom``."""
        factor = self.expected_factor()
        return factor > 1 and zoom * factor > 1.0

    def tile_rect(self, key: TileKey) -> QRectF:
        """The tile's rectangle in image pixels (the last row and column are cut at the edge)."""
        level, ty, tx = key
        span = TILE << level
        info = self.info
        x0, y0 = tx * span, ty * span
        return QRectF(x0, y0, min(span, info.width - x0), min(span, info.height - y0))

    def tiles_in(self, rect: QRectF, level: int, margin: int = 0) -> list[TileKey]:
        """Keys of the tiles of ``level`` over ``rect`` (image pixels) plus ``margin`` tiles,
        nearest the rectangle's centre first."""
        if self.info is None:
            return []
        span = TILE << level
        cols = math.ceil(self.info.width / span)
        rows = math.ceil(self.info.height / span)
        tx0 = max(0, math.floor(rect.left() / span) - margin)
        tx1 = min(cols - 1, math.floor(max(rect.left(), rect.right() - 1e-6) / span) + margin)
        ty0 = max(0, math.floor(rect.top() / span) - margin)
        ty1 = min(rows - 1, math.floor(max(rect.top(), rect.bottom() - 1e-6) / span) + margin)
        if tx1 < tx0 or ty1 < ty0:
            return []
        cx, cy = rect.center().x() / span - 0.5, rect.center().y() / span - 0.5
        keys = [(level, ty, tx) for ty in range(ty0, ty1 + 1) for tx in range(tx0, tx1 + 1)]
        keys.sort(key=lambda k: (k[2] - cx) ** 2 + (k[1] - cy) ** 2)
        return keys

    # ----------------------------------------------------------------- reading tiles
    def request(self, keys: list[TileKey]) -> None:
        """Read these tiles (in this order) unless cached; replaces the previous request."""
        if self._closed:
            return
        wanted = [k for k in keys if k not in self.cache]
        with self._lock:
            self._wanted = wanted
        if wanted and self._tile_task is None:
            self._start_loader()

    def pending(self) -> int:
        with self._lock:
            return len(self._wanted)

    def _start_loader(self) -> None:
        if self._reader is None or self._closed:
            return
        reader, kind, color = self._reader, self.kind, self.color
        info = self.info

        def work(on_progress, should_stop):
            while not should_stop():
                with self._lock:
                    if not self._wanted:
                        return None
                    key = self._wanted.pop(0)
                level, ty, tx = key
                span = TILE << level
                x0, y0 = tx * span, ty * span
                w, h = min(span, info.width - x0), min(span, info.height - y0)
                if w <= 0 or h <= 0:
                    continue
                rgb, valid = read_decimated(reader, y0, x0, h, w, 1 << level)
                image = mask_image(rgb, valid, color) if kind == "mask" else argb_image(rgb, valid)
                on_progress(_TileRead(key, image))
            return None

        def done():
            self._tile_task = None
            if self._closed:
                if self._open_task is None:
                    self._close_reader()
            elif self.pending():
                self._start_loader()

        self._tile_task = self.runner.start(
            work,
            on_progress=self._on_event,
            on_failed=self._on_failed,
            on_done=done,
            name="raster-tiles",
        )

    def pixel_rgb(self, x: int, y: int) -> tuple[int, int, int] | None:
        """The colour of pixel (x, y) if its full-resolution tile is cached."""
        image = self.cache.peek((0, y // TILE, x // TILE))
        if image is None:
            return None
        value = image.pixel(x % TILE, y % TILE)
        if (value >> 24) == 0:
            return None
        return (value >> 16) & 255, (value >> 8) & 255, value & 255
