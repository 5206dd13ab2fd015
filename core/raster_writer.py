"""Masks and probability maps written on a raster's grid (:class:`RasterWriter`,
:func:`write_mask_raster`, :func:`write_probability_raster`): single-band uint8 GeoTIFFs on the input's grid (CRS, geotransform, width, height), tiled in
512-pixel blocks, DEFLATE-compressed, BigTIFF when needed, written strip by strip as prediction
finishes rows, with overviews (factors 2, 4, 8... until the smallest is at most 256 pixels a side;
nearest for masks, average for probabilities), optionally as a Cloud-Optimised GeoTIFF. Encodings:

* mask (``kind="mask"``): 0 = background, 255 = roof, as the project's PNG masks; pixels where the
  input has no data are marked by an internal per-dataset mask band (GDAL's ``.msk`` inside the
  TIFF, read with ``read_masks``/``dataset_mask``) and hold 0. No nodata value: with only two
  meaningful values, every byte value would be either ambiguous or a third odd code.
* probability (``kind="probability"``): ``round(p * 254)`` in 0..254, and 255 = no data (the band's
  nodata value, so GDAL's average overviews skip it); the band's scale metadata is 1/254, so GIS
  tools that apply scale/offset show p itself.

Writes are atomic (:func:`core.io.atomic_output`): the raster is built in a temporary file in the
target's folder and renamed onto the target when it is complete; on any error (a full disk
included) or an abort the temporary file is removed and the target is left as it was. The
result gets the file mode ``atomic_output`` gives. A COG is first written as a tiled GeoTIFF in a
second temporary file beside it (so it needs twice the space for a moment), then copied with
GDAL's COG driver (overviews and mask carried over, IFDs first: ``LAYOUT=COG``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio import Affine
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window

from core.errors import ImageWriteError, RooftopError
from core.io import atomic_output, temp_name
from core.raster import (
    BLOCK_SIZE,
    GDAL_ERRORS,
    KINDS,
    MASK_BACKGROUND,
    MASK_ROOF,
    PROBABILITY_NODATA,
    PROBABILITY_SCALE,
    QuietGdal,
    gdal_message,
    overview_factors_for,
)

#: Free space under which a failed write is reported as a full disk.
_FULL_DISK_BYTES = 1 << 20


class _Aborted(Exception):
    """Thrown into atomic_output to make it remove its temporary file."""


def _grid_of(like: Any) -> tuple[int, int, Any, Affine]:
    """``(width, height, crs, transform)`` of a RasterSource, rasterio dataset or profile."""
    if isinstance(like, Mapping):
        get = like.get
    else:

        def get(name, default=None):
            return getattr(like, name, default)

    width, height = get("width"), get("height")
    if (
        not isinstance(width, (int, np.integer))
        or not isinstance(height, (int, np.integer))
        or width < 1
        or height < 1
    ):
        raise ValueError(
            f"like must give a positive integer width and height, got {width!r} x {height!r}"
        )
    transform = get("transform") or Affine.identity()
    if not isinstance(transform, Affine):
        transform = Affine(*transform[:6])
    return int(width), int(height), get("crs") or None, transform


class RasterWriter:
    """A single-band uint8 raster on the grid of ``like``, written strip by strip, atomically.

    ``kind`` is ``"mask"`` or ``"probability"`` (encodings in the module docstring). Rows are
    written with :meth:`write_rows` in any order (strips of a multiple of 512 rows are cheapest);
    :meth:`close` builds the overviews, makes the COG when ``cog`` and renames the file onto
    ``path``. Used as a context manager, an exception in the block aborts the write. Every
    failure removes the temporary files and raises :class:`ImageWriteError` naming ``path``.
    """

    def __init__(
        self,
        path: str | Path,
        like: Any,
        *,
        kind: str = "mask",
        cog: bool = False,
        overviews: bool = True,
        block_size: int = BLOCK_SIZE,
    ):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if block_size < 16 or block_size % 16:
            raise ValueError(f"block_size must be a multiple of 16, got {block_size}")
        self.path = Path(path)
        self.kind, self.cog, self.block_size = kind, bool(cog), int(block_size)
        self.width, self.height, self.crs, self.transform = _grid_of(like)
        self._overviews = overviews
        self._rows = np.zeros(self.height, bool)
        self._ds = None
        self._work: Path | None = None  # the intermediate GTiff of a COG
        self._done = True  # until the temporary file exists
        self._output = atomic_output(self.path)
        self._tmp: Path = self._output.__enter__()
        self._done = False
        try:
            if self.cog:
                prefix, suffix = temp_name(self.path)
                fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=self.path.parent)
                os.close(fd)
                self._work = Path(name)
            self._ds = self._open_dataset(self._work or self._tmp)
        except BaseException as exc:
            self._fail(exc)

    def _env(self):
        return rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True)

    def _open_dataset(self, target: Path):
        profile = {
            "driver": "GTiff",
            "width": self.width,
            "height": self.height,
            "count": 1,
            "dtype": "uint8",
            "crs": self.crs,
            "transform": self.transform,
            "tiled": True,
            "blockxsize": self.block_size,
            "blockysize": self.block_size,
            "compress": "deflate",
            "BIGTIFF": "IF_SAFER",
        }
        if self.kind == "probability":
            profile["nodata"] = PROBABILITY_NODATA
        with self._env(), QuietGdal():
            ds = rasterio.open(target, "w", **profile)
            try:
                if self.kind == "probability":
                    ds.scales = (1.0 / PROBABILITY_SCALE,)
                    ds.offsets = (0.0,)
                    ds.set_band_description(
                        1,
                        f"roof probability x {PROBABILITY_SCALE} ({PROBABILITY_NODATA} = no data)",
                    )
                else:
                    ds.set_band_description(
                        1, "roof mask (255 = roof, 0 = background; the internal mask marks no data)"
                    )
            except BaseException:
                ds.close()
                raise
        return ds

    # ---------------------------------------------------------------- failure handling
    def _release(self) -> None:
        """Close the dataset and remove the intermediate file, quietly."""
        ds, self._ds = self._ds, None
        if ds is not None:
            try:
                with QuietGdal():
                    ds.close()
            except Exception:  # noqa: BLE001 - the write failed already; the original error wins
                pass
        if self._work is not None:
            self._work.unlink(missing_ok=True)
            self._work = None

    def _disk_full(self) -> bool:
        """GDAL reports a full disk only as a failed write; this looks (before the cleanup)."""
        try:
            return shutil.disk_usage(self.path.parent).free < _FULL_DISK_BYTES
        except OSError:
            return False

    def _fail(self, exc: BaseException):
        """Remove every temporary file and raise the error, as ImageWriteError naming the path."""
        self._done = True
        disk_full = isinstance(exc, GDAL_ERRORS) and self._disk_full()
        work = self._work
        self._release()
        if (
            isinstance(exc, RooftopError)
            or not isinstance(exc, GDAL_ERRORS)
            or (isinstance(exc, ValueError) and not isinstance(exc, RasterioError))
        ):
            error = exc  # a programming error (or ours already): passed on as it is
        elif isinstance(exc, MemoryError):
            error = ImageWriteError("cannot write: not enough memory", self.path)
        else:
            text = gdal_message(exc, self.path, self._tmp, work)
            if disk_full and "no space" not in text.lower():
                text = f"No space left on device; {text}"
            error = ImageWriteError(f"cannot write ({text})", self.path)
        try:
            self._output.__exit__(type(error), error, error.__traceback__)
        except BaseException as raised:
            if raised is not error:
                raise
        if error is exc:
            raise exc
        raise error from exc

    def abort(self) -> None:
        """Give up the write: the temporary files are removed and ``path`` is left as it was."""
        if self._done:
            return
        self._done = True
        self._release()
        try:
            self._output.__exit__(_Aborted, _Aborted(), None)
        except _Aborted:
            pass

    def __enter__(self) -> RasterWriter:
        return self

    def __del__(self):  # an abandoned writer leaves no temporary file behind
        try:
            if not getattr(self, "_done", True):
                self.abort()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # ---------------------------------------------------------------- writing
    @property
    def rows_missing(self) -> int:
        """Number of rows not written yet."""
        return int(self.height - self._rows.sum())

    def _encode(
        self, array: np.ndarray, valid: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if self.kind == "mask":
            data = np.where(array != 0, np.uint8(MASK_ROOF), np.uint8(MASK_BACKGROUND))
            if valid is None:
                return data, np.full(data.shape, 255, np.uint8)
            data[~valid] = MASK_BACKGROUND
            return data, np.where(valid, np.uint8(255), np.uint8(0))
        if array.dtype.kind != "f":
            raise ValueError(
                f"a probability map must be floating point in [0, 1], got {array.dtype}"
            )
        finite = np.isfinite(array)
        data = np.rint(np.clip(np.where(finite, array, 0.0), 0.0, 1.0) * PROBABILITY_SCALE)
        data = data.astype(np.uint8)
        data[~finite] = PROBABILITY_NODATA
        if valid is not None:
            data[~valid] = PROBABILITY_NODATA
        return data, None

    def write_rows(self, row_off: int, array: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Write rows ``row_off .. row_off + len(array) - 1`` (full width).

        ``array`` is ``(rows, width)``: for a mask, non-zero (or True) = roof; for a probability
        map, floats in [0, 1] (NaN = no data). ``valid`` (same shape, bool) is False where the
        input had no data (``read_window``'s valid); None means all valid.
        """
        if self._done or self._ds is None:
            raise ValueError(f"{self.path}: the raster writer is closed")
        array = np.asarray(array)
        row_off = int(row_off)
        if array.ndim != 2 or array.shape[1] != self.width:
            raise ValueError(f"rows must have shape (n, {self.width}), got {array.shape}")
        if row_off < 0 or row_off + array.shape[0] > self.height:
            raise ValueError(
                f"rows {row_off}..{row_off + array.shape[0] - 1} are outside the "
                f"{self.height} rows of the raster"
            )
        if valid is not None:
            valid = np.asarray(valid, bool)
            if valid.shape != array.shape:
                raise ValueError(
                    f"valid must have the shape of the rows {array.shape}, got {valid.shape}"
                )
        if array.shape[0] == 0:
            return
        data, mask = self._encode(array, valid)
        window = Window(0, row_off, self.width, array.shape[0])
        try:
            with self._env():
                self._ds.write(data, 1, window=window)
                if mask is not None:
                    self._ds.write_mask(mask, window=window)
        except BaseException as exc:
            self._fail(exc)
        self._rows[row_off : row_off + array.shape[0]] = True

    def close(self) -> Path:
        """Finish the raster (overviews, COG) and rename it onto ``path``; returns ``path``.

        Every row must have been written (else ValueError, and nothing is left behind).
        """
        if self._done:
            return self.path
        try:
            if self.rows_missing:
                raise ValueError(
                    f"{self.path}: {self.rows_missing} of {self.height} rows were "
                    "never written; abort() a write that is given up"
                )
            factors = overview_factors_for(self.width, self.height) if self._overviews else []
            resampling = Resampling.nearest if self.kind == "mask" else Resampling.average
            with self._env(), QuietGdal():
                if factors:
                    self._ds.build_overviews(factors, resampling)
                    self._ds.update_tags(ns="rio_overview", resampling=resampling.name)
                ds, self._ds = self._ds, None
                ds.close()
                if self.cog:
                    rasterio.shutil.copy(
                        self._work,
                        self._tmp,
                        driver="COG",
                        compress="DEFLATE",
                        blocksize=self.block_size,
                        bigtiff="IF_SAFER",
                        overviews="AUTO" if factors else "NONE",
                        resampling=resampling.name.upper(),
                    )
                    self._work.unlink()
                    self._work = None
        except BaseException as exc:
            self._fail(exc)
        self._done = True
        self._output.__exit__(None, None, None)  # fsync and rename (ImageWriteError on failure)
        return self.path


def _write_whole(
    path: str | Path, like: Any, array: np.ndarray, valid: np.ndarray | None, kind: str, cog: bool
) -> Path:
    array = np.asarray(array)
    with RasterWriter(path, like, kind=kind, cog=cog) as writer:
        if array.shape != (writer.height, writer.width):
            raise ValueError(
                f"the array is {array.shape}, the grid is ({writer.height}, {writer.width})"
            )
        for row in range(0, writer.height, BLOCK_SIZE):
            rows = slice(row, row + BLOCK_SIZE)
            writer.write_rows(row, array[rows], None if valid is None else np.asarray(valid)[rows])
    return Path(path)


def write_mask_raster(
    path: str | Path,
    like: Any,
    mask: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    cog: bool = False,
) -> Path:
    """Write a whole ``(H, W)`` mask (non-zero = roof) on ``like``'s grid (see RasterWriter)."""
    return _write_whole(path, like, mask, valid, "mask", cog)


def write_probability_raster(
    path: str | Path,
    like: Any,
    probability: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    cog: bool = False,
) -> Path:
    """Write a whole ``(H, W)`` probability map in [0, 1] on ``like``'s grid (see RasterWriter)."""
    return _write_whole(path, like, probability, valid, "probability", cog)
