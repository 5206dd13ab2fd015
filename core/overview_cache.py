"""A cache of the overviews the window reads of rasters without overviews of their own.

A GeoTIFF without overviews has to be decoded whole for a picture of the whole of it (about 30 s
for a 30,000 px orthophoto on a laptop). The window reads that picture band by band the first
time (:mod:`rooftop_gui.raster_view`) and keeps the result here, so the file opens as fast as one
with overviews the next time. Unlike GDAL's external ``NAME.tif.ovr`` (QGIS's "build pyramids")
nothing is written beside the user's data: the folder may be read-only or shared, and a new file
beside an orthophoto is a surprise.

Entries are ``<folder>/<key>.npz`` (``rgb`` uint8 ``(h, w, 3)``, ``valid`` bool ``(h, w)``,
``factor``), keyed by the raster's identity (resolved path, size, modification time), the bands
read and the overview's largest side, so an edited or replaced file is read afresh. Written
atomically; a damaged entry is removed and read as missing. The folder is kept under
:data:`MAX_BYTES`, least recently used entries removed first.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.io import atomic_output, is_temp_file_name
from core.result_cache import FileIdentity

#: The folder's size limit; an overview of 2,048 px a side is 3 to 12 MB.
MAX_BYTES = 256 * 2**20


@dataclass(frozen=True)
class CachedOverview:
    rgb: np.ndarray
    valid: np.ndarray
    factor: int


def entry_path(folder: str | Path, raster: str | Path, bands: str, max_side: int) -> Path | None:
    """The cache file of ``raster``'s overview (``bands`` names the bands read, e.g. ``rgb``);
    None when ``raster`` cannot be read."""
    identity = FileIdentity.of(raster)
    if identity is None:
        return None
    text = f"{identity.path}|{identity.size}|{identity.mtime_ns}|{bands}|{max_side}"
    return Path(folder) / f"{hashlib.sha1(text.encode()).hexdigest()}.npz"


def load(
    folder: str | Path, raster: str | Path, bands: str, max_side: int
) -> CachedOverview | None:
    """The cached overview of ``raster``, or None (not cached, or the entry is damaged)."""
    path = entry_path(folder, raster, bands, max_side)
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            rgb, valid, factor = data["rgb"], data["valid"], int(data["factor"])
        if (
            rgb.dtype != np.uint8
            or rgb.ndim != 3
            or rgb.shape[2] != 3
            or valid.dtype != np.bool_
            or valid.shape != rgb.shape[:2]
            or factor < 1
        ):
            raise ValueError("unexpected arrays")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # most recently used
    return CachedOverview(rgb, valid, factor)


def save(
    folder: str | Path,
    raster: str | Path,
    bands: str,
    max_side: int,
    rgb: np.ndarray,
    valid: np.ndarray,
    factor: int,
    *,
    max_bytes: int = MAX_BYTES,
) -> Path:
    """Keep ``raster``'s overview; then trim the folder to ``max_bytes``. Raises OSError (or
    :class:`core.errors.ImageWriteError`) when it cannot be written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = entry_path(folder, raster, bands, max_side)
    if path is None:
        raise OSError(f"{raster}: cannot be read")
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, rgb=rgb, valid=valid, factor=np.int64(factor))
    trim(folder, max_bytes, keep=path)
    return path


def trim(folder: str | Path, max_bytes: int, keep: Path | None = None) -> None:
    """Remove the least recently used entries until the folder holds at most ``max_bytes``."""
    entries = []
    for entry in Path(folder).glob("*.npz"):
        if is_temp_file_name(entry.name):
            continue
        with contextlib.suppress(OSError):
            info = entry.stat()
            entries.append((info.st_mtime_ns, info.st_size, entry))
    total = sum(size for _, size, _ in entries)
    for _, size, entry in sorted(entries):
        if total <= max_bytes:
            break
        if keep is not None and entry == keep:
            continue
        with contextlib.suppress(OSError):
            entry.unlink()
            total -= size
