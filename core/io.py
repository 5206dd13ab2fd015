"""Reading and writing images and masks: one place for every format and every bad-input error.

Conventions used everywhere in the project:

* an *image* is a ``numpy.ndarray`` of shape ``(H, W, 3)`` and dtype ``uint8`` (RGB);
* a *mask* (label or prediction) is a ``numpy.ndarray`` of shape ``(H, W)`` and dtype ``bool``;
  on disk it is a single-channel PNG holding 0 (background) and 255 (roof).

Conversions applied by :func:`read_image` (documented behaviour, not errors):

* grey, grey+alpha, palette, CMYK and RGBA images become RGB (alpha is dropped);
* 16-bit and 32-bit integer images are scaled linearly to 8 bits from the smallest bit depth that
  holds their maximum (11-bit satellite data in a 16-bit file stays bright);
* floating-point images are scaled from their 0..1 range when they fit in it, else from min..max.

:func:`read_mask` treats any non-zero value (in any channel) as roof.

Writes go to a temporary file in the destination folder which is then renamed into place, so an
interrupted write never leaves a half-written file where a good one was. The temporary file is
hidden and named ``.<target name>.<8 random characters>.tmp``; a process killed mid-write leaves
it behind, and :func:`remove_stale_temp_files` deletes such leftovers once they are old enough
not to be another writer's file in progress (``open_dataset`` does this for a dataset's folders).
A written file keeps the mode (and, where allowed, the group) of the file it replaces; a new file
gets the mode a plain ``open(path, "w")`` would give it (``0o666 & ~umask``, default ACLs
applied), never the ``0600`` of a private temporary file, so a shared dataset stays readable.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from core.errors import ImageReadError, ImageWriteError

#: Largest image (in pixels) we decode. Pillow's default (about 89 megapixels, an error at twice
#: that) is a guard against decompression bombs; aerial orthophotos are legitimately larger, so we
#: raise the limit deliberately to one billion pixels (3 GB as RGB) and check it ourselves before
#: decoding, with a message that says how to raise it (``ROOFTOP_MAX_PIXELS``).
MAX_PIXELS = int(os.environ.get("ROOFTOP_MAX_PIXELS", 1_000_000_000))
# Pillow's own check would fire inside Image.open with a generic message; ours (in _read_array,
# on the header's size, before any pixel is decoded) names the file and the way out.
Image.MAX_IMAGE_PIXELS = None
# Truncated files must fail loudly, never load as partly grey images.
ImageFile.LOAD_TRUNCATED_IMAGES = False

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")

_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    UnidentifiedImageError,
    Image.DecompressionBombError,
    TypeError,
    KeyError,
    IndexError,
)


def is_image_file(path: str | Path) -> bool:
    """True when ``path`` has one of the image suffixes we read (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageReadError("folder not found", folder)
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and is_image_file(p) and not p.name.startswith(".")
    )


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise ImageReadError("file not found", path)
    if path.is_dir():
        raise ImageReadError("is a folder, not an image file", path)
    if path.stat().st_size == 0:
        raise ImageReadError("file is empty (0 bytes)", path)


def _check_pixel_count(path: Path, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageReadError(f"image has no pixels ({width} x {height})", path)
    if width * height > MAX_PIXELS:
        raise ImageReadError(
            f"image is {width} x {height} = {width * height:,} pixels, more than the "
            f"{MAX_PIXELS:,} we decode (a decompression-bomb guard; set ROOFTOP_MAX_PIXELS "
            "to raise it, or cut the image into pieces)",
            path,
        )


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image file, read from its header without decoding the pixels."""
    path = Path(path)
    _check_readable(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.size
    except _DECODE_ERRORS as exc:
        raise ImageReadError(f"not a readable image ({_describe(exc)})", path) from exc


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if "truncated" in text.lower() or isinstance(exc, EOFError):
        return "the file is truncated or corrupt: " + text
    return text


def _scale_to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale an integer or float array of any depth to uint8 (see the module docstring)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        finite = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(finite.min(initial=0.0)), float(finite.max(initial=0.0))
        if lo >= 0.0 and hi <= 1.0:
            scaled = finite * 255.0
        elif hi > lo:
            scaled = (finite - lo) * (255.0 / (hi - lo))
        else:
            scaled = np.zeros_like(finite)
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    data = array.astype(np.int64)
    data = np.clip(data, 0, None)
    top = int(data.max(initial=0))
    if top <= 255:
        return data.astype(np.uint8)
    bits = max(8, int(top).bit_length())
    full = (1 << bits) - 1
    return ((data * 255 + full // 2) // full).astype(np.uint8)


#: Public name of the one 8-bit scaling of the project (``core.raster`` applies it per window).
scale_to_uint8 = _scale_to_uint8


def _pil_to_array(im: Image.Image) -> np.ndarray:
    """Decode a Pillow image into an ``(H, W)`` or ``(H, W, C)`` array of its native depth."""
    mode = im.mode
    if mode in ("RGB", "L"):
        return np.asarray(im)
    if mode == "1":
        return np.asarray(im.convert("L"))
    if mode in ("P", "PA"):
        return np.asarray(
            im.convert("RGBA" if "transparency" in im.info or mode == "PA" else "RGB")
        )
    if mode in ("RGBA", "RGBX", "RGBa"):
        return np.asarray(im)[..., :3]
    if mode in ("LA", "La"):
        return np.asarray(im)[..., 0]
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return np.asarray(im.convert("RGB"))
    if mode.startswith("I;16") or mode in ("I", "F"):
        return np.asarray(im)
    return np.asarray(im.convert("RGB"))


def _read_with_tifffile(path: Path) -> np.ndarray | None:
    """Multi-band or 16-bit-per-channel TIFFs that Pillow cannot decode (GeoTIFF orthophotos)."""
    try:
        import tifffile
    except ImportError:  # optional dependency
        return None
    try:
        data = tifffile.imread(str(path))
    except Exception as exc:  # tifffile raises many kinds; all mean "cannot read"
        raise ImageReadError(f"not a readable TIFF ({_describe(exc)})", path) from exc
    if data.ndim == 3 and data.shape[0] in (1, 3, 4) and data.shape[-1] not in (1, 3, 4):
        data = np.moveaxis(data, 0, -1)  # planar (bands first) to interleaved
    return data


def _deep_colour_tiff(im: Image.Image) -> bool:
    """A TIFF with more than 8 bits per colour sample (Pillow decodes it lossily as RGB)."""
    if im.format != "TIFF" or im.mode not in ("RGB", "RGBA", "RGBX", "CMYK"):
        return False
    bits = getattr(im, "tag_v2", {}).get(258, (8,))
    bits = bits if isinstance(bits, tuple) else (bits,)
    return max(bits) > 8


def _read_array(path: Path) -> np.ndarray:
    _check_readable(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                _check_pixel_count(path, *im.size)
                if _deep_colour_tiff(im):  # Pillow keeps only the high byte of 16-bit RGB
                    data = _read_with_tifffile(path)
                    if data is not None:
                        return data
                im.load()
                return _pil_to_array(im)
    except ImageReadError:
        raise
    except _DECODE_ERRORS as exc:
        if path.suffix.lower() in (".tif", ".tiff") and "truncated" not in str(exc).lower():
            data = _read_with_tifffile(path)
            if data is not None:
                if data.ndim < 2:
                    raise ImageReadError("TIFF holds no 2-D image", path) from exc
                _check_pixel_count(path, data.shape[1], data.shape[0])
                return data
        raise ImageReadError(f"not a readable image ({_describe(exc)})", path) from exc
    except MemoryError as exc:
        raise ImageReadError("not enough memory to decode this image", path) from exc


def read_image(path: str | Path) -> np.ndarray:
    """Read any supported image as an ``(H, W, 3)`` uint8 RGB array (see module docstring)."""
    path = Path(path)
    data = _read_array(path)
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3:
        raise ImageReadError(f"unsupported image layout (array shape {data.shape})", path)
    channels = data.shape[2]
    if channels == 1:
        data = np.repeat(data, 3, axis=2)
    elif channels == 2:  # grey + alpha
        data = np.repeat(data[..., :1], 3, axis=2)
    elif channels >= 3:
        data = data[..., :3]
    return np.ascontiguousarray(_scale_to_uint8(data))


def read_mask(path: str | Path) -> np.ndarray:
    """Read a mask as an ``(H, W)`` bool array: any non-zero value in any channel is roof."""
    path = Path(path)
    data = _read_array(path)
    if data.ndim == 3:
        data = data.any(axis=2)
    if data.ndim != 2:
        raise ImageReadError(f"unsupported mask layout (array shape {data.shape})", path)
    return np.ascontiguousarray(data != 0)


def read_mask_codes(path: str | Path) -> np.ndarray:
    """Read a one-channel image's values as ``(H, W)`` uint8 (e.g. stroke codes 0, 1, 2)."""
    path = Path(path)
    data = _read_array(path)
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[..., 0]
    if data.ndim != 2:
        raise ImageReadError(
            f"has {data.shape[2] if data.ndim == 3 else '?'} channels; a file "
            "of label codes has one",
            path,
        )
    if data.dtype != np.uint8:
        if data.min(initial=0) < 0 or data.max(initial=0) > 255:
            raise ImageReadError(f"label codes must be 0 to 255, got {data.dtype} values", path)
        data = data.astype(np.uint8)
    return np.ascontiguousarray(data)


def read_image_and_mask(
    image_path: str | Path, mask_path: str | Path
) -> tuple[np.ndarray, np.ndarray]:
    """Read an image and its mask, checking that they have the same size."""
    image = read_image(image_path)
    mask = read_mask(mask_path)
    if image.shape[:2] != mask.shape:
        raise ImageReadError(
            f"mask is {mask.shape[1]} x {mask.shape[0]} but its image {Path(image_path).name} is "
            f"{image.shape[1]} x {image.shape[0]}; they must be the same size",
            mask_path,
        )
    return image, mask


def ensure_folder(path: str | Path) -> Path:
    """Create ``path`` (and parents) as a folder, with a clear error if that is impossible."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ImageWriteError("exists and is not a folder", path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageWriteError(f"cannot create folder ({exc.strerror or exc})", path) from exc
    return path


#: Prefix and suffix of the temporary files :func:`atomic_output` makes.
TEMP_PREFIX, TEMP_SUFFIX = ".", ".tmp"
#: ``.<target name>.<the 8 random characters tempfile.mkstemp adds>.tmp``.
_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp")
#: A temporary file untouched for this long is a leftover of a killed writer: a live write
#: touches its file far more often (the longest, a checkpoint or a huge export, takes minutes).
STALE_TEMP_SECONDS = 3600.0


def temp_name(path: str | Path) -> tuple[str, str]:
    """``(prefix, suffix)`` of the temporary files :func:`atomic_output` makes for ``path``."""
    return f"{TEMP_PREFIX}{Path(path).name}.", TEMP_SUFFIX


def is_temp_file_name(name: str) -> bool:
    """True when ``name`` has the form of :func:`atomic_output`'s temporary files."""
    return _TEMP_NAME.fullmatch(name) is not None


def temp_file_target(name: str) -> str | None:
    """The name of the file a temporary file of :func:`atomic_output` was for, else None."""
    match = _TEMP_NAME.fullmatch(name)
    return match["target"] if match else None


def remove_stale_temp_files(
    folder: str | Path,
    older_than_seconds: float = STALE_TEMP_SECONDS,
    names: Iterable[str] | None = None,
    targets: Iterable[str] | None = None,
) -> list[Path]:
    """Delete the leftover temporary files of :func:`atomic_output` directly in ``folder``.

    Only regular files (not links, not folders) whose name has our temporary-file form and whose
    modification time is more than ``older_than_seconds`` ago are deleted, so the temporary file
    of a write in progress (in this process or another) is left alone. ``names`` (file names in
    ``folder``, when the caller has just listed it) saves listing the folder again; ``targets``
    (file names) limits the cleaning to the temporary files of those files, for a folder that
    is not only ours (an export folder the user chose).

    Best effort and quiet: a missing or unreadable folder, or a file that cannot be deleted (read
    only, or gone meanwhile), is skipped. Returns the files deleted.
    """
    folder = Path(folder)
    try:
        if names is None:
            with os.scandir(folder) as entries:
                names = [e.name for e in entries if is_temp_file_name(e.name)]
        else:
            names = [n for n in names if is_temp_file_name(n)]
    except OSError:
        return []
    if targets is not None:
        wanted = set(targets)
        names = [n for n in names if temp_file_target(n) in wanted]
    removed = []
    cutoff = time.time() - older_than_seconds
    for name in names:
        path = folder / name
        try:
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode) or info.st_mtime > cutoff:
                continue
            path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


_TEMP_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"  # those of tempfile.mkstemp


def _create_temp_file(path: Path) -> tuple[Path, int]:
    """Create an empty ``.<name>.<8 random characters>.tmp`` beside ``path`` (as mkstemp names
    it) and return it with its permission bits.

    Unlike ``tempfile.mkstemp`` (always ``0600``) it is created with mode ``0o666``, which the
    kernel reduces by the umask (and the folder's default ACL) exactly as for any new file: the
    mode a new target should get. Reading the umask instead (``os.umask`` sets it to read it)
    would race with other threads creating files.
    """
    prefix, suffix = temp_name(path)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _attempt in range(100):
        name = "".join(secrets.choice(_TEMP_CHARACTERS) for _ in range(8))
        tmp = path.parent / f"{prefix}{name}{suffix}"
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        try:
            return tmp, stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path.parent))


def _give_mode(tmp: Path, target: Path, new_file_mode: int) -> None:
    """Give ``tmp`` the mode (and group, where we may) of ``target`` when it exists, else
    ``new_file_mode``: a writer may have replaced the file we created (GDAL does)."""
    try:
        old = os.stat(target)
    except OSError:
        old = None
    mode = new_file_mode if old is None else stat.S_IMODE(old.st_mode)
    if old is not None and hasattr(os, "chown") and old.st_gid != os.stat(tmp).st_gid:
        with contextlib.suppress(OSError):  # only to a group we belong to; else keep ours
            os.chown(tmp, -1, old.st_gid)
    if stat.S_IMODE(os.stat(tmp).st_mode) != mode:
        os.chmod(tmp, mode)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was. The file
    written keeps the mode of the ``path`` it replaces, or gets the umask's default for a new
    file (see the module docstring).
    """
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        raise ImageWriteError("is a folder; cannot write a file there", path)
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise ImageWriteError(f"cannot write: the folder {parent} {what}", path)
    try:
        tmp, new_file_mode = _create_temp_file(path)
    except OSError as exc:
        raise ImageWriteError(f"cannot write ({exc.strerror or exc})", path) from exc
    try:
        yield tmp
        _give_mode(tmp, path, new_file_mode)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ImageWriteError(f"cannot write ({exc.strerror or exc})", path) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows
        dir_fd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_image(path: str | Path, array: np.ndarray, *, compress_level: int = 1) -> Path:
    """Write an RGB uint8 image (PNG by suffix, else Pillow's format for it) atomically."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        array = _scale_to_uint8(array)
    with atomic_output(path) as tmp:
        img = Image.fromarray(array)
        fmt = Image.registered_extensions().get(Path(path).suffix.lower(), "PNG")
        if fmt == "PNG":
            img.save(tmp, format="PNG", compress_level=compress_level)
        else:
            img.save(tmp, format=fmt)
    return Path(path)


def write_mask(path: str | Path, mask: np.ndarray) -> Path:
    """Write a mask as a single-channel 0/255 PNG, atomically."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {mask.shape}")
    data = np.where(mask != 0, np.uint8(255), np.uint8(0))
    with atomic_output(path) as tmp:
        Image.fromarray(data).save(tmp, format="PNG", compress_level=1)
    return Path(path)
