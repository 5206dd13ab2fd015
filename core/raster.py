"""Georeferenced rasters (GeoTIFF, Cloud-Optimised GeoTIFF, JPEG 2000, VRT...) read by windows.

Aerial orthophotos are often 20,000-100,000 pixels a side: far too big for
:func:`core.io.read_image`. This module reads them window by window through rasterio (whose
wheels bundle GDAL and PROJ), keeping their coordinate reference system (CRS) and geotransform,
and writes masks and probability maps on exactly the same grid. Qt-free and torch-free.

Reading (:func:`open_raster` -> :class:`RasterSource`):

* Bands: three or more bands read bands 1, 2, 3 as RGB unless ``bands`` chooses others (for
  example ``bands=(4, 3, 2)``); a single band (grey) is replicated to RGB and a palette band is
  expanded through its colour table, as :func:`core.io.read_image` does; two bands are read as
  grey + alpha when the second is an alpha band, else refused unless ``bands`` says which to use.
* Validity: :meth:`RasterSource.read_window` returns a ``valid`` mask that is False where GDAL's
  mask says so (the nodata value, an internal mask or an alpha band of 0), where a float sample is
  not finite, and outside the raster. A pixel is valid when any of the chosen bands is (GDAL's own
  per-dataset rule: with nodata 0, a pure red pixel is valid). Invalid pixels are black (0, 0, 0).
* Scaling to 8 bits is :func:`core.io.scale_to_uint8` (one place for the whole project). It
  depends on the data's range (integers: the smallest bit depth that holds the maximum; floats:
  0..1, else min..max), so a window scaled on its own would differ from the whole image. The range
  is therefore found once per raster, over its valid pixels, and every window is scaled with it
  (its samples are clipped to that range and the function sees the range's two ends with them).
  For a raster of at most ``stats_max_side`` pixels a side the range comes from every pixel, and a
  window reads exactly as the same pixels of the whole image; beyond that it comes from a
  decimated read (GDAL uses the file's overviews for it), which can miss an isolated extreme
  pixel: brighter samples then saturate. ``stats_max_side=None`` scans every pixel instead.
  Without nodata this is :func:`core.io.read_image`'s result; with nodata, the nodata samples are
  left out of the range (read_image would count them).
* Errors: a missing, unreadable, empty or non-raster file raises :class:`ImageReadError` at open;
  a read that fails (a truncated or corrupt file) raises it from the read, naming the file.
* A source holds an open GDAL dataset: close it (or use ``with``). Reads of one source are
  serialised by a lock, so threads may share it; open one source per thread to read in parallel.

Writing masks and probability maps on a raster's grid is :mod:`core.raster_writer`; their
encodings (``MASK_*``, ``PROBABILITY_*``) are defined here, where they are read too.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio import Affine
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from core.errors import ConfigError, ImageReadError, RooftopError
from core.io import scale_to_uint8

try:  # GDAL's own errors (CPLE_*) are not all RasterioError subclasses
    from rasterio._err import CPLE_BaseError
except ImportError:  # pragma: no cover - private module moved
    CPLE_BaseError = RasterioError

#: Errors of GDAL/rasterio/the OS while reading or writing a raster.
GDAL_ERRORS = (RasterioError, CPLE_BaseError, OSError, ValueError, MemoryError)

#: GDAL's block cache (MB). GDAL's default is 5 % of the machine's memory, which alone took 1.2
#: GB of a 24 GB machine predicting or showing a 30,000 px orthophoto; windowed reading needs
#: about two rows of blocks (a 30,000 px wide row of 512 px RGB blocks is 46 MB). Set unless the
#: user set GDAL_CACHEMAX; GDAL reads it once, at its first block read, after this import.
GDAL_CACHE_MB = 128
os.environ.setdefault("GDAL_CACHEMAX", str(GDAL_CACHE_MB))

#: Side in pixels of the tiles of the rasters we write.
BLOCK_SIZE = 512
#: Overviews are built until the smallest is at most this many pixels a side.
OVERVIEW_MIN_SIDE = 256
#: Default ``stats_max_side``: rasters up to this size are scanned whole for the scaling range.
STATS_MAX_SIDE = 2048

#: Mask raster values.
MASK_BACKGROUND, MASK_ROOF = 0, 255
#: Probability raster: ``value = round(p * PROBABILITY_SCALE)``, ``PROBABILITY_NODATA`` = no data.
PROBABILITY_SCALE, PROBABILITY_NODATA = 254, 255
KINDS = ("mask", "probability")
#: File name suffixes read as rasters (through GDAL) rather than as plain images.
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".j2k", ".vrt", ".img")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def gdal_message(exc: BaseException, path: Path, *others: Path | None) -> str:
    """The most specific message in an exception chain (GDAL's root cause), on one line, with
    ``path`` (and ``others``: our temporary files) said as "the file" (the caller names it)."""
    messages = []
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = _one_line(
            getattr(current, "strerror", None) or str(current) or type(current).__name__
        )
        if "see previous exception" not in text.lower():
            messages.append(text)
        current = current.__cause__ or current.__context__
    text = messages[-1] if messages else _one_line(str(exc)) or type(exc).__name__
    for name in (path, *others):
        if name is not None:
            for spelling in (f"'{name}'", str(name), f"'{name.name}'", name.name):
                text = text.replace(spelling, "the file")
    return text


class QuietGdal:
    """A context in which GDAL's 'not georeferenced' warning (a plain pixel grid) is silent."""

    def __enter__(self):
        self._catcher = warnings.catch_warnings()
        self._catcher.__enter__()
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return self

    def __exit__(self, *exc_info):
        return self._catcher.__exit__(*exc_info)


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise ImageReadError("file not found", path)
    if path.is_dir():
        raise ImageReadError("is a folder, not a raster file", path)
    if not os.access(path, os.R_OK):
        raise ImageReadError("permission denied: the file cannot be read", path)
    if path.stat().st_size == 0:
        raise ImageReadError("file is empty (0 bytes)", path)


def overview_factors_for(width: int, height: int, min_side: int = OVERVIEW_MIN_SIDE) -> list[int]:
    """Overview factors 2, 4, 8... until the smallest overview is at most ``min_side`` a side."""
    factors: list[int] = []
    side = max(width, height)
    factor = 1
    while math.ceil(side / factor) > min_side:
        factor *= 2
        factors.append(factor)
    return factors


class RasterSource:
    """An open raster read as RGB windows (see the module docstring); made by :func:`open_raster`."""

    def __init__(
        self,
        path: str | Path,
        bands: Sequence[int] | None = None,
        *,
        stats_max_side: int | None = STATS_MAX_SIDE,
    ):
        self.path = Path(path)
        _check_readable(self.path)
        self._lock = threading.RLock()
        self._range: tuple[Any, Any] | None = None
        self._stats_max_side = stats_max_side
        try:
            with QuietGdal():
                self._ds = rasterio.open(self.path)
        except GDAL_ERRORS as exc:
            text = gdal_message(exc, self.path)
            if "not recognized as being in a supported file format" in text:
                text = "not a raster image GDAL can read (unknown or unsupported format)"
            elif "no such file" in text.lower():
                text = "file not found"
            else:
                text = f"cannot open as a raster ({text})"
            raise ImageReadError(text, self.path) from exc
        try:
            self._setup(bands)
        except BaseException:
            self._ds.close()
            raise

    def _setup(self, bands: Sequence[int] | None) -> None:
        ds = self._ds
        if ds.count < 1 or ds.width < 1 or ds.height < 1:
            raise ImageReadError(
                f"raster has no pixels ({ds.width} x {ds.height}, {ds.count} bands)", self.path
            )
        interp = ds.colorinterp
        if bands is None:
            if ds.count >= 3:
                bands = (1, 2, 3)
            elif ds.count == 1 or interp[1] == ColorInterp.alpha:
                bands = (1,)
            else:
                raise ImageReadError(
                    "has 2 bands that are not grey + alpha; say which to use as RGB (bands=(1,) "
                    "for band 1 as grey, or three band numbers)",
                    self.path,
                )
        else:
            bands = tuple(bands)
            if len(bands) not in (1, 3):
                raise ConfigError(
                    f"bands must be one band number (grey) or three (RGB), got {bands}", self.path
                )
            for band in bands:
                if (
                    isinstance(band, bool)
                    or not isinstance(band, (int, np.integer))
                    or not 1 <= band <= ds.count
                ):
                    raise ConfigError(
                        f"band {band!r} does not exist: the raster has bands 1 to {ds.count}",
                        self.path,
                    )
            bands = tuple(int(b) for b in bands)
        self.bands: tuple[int, ...] = bands
        self._unique = tuple(dict.fromkeys(bands))
        dtypes = {ds.dtypes[b - 1] for b in self._unique}
        if len(dtypes) > 1:
            raise ImageReadError(
                f"the chosen bands {bands} have different data types {sorted(dtypes)}", self.path
            )
        self.dtype: str = dtypes.pop()
        if np.dtype(self.dtype).kind == "c":
            raise ImageReadError(f"complex-valued data ({self.dtype}) is not an image", self.path)
        self._lut: np.ndarray | None = None
        if len(bands) == 1 and interp[bands[0] - 1] == ColorInterp.palette:
            try:
                colormap = ds.colormap(bands[0])
            except ValueError:
                colormap = None
            if colormap:
                lut = np.zeros((max(max(colormap) + 1, 256), 4), np.uint8)
                for index, rgba in colormap.items():
                    lut[index] = rgba
                self._lut = lut

    # ---------------------------------------------------------------- properties
    @property
    def width(self) -> int:
        return self._ds.width

    @property
    def height(self) -> int:
        return self._ds.height

    @property
    def count(self) -> int:
        """Number of bands in the file (not only the chosen ones)."""
        return self._ds.count

    @property
    def crs(self):
        """The rasterio CRS, or None for a raster on a bare pixel grid."""
        return self._ds.crs or None

    @property
    def transform(self) -> Affine:
        """Pixel (col, row) to CRS (x, y) geotransform (the identity without georeferencing)."""
        return self._ds.transform

    @property
    def nodata(self) -> float | None:
        return self._ds.nodata

    @property
    def driver(self) -> str:
        return self._ds.driver

    @property
    def is_georeferenced(self) -> bool:
        """True when the raster has a CRS (else it works on the pixel grid; warn the user)."""
        return self.crs is not None

    @property
    def block_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the internal blocks of the first chosen band: read by these."""
        return tuple(self._ds.block_shapes[self.bands[0] - 1])

    @property
    def closed(self) -> bool:
        return self._ds.closed

    def overview_factors(self) -> list[int]:
        """Decimation factors of the overviews in the file (empty when it has none)."""
        return list(self._ds.overviews(self.bands[0]))

    @property
    def profile(self) -> dict:
        """The grid of this raster, as ``like`` of :class:`RasterWriter` accepts it."""
        return {
            "width": self.width,
            "height": self.height,
            "crs": self.crs,
            "transform": self.transform,
        }

    # ---------------------------------------------------------------- life cycle
    def close(self) -> None:
        with self._lock:
            self._ds.close()

    def __enter__(self) -> RasterSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.width} x {self.height}, bands {self.bands}"
        return f"RasterSource({str(self.path)!r}, {state})"

    # ---------------------------------------------------------------- reading
    def _check_open(self) -> None:
        if self._ds.closed:
            raise ValueError(f"{self.path}: the raster is closed")

    def _read_failed(self, exc: BaseException, what: str) -> ImageReadError:
        text = gdal_message(exc, self.path)
        if isinstance(exc, MemoryError):
            return ImageReadError(f"not enough memory to read {what}", self.path)
        return ImageReadError(
            f"cannot read {what} (the file may be truncated or corrupt: {text})", self.path
        )

    def _read_raw(
        self, window: Window | None, out_shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Native-dtype samples ``(h, w, len(bands))`` and validity ``(h, w)`` of a window."""
        kwargs: dict[str, Any] = {"window": window}
        if out_shape is not None:
            kwargs["out_shape"] = (len(self._unique), *out_shape)
            kwargs["resampling"] = Resampling.nearest
        data = self._ds.read(list(self._unique), **kwargs)
        masks = self._ds.read_masks(list(self._unique), **kwargs)
        valid = masks.any(axis=0)
        if data.dtype.kind == "f":
            valid &= np.isfinite(data).all(axis=0)
        position = {band: i for i, band in enumerate(self._unique)}
        data = np.moveaxis(data, 0, -1)[..., [position[b] for b in self.bands]]
        return data, valid

    def _scaling_range(self) -> tuple[Any, Any] | None:
        """``(low, high)`` of the valid samples over the raster, computed once (module docstring)."""
        if self._lut is not None or self.dtype == "uint8":
            return None
        if self._range is not None:
            return self._range
        width, height = self.width, self.height
        dtype = np.dtype(self.dtype)
        floating = dtype.kind == "f"
        low = high = 0.0 if floating else 0

        def update(data: np.ndarray, valid: np.ndarray) -> None:
            nonlocal low, high
            samples = data[valid]
            if samples.size == 0:
                return
            if floating:
                samples = samples[np.isfinite(samples)]
                if samples.size == 0:
                    return
            low = min(low, samples.min().item())
            high = max(high, samples.max().item())

        try:
            side = max(width, height)
            if self._stats_max_side is not None and side > self._stats_max_side:
                factor = math.ceil(side / self._stats_max_side)
                update(
                    *self._read_raw(None, (math.ceil(height / factor), math.ceil(width / factor)))
                )
            else:
                block_rows = self.block_shape[0]
                rows = max(block_rows, (4_000_000 // width) // block_rows * block_rows)
                for row in range(0, height, rows):
                    update(*self._read_raw(Window(0, row, width, min(rows, height - row))))
        except GDAL_ERRORS as exc:
            raise self._read_failed(exc, "the pixels to find their range") from exc
        if not floating:
            low = 0  # scale_to_uint8 clips negative integers to 0
        self._range = (dtype.type(low), dtype.type(high))
        return self._range

    @property
    def scaling_range(self) -> tuple[float, float] | None:
        """``(low, high)`` used to scale to 8 bits (None for 8-bit and palette data)."""
        with self._lock:
            self._check_open()
            found = self._scaling_range()
        return None if found is None else (found[0].item(), found[1].item())

    def _to_rgb(self, data: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rgb (h, w, 3) uint8, valid)`` of native samples (module docstring); invalid black."""
        if self._lut is not None:
            index = np.clip(data[..., 0].astype(np.int64), 0, len(self._lut) - 1)
            rgba = self._lut[index]
            valid = valid & (rgba[..., 3] > 0)  # a transparent palette entry
            rgb = rgba[..., :3].copy()
        else:
            found = self._scaling_range()
            if found is not None:
                low, high = found
                samples = data.reshape(-1)
                if samples.dtype.kind == "f":
                    samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
                samples = np.clip(samples, low, high)
                ends = np.array([low, high], dtype=samples.dtype)
                data = scale_to_uint8(np.concatenate([samples, ends]))[:-2].reshape(data.shape)
            if data.shape[-1] == 1:
                data = np.repeat(data, 3, axis=-1)
            rgb = np.ascontiguousarray(data, dtype=np.uint8)
        rgb[~valid] = 0
        return rgb, valid

    def read_window(
        self, row_off: int, col_off: int, height: int, width: int, boundless: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(rgb (height, width, 3) uint8, valid (height, width) bool)`` of a window.

        With ``boundless`` the window may reach outside the raster: those pixels are black and
        invalid. Without it, a window outside the raster is a ValueError.
        """
        row_off, col_off, height, width = int(row_off), int(col_off), int(height), int(width)
        if height < 0 or width < 0:
            raise ValueError(f"window size must not be negative, got {height} x {width}")
        r0, c0 = max(row_off, 0), max(col_off, 0)
        r1, c1 = min(row_off + height, self.height), min(col_off + width, self.width)
        inside = (
            r0 == row_off and c0 == col_off and r1 == row_off + height and c1 == col_off + width
        )
        if not boundless and not inside:
            raise ValueError(
                f"window rows {row_off}..{row_off + height}, columns {col_off}.."
                f"{col_off + width} is not inside the {self.height} x {self.width} raster"
            )
        rgb = np.zeros((height, width, 3), np.uint8)
        valid = np.zeros((height, width), bool)
        if r1 <= r0 or c1 <= c0:
            with self._lock:
                self._check_open()
            return rgb, valid
        with self._lock:
            self._check_open()
            try:
                inner, inner_valid = self._to_rgb(*self._read_raw(Window(c0, r0, c1 - c0, r1 - r0)))
            except RooftopError:
                raise
            except GDAL_ERRORS as exc:
                raise self._read_failed(exc, f"rows {r0}-{r1 - 1}, columns {c0}-{c1 - 1}") from exc
        rows = slice(r0 - row_off, r1 - row_off)
        cols = slice(c0 - col_off, c1 - col_off)
        rgb[rows, cols] = inner
        valid[rows, cols] = inner_valid
        return rgb, valid

    def read_decimated(
        self, row_off: int, col_off: int, height: int, width: int, factor: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(rgb, valid)`` of the window inside the raster, decimated by ``factor`` (nearest
        samples, ``ceil(height / factor) x ceil(width / factor)``); GDAL reads them from the
        file's overviews when it has them. ``factor`` 1 is :meth:`read_window`."""
        if factor <= 1:
            return self.read_window(row_off, col_off, height, width, boundless=False)
        row_off, col_off, height, width = int(row_off), int(col_off), int(height), int(width)
        if (
            row_off < 0
            or col_off < 0
            or height < 1
            or width < 1
            or row_off + height > self.height
            or col_off + width > self.width
        ):
            raise ValueError(
                f"window rows {row_off}..{row_off + height}, columns {col_off}.."
                f"{col_off + width} is not inside the {self.height} x {self.width} "
                "raster"
            )
        shape = (max(1, math.ceil(height / factor)), max(1, math.ceil(width / factor)))
        with self._lock:
            self._check_open()
            try:
                return self._to_rgb(*self._read_raw(Window(col_off, row_off, width, height), shape))
            except RooftopError:
                raise
            except GDAL_ERRORS as exc:
                raise self._read_failed(
                    exc,
                    f"rows {row_off}-{row_off + height - 1}, columns "
                    f"{col_off}-{col_off + width - 1} (1/{factor})",
                ) from exc

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """The whole raster as ``(rgb, valid)`` (only for rasters that fit in memory)."""
        return self.read_window(0, 0, self.height, self.width)

    def read_overview(self, max_side: int) -> tuple[np.ndarray, np.ndarray, int]:
        """``(rgb, valid, factor)``: the whole raster decimated by ``factor`` (nearest samples).

        ``factor`` is the smallest integer for which neither side exceeds ``max_side``; the result
        is ``ceil(height / factor) x ceil(width / factor)`` and covers the whole raster (shown
        stretched over ``width x height`` it lines up with the full-resolution pixels). GDAL
        reads it from the file's overviews when it has them.
        """
        if max_side < 1:
            raise ValueError(f"max_side must be at least 1, got {max_side}")
        factor = max(1, math.ceil(max(self.width, self.height) / max_side))
        shape = (math.ceil(self.height / factor), math.ceil(self.width / factor))
        with self._lock:
            self._check_open()
            try:
                rgb, valid = self._to_rgb(*self._read_raw(None, shape if factor > 1 else None))
            except RooftopError:
                raise
            except GDAL_ERRORS as exc:
                raise self._read_failed(exc, f"an overview (1/{factor})") from exc
        return rgb, valid, factor


def open_raster(
    path: str | Path,
    bands: Sequence[int] | None = None,
    *,
    stats_max_side: int | None = STATS_MAX_SIDE,
) -> RasterSource:
    """Open a raster for windowed RGB reading (see :class:`RasterSource`; close it when done)."""
    return RasterSource(path, bands, stats_max_side=stats_max_side)


def decode_probability(values: np.ndarray) -> np.ndarray:
    """Float32 probabilities of a probability raster's uint8 values (NaN where no data)."""
    values = np.asarray(values)
    out = values.astype(np.float32) / PROBABILITY_SCALE
    out[values == PROBABILITY_NODATA] = np.nan
    return out


def is_cloud_optimized(path: str | Path) -> bool:
    """True when GDAL reports the file as laid out as a COG (``LAYOUT=COG``)."""
    path = Path(path)
    _check_readable(path)
    try:
        with QuietGdal(), rasterio.open(path) as ds:
            return ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT", "").upper() == "COG"
    except GDAL_ERRORS as exc:
        raise ImageReadError(f"cannot open as a raster ({gdal_message(exc, path)})", path) from exc


__all__ = [
    "BLOCK_SIZE",
    "KINDS",
    "MASK_BACKGROUND",
    "MASK_ROOF",
    "PROBABILITY_NODATA",
    "PROBABILITY_SCALE",
    "RasterSource",
    "decode_probability",
    "is_cloud_optimized",
    "open_raster",
    "overview_factors_for",
]
