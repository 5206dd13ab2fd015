"""Patch generation: a large image and its mask cut into a train/test dataset (torch-free).

The dataset's layout is ``core.dataset``'s (``DATASET/{train,test}/{data,label}/NNNNN.png``);
generation also writes ``DATASET/manifest.csv``, one row per patch: ``name, split, source_image,
x, y, size, rotation, resize, source_gsd_m`` (``source_gsd_m``: the ground sample distance of the
source image in m per pixel when it is georeferenced in a projected CRS, else empty; training
aligns sources of different resolutions by it, :mod:`core.ground_resolution`, and leaves the
patches that are enlarged or shrunk from their source as they are: that is the multi-scale
augmentation of ``--patches``). Names run across both splits (``00000.png``, ``00001.png``...;
more than five digits only when there are more than 100,000 patches). Labels are single-channel
0/255 PNGs.

Patches (:func:`generate_dataset`)
----------------------------------
For each rotation (a multiple of 90 degrees) and each :class:`PatchSpec` (window size, stride as a
fraction of it), square windows slide over the *rotated* image as in the original (so the grid is
aligned to a different corner per rotation), keeping only full windows, plus a last window flush
with the right and bottom edges when the stride does not land there, so the edges are covered
(:func:`core.windows.axis_starts`). No rotated copy of the image is ever made: each window is
sliced from the source and the patch is rotated with ``np.rot90`` (exact, no black corners,
unlike the original's PIL ``rotate``). The manifest records each window's top-left corner ``x, y``
in *source* coordinates, its size in source pixels and the rotation applied, so
``np.rot90(source[y:y+size, x:x+size], rotation // 90)`` is the patch before resizing.

Resizing to ``resize`` x ``resize`` (None keeps the window size): the image is area-averaged when
shrinking (``Image.reduce`` for whole factors, else the BOX filter) and bicubic when enlarging; the
mask is area-averaged as 0/1 values and thresholded at 0.5 (a pixel is roof when at least half of
its area is roof), so labels stay binary - the original resized the mask with the image's
smoothing filter and its labels stopped being binary.

The windows are split between train and test by ground (``core.spatial_split``): no source pixel
is in both splits.
"""

from __future__ import annotations

import contextlib
import csv
import io as _io
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.dataset import SPLITS
from core.errors import ConfigError, DatasetError, ImageReadError, ImageWriteError
from core.ground_resolution import file_resolution
from core.io import ensure_folder, image_size, read_image, read_image_and_mask, write_bytes_atomic
from core.progress import Progress, ProgressCallback, StopCheck, Stopped, check_stop, report
from core.spatial_split import split_windows
from core.windows import axis_starts

#: The manifest: one row per patch (module docstring).
MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = (
    "name",
    "split",
    "source_image",
    "x",
    "y",
    "size",
    "rotation",
    "resize",
    "source_gsd_m",
)
#: Smallest window or resize we accept (smaller patches carry no context for a roof).
MIN_PATCH = 8
#: Most windows a plan may make (a million patches is about a terabyte of PNGs).
MAX_WINDOWS = 1_000_000
#: Threads resizing and PNG-encoding patches (Pillow releases the GIL while it works).
WORKERS = 2


def _check_stop(should_stop: StopCheck | None) -> None:
    """``Stopped("dataset generation stopped; nothing was written")`` when asked to stop."""
    try:
        check_stop(should_stop, "dataset generation")
    except Stopped as exc:
        raise Stopped(f"{exc}; nothing was written") from None


@dataclass(frozen=True)
class PatchSpec:
    """A square window size in source pixels and its stride as a fraction of the size."""

    size: int
    stride_fraction: float

    @property
    def stride(self) -> int:
        return max(1, int(round(self.size * self.stride_fraction)))

    @classmethod
    def parse(cls, text: str) -> PatchSpec:
        """``"512:0.25"`` -> ``PatchSpec(512, 0.25)``; ConfigError saying the expected form."""
        raw = str(text).strip()
        size_text, sep, frac_text = raw.partition(":")
        try:
            if not sep:
                raise ValueError
            size, frac = int(size_text), float(frac_text)
        except ValueError:
            raise ConfigError(
                f"--patch takes SIZE:STRIDE_FRACTION, like 512:0.25 (a 512 px window "
                f"moved by a quarter of its size); got {raw!r}"
            ) from None
        spec = cls(size, frac)
        spec.validate(f"--patch {raw!r}")
        return spec

    def validate(self, what: str | None = None) -> None:
        """ConfigError when the size or the stride fraction is out of range."""
        what = what or f"patch {self}"
        if not isinstance(self.size, (int, np.integer)) or self.size < MIN_PATCH:
            raise ConfigError(
                f"{what}: the window size must be a whole number of pixels, at "
                f"least {MIN_PATCH} (like 512:0.25)"
            )
        if not 0 < self.stride_fraction <= 1:  # also false for NaN
            raise ConfigError(
                f"{what}: the stride fraction must be above 0 and at most 1 "
                "(0.25 moves the window by a quarter of its size)"
            )

    def __str__(self) -> str:
        return f"{self.size}:{self.stride_fraction:g}"


DEFAULT_PATCHES = (PatchSpec(512, 0.25), PatchSpec(1024, 0.25), PatchSpec(256, 0.5))


@dataclass(frozen=True)
class GenerateConfig:
    patches: tuple[PatchSpec, ...] = DEFAULT_PATCHES
    resize: int | None = 512
    rotations: tuple[int, ...] = (0, 90, 180)
    test_fraction: float = 0.15
    seed: int = 0
    overwrite: bool = False

    def validate(self) -> None:
        """ConfigError for a value no run could use (checked before any file is read)."""
        if not self.patches:
            raise ConfigError("the patch plan is empty: give at least one SIZE:STRIDE_FRACTION")
        for spec in self.patches:
            spec.validate()
        if not self.rotations:
            raise ConfigError("no rotation given: use 0 to keep the patches as they are")
        for rotation in self.rotations:
            if (
                isinstance(rotation, bool)
                or not isinstance(rotation, (int, np.integer))
                or rotation % 90
            ):
                raise ConfigError(
                    f"rotations must be multiples of 90 degrees (like 0,90,180), got {rotation!r}"
                )
        if not 0 <= self.test_fraction < 1:  # also false for NaN
            raise ConfigError(
                f"the test fraction must be from 0 up to (not including) 1, "
                f"got {self.test_fraction}"
            )
        if self.resize is not None and self.resize < MIN_PATCH:
            raise ConfigError(
                f"resize must be at least {MIN_PATCH} px (or None to keep the "
                f"window size), got {self.resize}"
            )


@dataclass(frozen=True)
class GenerateResult:
    dataset_dir: Path
    n_train: int
    n_test: int
    manifest_path: Path
    #: windows left out because they straddle the border of the test region
    n_dropped: int = 0
    #: the test region ``(x0, y0, x1, y1)`` in source pixels (end exclusive); None without a test split
    test_region: tuple[int, int, int, int] | None = None

    @property
    def test_share(self) -> float:
        return self.n_test / max(1, self.n_train + self.n_test)


@dataclass(frozen=True)
class Window:
    """A square window in source coordinates, the rotation applied to its patch, its split."""

    x: int
    y: int
    size: int
    rotation: int
    split: str = "train"


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------


def _starts(length: int, size: int, stride: int) -> np.ndarray:
    """Window starts along one axis (:func:`core.windows.axis_starts`: whole windows, the last
    flush with the far edge) as an int64 array."""
    return np.asarray(axis_starts(length, size, stride), np.int64)


def _plan_arrays(
    width: int, height: int, patches: Iterable[PatchSpec], rotations: Iterable[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, size, rotation)`` arrays of every window, in source coordinates, in plan order."""
    xs, ys, ss, rs = [], [], [], []
    for rotation in rotations:
        k = (int(rotation) // 90) % 4
        rw, rh = (width, height) if k % 2 == 0 else (height, width)
        for spec in patches:
            s = int(spec.size)
            # the grid slides over the rotated image (rx, ry), mapped back to the source frame
            # (np.rot90 turns counter-clockwise k times)
            ry, rx = np.meshgrid(
                _starts(rh, s, spec.stride), _starts(rw, s, spec.stride), indexing="ij"
            )
            rx, ry = rx.ravel(), ry.ravel()
            if k == 0:
                x, y = rx, ry
            elif k == 1:
                x, y = width - ry - s, rx
            elif k == 2:
                x, y = width - rx - s, height - ry - s
            else:
                x, y = ry, height - rx - s
            xs.append(x)
            ys.append(y)
            ss.append(np.full(x.size, s, np.int64))
            rs.append(np.full(x.size, int(rotation), np.int64))
    if not xs:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, empty
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ss), np.concatenate(rs)


def count_windows(
    width: int, height: int, patches: Iterable[PatchSpec], rotations: Iterable[int]
) -> int:
    """How many windows :func:`plan_windows` makes (without making them)."""
    patches, total = tuple(patches), 0
    for rotation in rotations:
        rw, rh = (width, height) if (int(rotation) // 90) % 2 == 0 else (height, width)
        for spec in patches:
            total += len(axis_starts(rw, spec.size, spec.stride)) * len(
                axis_starts(rh, spec.size, spec.stride)
            )
    return total


def plan_windows(
    width: int, height: int, patches: Iterable[PatchSpec], rotations: Iterable[int]
) -> list[Window]:
    """Every window of the patch plan, in source coordinates (see the module docstring)."""
    xs, ys, ss, rs = _plan_arrays(width, height, patches, rotations)
    return [
        Window(int(x), int(y), int(s), int(r))
        for x, y, s, r in zip(xs.tolist(), ys.tolist(), ss.tolist(), rs.tolist(), strict=True)
    ]


# --------------------------------------------------------------------------------------------
# Patches
# --------------------------------------------------------------------------------------------


def _resize_image(patch: np.ndarray, size: int) -> Image.Image:
    im = Image.fromarray(patch)
    current = patch.shape[0]
    if size == current:
        return im
    if size < current:
        if current % size == 0:
            return im.reduce(current // size)  # exact area average
        return im.resize((size, size), Image.Resampling.BOX)
    return im.resize((size, size), Image.Resampling.BICUBIC)


def _resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Area-average the 0/1 mask to ``size`` x ``size``, roof where at least half is roof."""
    if size == mask.shape[0]:
        return mask
    area = Image.fromarray(mask.astype(np.float32)).resize((size, size), Image.Resampling.BOX)
    return np.asarray(area) >= 0.5 - 1e-6


def make_patch(
    image: np.ndarray,
    mask: np.ndarray,
    x: int,
    y: int,
    size: int,
    rotation: int,
    resize: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``(image, mask)`` patch of one window: sliced, resized, rotated (module docstring)."""
    k = (rotation // 90) % 4
    window = np.ascontiguousarray(image[y : y + size, x : x + size])
    window_mask = mask[y : y + size, x : x + size]
    if resize is not None and resize != size:
        # resizing before rotating is the same (square, symmetric filters) and cheaper
        window = np.asarray(_resize_image(window, resize))
        window_mask = _resize_mask(window_mask, resize)
    return np.ascontiguousarray(np.rot90(window, k)), np.ascontiguousarray(np.rot90(window_mask, k))


def _write_patch(
    image: np.ndarray,
    mask: np.ndarray | None,
    x: int,
    y: int,
    size: int,
    rotation: int,
    resize: int | None,
    data_path: Path,
    label_path: Path,
) -> None:
    """One window's image patch and (when there is a mask) its label patch."""
    if mask is None:  # images only: the labels are painted later
        k = (rotation // 90) % 4
        window = np.ascontiguousarray(image[y : y + size, x : x + size])
        if resize is not None and resize != size:
            window = np.asarray(_resize_image(window, resize))
        patch = np.ascontiguousarray(np.rot90(window, k))
        Image.fromarray(patch).save(data_path, format="PNG", compress_level=1)
        return
    patch, patch_mask = make_patch(image, mask, x, y, size, rotation, resize)
    Image.fromarray(patch).save(data_path, format="PNG", compress_level=1)
    label = np.where(patch_mask, np.uint8(255), np.uint8(0))
    Image.fromarray(label).save(label_path, format="PNG", compress_level=1)


def fitting_patches(
    width: int, height: int, patches: Iterable[PatchSpec] = DEFAULT_PATCHES
) -> tuple[PatchSpec, ...]:
    """``patches`` without the sizes larger than the image's short side; when none is left, one
    size that fits (the short side rounded down to a multiple of 32, at least MIN_PATCH px)
    every half size. The default plan of a window that opens an image of any size."""
    short = min(int(width), int(height))
    fitting = tuple(spec for spec in patches if spec.size <= short)
    if fitting:
        return fitting
    size = max(MIN_PATCH, short - short % 32 if short >= 64 else short)
    return (PatchSpec(size, 0.5),)


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


def patch_name(index: int, total: int) -> str:
    """``00042.png``: five digits, more when ``total`` patches need them."""
    digits = max(5, len(str(max(total - 1, 0))))
    return f"{index:0{digits}d}.png"


def _dataset_parts(folder: Path) -> list[str]:
    """Names in ``folder`` that belong to a dataset (and would be replaced)."""
    return [name for name in (*SPLITS, MANIFEST_NAME) if os.path.lexists(folder / name)]


def _check_sizes(config: GenerateConfig, width: int, height: int, image_path: Path) -> None:
    too_big = sorted({s.size for s in config.patches if s.size > min(width, height)})
    if too_big:
        raise ConfigError(
            f"patch size {', '.join(map(str, too_big))} is larger than the image ({width} x "
            f"{height}); use patch sizes of at most {min(width, height)}",
            image_path,
        )


def _install(staging: Path, out_dir: Path) -> None:
    """Move the staged dataset into ``out_dir``, replacing an old one; roll back on failure."""
    previous = staging / ".previous"
    previous.mkdir()
    moved_old: list[str] = []
    moved_new: list[str] = []
    try:
        for name in _dataset_parts(out_dir):
            os.replace(out_dir / name, previous / name)
            moved_old.append(name)
        for name in (*SPLITS, MANIFEST_NAME):
            os.replace(staging / name, out_dir / name)
            moved_new.append(name)
    except OSError:
        with contextlib.suppress(OSError):
            for name in moved_new:
                os.replace(out_dir / name, staging / name)
            for name in moved_old:
                os.replace(previous / name, out_dir / name)
        raise


def generate_dataset(
    image_path: str | Path,
    label_path: str | Path | None,
    out_dir: str | Path,
    config: GenerateConfig = GenerateConfig(),
    on_progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> GenerateResult:
    """Cut ``image_path`` and its mask into a train/test patch dataset in ``out_dir``.

    Without a mask (``label_path`` None) only the image patches are written, to be labelled in
    the window (painted labels or strokes).

    The dataset is written into a hidden folder inside ``out_dir`` and moved into place at the end:
    a failed or cancelled run (``should_stop`` returning True raises Stopped) leaves
    ``out_dir`` as it was. ``out_dir`` holding a dataset is an error unless ``config.overwrite``.
    ``on_progress`` receives ``Progress(done, total, unit="patches")`` (patches written of all),
    at most ten times a second and always at the start and the end.
    """
    image_path, out_dir = Path(image_path), Path(out_dir)
    label_path = Path(label_path) if label_path is not None else None
    config.validate()
    if out_dir.exists() and not out_dir.is_dir():
        raise ImageWriteError(
            "exists and is not a folder; choose a folder for the dataset", out_dir
        )
    if out_dir.is_dir() and _dataset_parts(out_dir) and not config.overwrite:
        raise DatasetError(
            f"already holds a dataset ({', '.join(_dataset_parts(out_dir))}); choose "
            "an empty folder or pass --overwrite to replace it",
            out_dir,
        )
    with contextlib.suppress(ImageReadError):  # fail fast, before decoding a huge image
        size = image_size(image_path)
        if label_path is None or image_size(label_path) == size:  # else reading says so
            _check_sizes(config, *size, image_path)

    if label_path is None:
        image, mask = read_image(image_path), None
    else:
        image, mask = read_image_and_mask(image_path, label_path)
    height, width = image.shape[:2]
    _check_sizes(config, width, height, image_path)
    planned = count_windows(width, height, config.patches, config.rotations)
    if planned > MAX_WINDOWS:
        raise ConfigError(
            f"this patch plan cuts {planned:,} windows from the {width} x {height} "
            f"image, more than the {MAX_WINDOWS:,} allowed; use larger stride "
            "fractions, fewer patch sizes or fewer rotations",
            image_path,
        )
    xs, ys, ss, rs = _plan_arrays(width, height, config.patches, config.rotations)
    region, is_test, is_train = split_windows(
        xs, ys, ss, width, height, config.test_fraction, config.seed, image_path
    )
    keep = is_test | is_train
    xs, ys, ss, rs, is_test = xs[keep], ys[keep], ss[keep], rs[keep], is_test[keep]
    total = int(xs.size)
    names = [patch_name(i, total) for i in range(total)]
    splits = np.where(is_test, "test", "train")

    created = not out_dir.exists()
    ensure_folder(out_dir)
    staging: Path | None = None
    try:
        staging = Path(tempfile.mkdtemp(prefix=".generating-", dir=out_dir))
        for split in SPLITS:
            for kind in ("data", "label"):
                (staging / split / kind).mkdir(parents=True)
        _write_patches(
            image,
            mask,
            xs,
            ys,
            ss,
            rs,
            splits,
            names,
            config.resize,
            staging,
            on_progress,
            should_stop,
        )
        source = os.path.abspath(image_path)
        source_cm = file_resolution(image_path)
        gsd = "" if source_cm is None else f"{source_cm / 100:.6g}"
        text = _io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        for name, split, x, y, s, r in zip(
            names, splits.tolist(), xs.tolist(), ys.tolist(), ss.tolist(), rs.tolist(), strict=True
        ):
            out_size = config.resize or s
            writer.writerow([name, split, source, x, y, s, r, out_size, gsd])
        write_bytes_atomic(staging / MANIFEST_NAME, text.getvalue().encode("utf-8"))
        _install(staging, out_dir)
    except OSError as exc:
        raise ImageWriteError(f"cannot write the dataset ({exc.strerror or exc})", out_dir) from exc
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if created and not _dataset_parts(out_dir):
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only succeeds while empty: we leave nothing of a failed run
    n_test = int(is_test.sum())
    return GenerateResult(
        out_dir,
        total - n_test,
        n_test,
        out_dir / MANIFEST_NAME,
        n_dropped=int(keep.size - total),
        test_region=region,
    )


def _write_patches(
    image: np.ndarray,
    mask: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    ss: np.ndarray,
    rs: np.ndarray,
    splits: np.ndarray,
    names: list[str],
    resize: int | None,
    staging: Path,
    on_progress: ProgressCallback | None,
    should_stop: StopCheck | None,
) -> None:
    """Write every patch with a small thread pool, a bounded number of patches in flight."""
    total = len(names)
    report(on_progress, Progress(0, total, unit="patches"))
    done, last_report = 0, time.monotonic()
    pending: set[Future] = set()
    limit = 4 * WORKERS

    def collect(block_until_below: int) -> None:
        nonlocal pending, done, last_report
        while len(pending) >= block_until_below and pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                future.result()  # a worker's error is raised here
            done += len(finished)
            now = time.monotonic()
            if on_progress is not None and (now - last_report >= 0.1 or done == total):
                on_progress(Progress(done, total, unit="patches"))
                last_report = now

    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="rooftop-patches")
    try:
        for i in range(total):
            _check_stop(should_stop)
            split = splits[i]
            pending.add(
                pool.submit(
                    _write_patch,
                    image,
                    mask,
                    int(xs[i]),
                    int(ys[i]),
                    int(ss[i]),
                    int(rs[i]),
                    resize,
                    staging / split / "data" / names[i],
                    staging / split / "label" / names[i],
                )
            )
            collect(limit)
        collect(1)
        _check_stop(should_stop)
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)


__all__ = [
    "DEFAULT_PATCHES",
    "MANIFEST_COLUMNS",
    "MANIFEST_NAME",
    "GenerateConfig",
    "GenerateResult",
    "PatchSpec",
    "Window",
    "count_windows",
    "generate_dataset",
    "make_patch",
    "patch_name",
    "plan_windows",
]
