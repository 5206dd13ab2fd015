"""Per-image contrast stretch of a model's input (``TrainConfig.input_stretch``).

Aerial and satellite images differ in exposure and colour balance from one flight, sensor or
processing chain to the next (in the devdata the SpaceNet and Rio tiles are darker and bluer
than the others). A model that sees every image stretched the same way does not have to learn
each exposure. The stretch is QGIS's default for a multiband raster: per band, a cumulative
count cut at the 2nd and 98th percentiles of the valid pixels, mapped linearly onto 0 .. 255.

The stretch is a *table* per band (``(3, 256) uint8``: the output value of each input value),
found once for a whole image: in training for each image as it is decoded, in prediction for
the image, and for an orthophoto once for the whole raster (:func:`raster_stretch_table`), so
every tile of a town is stretched alike and a windowed prediction stays the in-memory one. The
model's checkpoint says which stretch it was trained with (``input_stretch`` in its metadata);
prediction applies that one.

Values: ``"none"`` (RGB / 255, the model sees the pixels as they are) and ``"percentile"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.errors import ConfigError

#: ``(name, help)`` of each stretch (the command line's and the window's choices).
STRETCH_CHOICES: tuple[tuple[str, str], ...] = (
    ("none", "the pixels as they are (RGB / 255)"),
    (
        "percentile",
        "each band stretched to its 2nd-98th percentile, once per image or orthophoto "
        "(as QGIS shows rasters)",
    ),
)
STRETCHES = tuple(name for name, _help in STRETCH_CHOICES)
#: The cumulative count cut (percent of the valid pixels below / above): QGIS's default.
LOW_PERCENT, HIGH_PERCENT = 2.0, 98.0
#: A band whose cut range is narrower than this many levels (a flat or nearly empty image) is
#: widened to it around its middle, so that noise is not blown up into the whole range.
MIN_RANGE = 32
#: Rasters larger than this a side are sampled, not read whole, to find the table.
SAMPLE_MAX_SIDE = 2048
#: A large raster without overviews is sampled in a grid of this many x this many windows ...
SAMPLE_GRID = 8
#: ... of this side in pixels.
SAMPLE_WINDOW = 256

RowReader = Callable[[int, int], np.ndarray]


def check_stretch(name: str) -> str:
    """``name`` if it is one of :data:`STRETCHES`, else a ConfigError."""
    if name not in STRETCHES:
        raise ConfigError(f"unknown input stretch {name!r}: use " + " or ".join(STRETCHES))
    return name


def identity_table() -> np.ndarray:
    return np.tile(np.arange(256, dtype=np.uint8), (3, 1))


def ranges_from_histograms(hist: np.ndarray) -> np.ndarray:
    """``(3, 2)`` int: each band's ``(low, high)``, the values that become 0 and 255, from
    per-band histograms ``(3, 256)`` of counts (module docstring); ``(0, 255)`` for a band
    without pixels."""
    ranges = np.tile(np.array([0, 255]), (3, 1))
    for band in range(3):
        counts = hist[band].astype(np.float64)
        total = counts.sum()
        if total <= 0:
            continue
        cumulative = np.cumsum(counts) / total
        low = int(np.searchsorted(cumulative, LOW_PERCENT / 100.0, side="left"))
        high = int(np.searchsorted(cumulative, HIGH_PERCENT / 100.0, side="left"))
        if high - low < MIN_RANGE:
            middle = (low + high) / 2.0
            low = max(0, math.floor(middle - MIN_RANGE / 2))
            high = min(255, low + MIN_RANGE)
            low = high - MIN_RANGE
        ranges[band] = low, high
    return ranges


def table_from_ranges(ranges: np.ndarray) -> np.ndarray:
    """The ``(3, 256) uint8`` table mapping each band's ``(low, high)`` linearly onto 0 .. 255."""
    table = identity_table()
    for band, (low, high) in enumerate(ranges):
        values = (np.arange(256, dtype=np.float64) - low) * 255.0 / (high - low)
        table[band] = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return table


def table_from_histograms(hist: np.ndarray) -> np.ndarray:
    """The stretch table of per-band histograms ``(3, 256)`` of counts (module docstring)."""
    return table_from_ranges(ranges_from_histograms(hist))


def histograms(image: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Per-band histograms ``(3, 256) int64`` of an ``(H, W, 3) uint8`` image's valid pixels."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    pixels = image.reshape(-1, 3) if valid is None else image[valid]
    return np.stack([np.bincount(pixels[:, b], minlength=256) for b in range(3)])


def stretch_table(image: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """The stretch table of one image (``valid``: the pixels that hold data; None: all)."""
    return table_from_histograms(histograms(image, valid))


def apply_table(image: np.ndarray, table: np.ndarray) -> np.ndarray:
    """A new ``(..., 3) uint8`` image: each band's values looked up in its row of ``table``."""
    out = np.empty_like(image)
    for band in range(3):
        out[..., band] = table[band][image[..., band]]
    return out


def stretch(image: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """``image`` stretched by its own table."""
    return apply_table(image, stretch_table(image, valid))


def stretched_reader(read_rows: RowReader, table: np.ndarray | None) -> RowReader:
    """A row reader (``core.tiled_inference``) that returns ``read_rows``'s rows stretched by
    ``table`` (``read_rows`` itself when there is no table)."""
    if table is None:
        return read_rows
    return lambda y0, y1: apply_table(read_rows(y0, y1), table)


def raster_ranges_from_source(source) -> np.ndarray:
    """The stretch ranges of a whole raster (``core.raster.RasterSource``): from all its pixels up
    to :data:`SAMPLE_MAX_SIDE` a side, else from an overview when the file has them, else from a
    :data:`SAMPLE_GRID` x :data:`SAMPLE_GRID` grid of windows spread over it (a decimated read of
    a raster without overviews would read every block)."""
    width, height = source.width, source.height
    if max(width, height) <= SAMPLE_MAX_SIDE:
        rgb, valid = source.read()
        return ranges_from_histograms(histograms(rgb, valid))
    if source.overview_factors:
        rgb, valid, _factor = source.read_overview(SAMPLE_MAX_SIDE // 2)
        return ranges_from_histograms(histograms(rgb, valid))
    hist = np.zeros((3, 256), np.int64)
    side_y, side_x = min(SAMPLE_WINDOW, height), min(SAMPLE_WINDOW, width)
    for i in range(SAMPLE_GRID):
        y = round((height - side_y) * (i + 0.5) / SAMPLE_GRID)
        for j in range(SAMPLE_GRID):
            x = round((width - side_x) * (j + 0.5) / SAMPLE_GRID)
            rgb, valid = source.read_window(y, x, side_y, side_x, boundless=False)
            hist += histograms(rgb, valid)
    return ranges_from_histograms(hist)


_RASTER_STRETCHES: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
_RASTER_STRETCHES_MAX = 16


def _raster_stretch(path: str | Path, bands, source) -> tuple[np.ndarray, np.ndarray]:
    """``(ranges, table)`` of the raster at ``path``, remembered for the file as it is (its
    path, size and modification time: an edited file is sampled again)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, tuple(bands or ()))
    found = _RASTER_STRETCHES.get(key)
    if found is None:
        if source is None:
            from core.raster import open_raster

            with open_raster(path, bands=bands) as opened:
                ranges = raster_ranges_from_source(opened)
        else:
            ranges = raster_ranges_from_source(source)
        found = (ranges, table_from_ranges(ranges))
        if len(_RASTER_STRETCHES) >= _RASTER_STRETCHES_MAX:
            _RASTER_STRETCHES.pop(next(iter(_RASTER_STRETCHES)))
        _RASTER_STRETCHES[key] = found
    return found


def raster_stretch_table(path: str | Path, bands=None, source=None) -> np.ndarray:
    """The stretch table of :func:`raster_ranges_from_source` of the raster at ``path`` (``source``: the raster already
    open, else it is opened with ``bands``), remembered until the file changes."""
    return _raster_stretch(path, bands, source)[1]


def raster_stretch_ranges(path: str | Path, bands=None, source=None) -> np.ndarray:
    """Each band's ``(low, high)`` of :func:`raster_stretch_table` (``(3, 2)`` int)."""
    return _raster_stretch(path, bands, source)[0]


def image_stretch_ranges(path: str | Path) -> np.ndarray:
    """The stretch ranges of an image or raster file (a raster's by :func:`raster_stretch_ranges`,
    a plain image's from all its pixels)."""
    from core.raster import RASTER_SUFFIXES

    if Path(path).suffix.lower() in RASTER_SUFFIXES:
        return raster_stretch_ranges(path)
    from core.io import read_image

    return ranges_from_histograms(histograms(read_image(path)))


def model_stretch(model) -> str:
    """The input stretch a model was trained with (``input_stretch`` on the model, set from its
    checkpoint: :func:`core.checkpoint.load_checkpoint`; ``"none"`` when unset)."""
    return getattr(model, "input_stretch", "none")
