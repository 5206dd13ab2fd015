"""Datasets: patch generation from a large image and its mask, the spatial split, the folder layout.

Torch-free and Qt-free.

Layout (the original exercise's, kept)::

    DATASET/train/data/NNNNN.png   DATASET/train/label/NNNNN.png
    DATASET/test/data/NNNNN.png    DATASET/test/label/NNNNN.png
    DATASET/manifest.csv           one row per patch: name, split, source_image, x, y, size,
                                   rotation, resize

Names run across both splits (``00000.png``, ``00001.png``...; more than five digits only when
there are more than 100,000 patches). Labels are single-channel 0/255 PNGs.

Patches (:func:`generate_dataset`)
----------------------------------
For each rotation (a multiple of 90 degrees) and each :class:`PatchSpec` (window size, stride as a
fraction of it), square windows slide over the *rotated* image as in the original (so the grid is
aligned to a different corner per rotation), keeping only full windows, plus a last window flush
with the right and bottom edges when the stride does not land there, so the edges are covered.
No rotated copy of the image is ever made: each window is sliced from the source and the patch is
rotated with ``np.rot90`` (exact, no black corners, unlike the original's PIL ``rotate``). The
manifest records each window's top-left corner ``x, y`` in *source* coordinates, its size in source
pixels and the rotation applied, so ``np.rot90(source[y:y+size, x:x+size], rotation // 90)`` is the
patch before resizing.

Resizing to ``resize`` x ``resize`` (None keeps the window size): the image is area-averaged when
shrinking (``Image.reduce`` for whole factors, else the BOX filter) and bicubic when enlarging; the
mask is area-averaged as 0/1 values and thresholded at 0.5 (a pixel is roof when at least half of
its area is roof), so labels stay binary - the original resized the mask with the image's
smoothing filter and its labels stopped being binary.

The spatial split
-----------------
The original drew a random 15 % of the patches as the test set, with replacement, from
overlapping windows and rotated copies of the same ground: test ground leaked into training.
Here the test set is a *region of the source ground*, a rectangle ``x0 <= x < x1, y0 <= y < y1``
(``GenerateResult.test_region``): either a strip across the whole image (vertical or horizontal,
anywhere) or a rectangle in one of its four corners. Windows wholly inside the region go to test,
windows wholly outside it go to train, and windows that straddle its border are dropped
(``GenerateResult.n_dropped``), so no source pixel is in both splits, whatever the rotation.

Every strip and corner rectangle whose borders lie on window edges is a candidate (all of them
are scored at once with cumulative counts, which takes milliseconds even for 40,000 windows).
A candidate must leave both splits non-empty; its cost is ``|test share - test_fraction|`` (the
share of the *kept* patches) plus 0.1 x the share of windows it drops, so a region that drops a
tenth more of the windows must come 0.01 closer to the requested share to be preferred. The seed picks at random
among the candidates within 0.002 of the lowest cost, so a different seed can give a different
test region. Large windows limit what is possible: a 1024 window of a 2048 image fits only in a
test region of a quarter of the image, so with the default plan and ``test_fraction`` 0.15 those
windows go to train or are dropped; the test share of all kept patches still comes out at about
0.15 (0.146 to 0.154 depending on the seed). When no region leaves whole windows on both sides
(an image hardly larger than its windows) a ConfigError says so; ``test_fraction`` 0 puts every
window in train.
"""

from __future__ import annotations

import contextlib
import csv
import io as _io
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import (
    ConfigError,
    DatasetError,
    ImageReadError,
    ImageWriteError,
)
from core.io import (
    ensure_folder,
    image_size,
    is_image_file,
    is_temp_file_name,
    read_image_and_mask,
    remove_stale_temp_files,
    write_bytes_atomic,
)
from core.progress import Stopped

SPLITS = ("train", "test")
MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("name", "split", "source_image", "x", "y", "size", "rotation", "resize")
#: Smallest window or resize we accept (smaller patches carry no context for a roof).
MIN_PATCH = 8
#: Most windows a plan may make (a million patches is about a terabyte of PNGs).
MAX_WINDOWS = 1_000_000
#: Threads resizing and PNG-encoding patches (Pillow releases the GIL while it works).
WORKERS = 2


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
            raise ConfigError(f"--patch takes SIZE:STRIDE_FRACTION, like 512:0.25 (a 512 px window "
                              f"moved by a quarter of its size); got {raw!r}") from None
        spec = cls(size, frac)
        spec.validate(f"--patch {raw!r}")
        return spec

    def validate(self, what: str | None = None) -> None:
        """ConfigError when the size or the stride fraction is out of range."""
        what = what or f"patch {self}"
        if not isinstance(self.size, (int, np.integer)) or self.size < MIN_PATCH:
            raise ConfigError(f"{what}: the window size must be a whole number of pixels, at "
                              f"least {MIN_PATCH} (like 512:0.25)")
        if not 0 < self.stride_fraction <= 1:  # also false for NaN
            raise ConfigError(f"{what}: the stride fraction must be above 0 and at most 1 "
                              "(0.25 moves the window by a quarter of its size)")

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
            if isinstance(rotation, bool) or not isinstance(rotation, (int, np.integer)) or rotation % 90:
                raise ConfigError(f"rotations must be multiples of 90 degrees (like 0,90,180), "
                                  f"got {rotation!r}")
        if not 0 <= self.test_fraction < 1:  # also false for NaN
            raise ConfigError(f"the test fraction must be from 0 up to (not including) 1, "
                              f"got {self.test_fraction}")
        if self.resize is not None and self.resize < MIN_PATCH:
            raise ConfigError(f"resize must be at least {MIN_PATCH} px (or None to keep the "
                              f"window size), got {self.resize}")


@dataclass(frozen=True)
class GenerateProgress:
    done: int
    total: int


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
# Windows and the split
# --------------------------------------------------------------------------------------------

def _starts(length: int, size: int, stride: int) -> np.ndarray:
    starts = np.arange(0, length - size + 1, stride, dtype=np.int64)
    if starts.size and starts[-1] != length - size:
        starts = np.append(starts, length - size)  # flush with the far edge
    return starts


def _plan_arrays(width: int, height: int, patches: Iterable[PatchSpec],
                 rotations: Iterable[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, size, rotation)`` arrays of every window, in source coordinates, in plan order."""
    xs, ys, ss, rs = [], [], [], []
    for rotation in rotations:
        k = (int(rotation) // 90) % 4
        rw, rh = (width, height) if k % 2 == 0 else (height, width)
        for spec in patches:
            s = int(spec.size)
            # the grid slides over the rotated image (rx, ry), mapped back to the source frame
            # (np.rot90 turns counter-clockwise k times)
            ry, rx = np.meshgrid(_starts(rh, s, spec.stride), _starts(rw, s, spec.stride), indexing="ij")
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


def count_windows(width: int, height: int, patches: Iterable[PatchSpec],
                  rotations: Iterable[int]) -> int:
    """How many windows :func:`plan_windows` makes (without making them)."""
    patches, total = tuple(patches), 0
    for rotation in rotations:
        rw, rh = (width, height) if (int(rotation) // 90) % 2 == 0 else (height, width)
        for spec in patches:
            total += _starts(rw, spec.size, spec.stride).size * _starts(rh, spec.size, spec.stride).size
    return total


def plan_windows(width: int, height: int, patches: Iterable[PatchSpec],
                 rotations: Iterable[int]) -> list[Window]:
    """Every window of the patch plan, in source coordinates (see the module docstring)."""
    xs, ys, ss, rs = _plan_arrays(width, height, patches, rotations)
    return [Window(int(x), int(y), int(s), int(r))
            for x, y, s, r in zip(xs.tolist(), ys.tolist(), ss.tolist(), rs.tolist(), strict=True)]


#: at most this many band borders per axis are scored (all of them for usual plans)
_MAX_EDGES = 400
#: a region's cost is |test share - test_fraction| + this x the share of windows it drops at
#: its border: dropping 10 % of the windows weighs like a test share 0.01 further off
_DROP_WEIGHT = 0.1
#: regions whose cost is within this of the best are equally good; the seed picks one
_COST_TIES = 0.002


def _band_scores(start: np.ndarray, size: np.ndarray, length: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Score every band ``[a, b)`` along one axis whose borders are window edges.

    Returns ``(a, b, n_inside, n_outside)`` arrays, one entry per candidate band.
    """
    end = start + size
    edges = _edges(start, end, length)
    g = edges.size
    # window w is inside [edges[i], edges[j]) iff i <= first[w] and j >= last[w]
    first = np.searchsorted(edges, start, side="right") - 1
    last = np.searchsorted(edges, end, side="left")
    hist = np.zeros((g, g), np.int64)
    np.add.at(hist, (first, last), 1)
    # inside[i, j] = sum over p >= i, q <= j of hist[p, q]
    inside = np.cumsum(np.cumsum(hist[::-1], axis=0)[::-1], axis=1)
    # before[i]: windows ending at or before edges[i]; after[j]: windows starting at or after edges[j]
    # (end <= edges[i] iff i >= searchsorted left; start >= edges[j] iff j <= searchsorted right - 1)
    before = np.cumsum(np.bincount(np.searchsorted(edges, end, side="left"), minlength=g))
    after = np.cumsum(np.bincount(np.searchsorted(edges, start, side="right") - 1, minlength=g)[::-1])[::-1]
    i, j = np.triu_indices(g, k=1)
    return edges[i], edges[j], inside[i, j], before[i] + after[j]


def _edges(start: np.ndarray, end: np.ndarray, length: int) -> np.ndarray:
    edges = np.unique(np.concatenate([[0, length], start, end]))
    if edges.size > _MAX_EDGES:
        keep = np.unique(np.linspace(0, edges.size - 1, _MAX_EDGES).round().astype(np.int64))
        edges = edges[keep]
    return edges


def _corner_scores(xs: np.ndarray, ys: np.ndarray, ss: np.ndarray, width: int, height: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score every rectangle ``[0, X) x [0, Y)`` whose far corner lies on window edges.

    Returns ``(regions (n, 4), n_inside, n_outside)``.
    """
    ex, ey = _edges(xs, xs + ss, width), _edges(ys, ys + ss, height)
    gx, gy = ex.size, ey.size
    # inside iff x + s <= X and y + s <= Y
    hist = np.zeros((gx, gy), np.int64)
    np.add.at(hist, (np.searchsorted(ex, xs + ss, "left"), np.searchsorted(ey, ys + ss, "left")), 1)
    inside = hist.cumsum(0).cumsum(1)
    # overlapping iff x < X and y < Y
    hist[:] = 0
    np.add.at(hist, (np.searchsorted(ex, xs, "right"), np.searchsorted(ey, ys, "right")), 1)
    outside = xs.size - hist.cumsum(0).cumsum(1)
    jx, jy = np.meshgrid(np.arange(gx), np.arange(gy), indexing="ij")
    jx, jy = jx.ravel(), jy.ravel()
    zeros = np.zeros(jx.size, np.int64)
    regions = np.stack([zeros, zeros, ex[jx], ey[jy]], 1)
    return regions, inside.ravel(), outside.ravel()


def _candidates(xs: np.ndarray, ys: np.ndarray, ss: np.ndarray, width: int, height: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every candidate test region: ``(regions (n, 4) as x0, y0, x1, y1, n_test, n_train)``."""
    regions, tests, trains = [], [], []
    for vertical in (True, False):  # strips across the whole image
        a, b, n_in, n_out = _band_scores(xs if vertical else ys, ss, width if vertical else height)
        regions.append(np.stack([a, np.zeros_like(a), b, np.full_like(a, height)], 1) if vertical
                       else np.stack([np.zeros_like(a), a, np.full_like(a, width), b], 1))
        tests.append(n_in)
        trains.append(n_out)
    for flip_x in (False, True):  # rectangles in each corner (mirror the windows, then back)
        for flip_y in (False, True):
            fx = width - xs - ss if flip_x else xs
            fy = height - ys - ss if flip_y else ys
            rect, n_in, n_out = _corner_scores(fx, fy, ss, width, height)
            x0, y0, x1, y1 = rect.T
            if flip_x:
                x0, x1 = width - x1, width - x0
            if flip_y:
                y0, y1 = height - y1, height - y0
            regions.append(np.stack([x0, y0, x1, y1], 1))
            tests.append(n_in)
            trains.append(n_out)
    return np.concatenate(regions), np.concatenate(tests), np.concatenate(trains)


def _choose_region(xs: np.ndarray, ys: np.ndarray, ss: np.ndarray, width: int, height: int,
                   fraction: float, seed: int) -> tuple[int, int, int, int] | None:
    """The test region (module docstring) as ``(x0, y0, x1, y1)``, or None if none is possible."""
    region, n_test, n_train = _candidates(xs, ys, ss, width, height)
    valid = (n_test > 0) & (n_train > 0)
    if not valid.any():
        return None
    region, n_test, n_train = region[valid], n_test[valid], n_train[valid]
    error = np.abs(n_test / (n_test + n_train) - fraction)
    dropped = 1.0 - (n_test + n_train) / xs.size
    cost = error + _DROP_WEIGHT * dropped
    pool = np.flatnonzero(cost <= cost.min() + _COST_TIES)
    # a region can appear twice (a corner rectangle as wide as the image is a strip): dedupe so
    # that the seed picks among distinct regions with equal odds
    pool = pool[np.unique(region[pool], axis=0, return_index=True)[1]]
    pick = int(pool[np.random.default_rng(seed).integers(pool.size)])
    return tuple(int(v) for v in region[pick])  # type: ignore[return-value]


def _assign(xs: np.ndarray, ys: np.ndarray, ss: np.ndarray,
            region: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Boolean arrays (wholly inside ``region``, wholly outside it) for the windows."""
    x0, y0, x1, y1 = region
    inside = (xs >= x0) & (ys >= y0) & (xs + ss <= x1) & (ys + ss <= y1)
    outside = (xs + ss <= x0) | (xs >= x1) | (ys + ss <= y0) | (ys >= y1)
    return inside, outside


def _too_small(width: int, height: int, sizes: Iterable[int], path: str | Path | None) -> ConfigError:
    return ConfigError(
        f"the image ({width} x {height}) is too small to split spatially with windows of "
        f"{', '.join(str(s) for s in sorted(set(sizes)))} px: no strip of it holds whole test "
        "windows while leaving whole train windows beside it (a window may not cross the split); "
        "use smaller --patch sizes, a larger image, or --test-fraction 0", path)


def choose_test_region(windows: Sequence[Window], width: int, height: int, fraction: float,
                       seed: int, path: str | Path | None = None
                       ) -> tuple[tuple[int, int, int, int] | None, np.ndarray, np.ndarray]:
    """The test band whose test share is closest to ``fraction`` (see the module docstring).

    Returns ``(region, is_test, is_train)`` (boolean arrays over ``windows``; windows in neither are
    dropped); region None when ``fraction`` is 0. ConfigError (naming ``path``) when no band works.
    """
    xs = np.fromiter((w.x for w in windows), np.int64, len(windows))
    ys = np.fromiter((w.y for w in windows), np.int64, len(windows))
    ss = np.fromiter((w.size for w in windows), np.int64, len(windows))
    return _split(xs, ys, ss, width, height, fraction, seed, path)


def _split(xs: np.ndarray, ys: np.ndarray, ss: np.ndarray, width: int, height: int,
           fraction: float, seed: int, path: str | Path | None
           ) -> tuple[tuple[int, int, int, int] | None, np.ndarray, np.ndarray]:
    if fraction <= 0:
        return None, np.zeros(xs.size, bool), np.ones(xs.size, bool)
    region = _choose_region(xs, ys, ss, width, height, fraction, seed) if xs.size else None
    if region is None:
        raise _too_small(width, height, ss.tolist(), path)
    is_test, is_train = _assign(xs, ys, ss, region)
    return region, is_test, is_train


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


def make_patch(image: np.ndarray, mask: np.ndarray, x: int, y: int, size: int, rotation: int,
               resize: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The ``(image, mask)`` patch of one window: sliced, resized, rotated (module docstring)."""
    k = (rotation // 90) % 4
    window = np.ascontiguousarray(image[y:y + size, x:x + size])
    window_mask = mask[y:y + size, x:x + size]
    if resize is not None and resize != size:
        # resizing before rotating is the same (square, symmetric filters) and cheaper
        window = np.asarray(_resize_image(window, resize))
        window_mask = _resize_mask(window_mask, resize)
    return np.ascontiguousarray(np.rot90(window, k)), np.ascontiguousarray(np.rot90(window_mask, k))


def _write_patch(image: np.ndarray, mask: np.ndarray, x: int, y: int, size: int, rotation: int,
                 resize: int | None, data_path: Path, label_path: Path) -> None:
    patch, patch_mask = make_patch(image, mask, x, y, size, rotation, resize)
    Image.fromarray(patch).save(data_path, format="PNG", compress_level=1)
    label = np.where(patch_mask, np.uint8(255), np.uint8(0))
    Image.fromarray(label).save(label_path, format="PNG", compress_level=1)


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
            f"{height}); use --patch sizes of at most {min(width, height)}", image_path)


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


def generate_dataset(image_path: str | Path, label_path: str | Path, out_dir: str | Path,
                     config: GenerateConfig = GenerateConfig(),
                     on_progress: Callable[[GenerateProgress], None] | None = None,
                     should_stop: Callable[[], bool] | None = None) -> GenerateResult:
    """Cut ``image_path`` and its mask into a train/test patch dataset in ``out_dir``.

    The dataset is written into a hidden folder inside ``out_dir`` and moved into place at the end:
    a failed or cancelled run (``should_stop`` returning True raises Stopped) leaves
    ``out_dir`` as it was. ``out_dir`` holding a dataset is an error unless ``config.overwrite``.
    """
    image_path, label_path, out_dir = Path(image_path), Path(label_path), Path(out_dir)
    config.validate()
    if out_dir.exists() and not out_dir.is_dir():
        raise ImageWriteError("exists and is not a folder; choose a folder for the dataset", out_dir)
    if out_dir.is_dir() and _dataset_parts(out_dir) and not config.overwrite:
        raise DatasetError(f"already holds a dataset ({', '.join(_dataset_parts(out_dir))}); choose "
                           "an empty folder or pass --overwrite to replace it", out_dir)
    with contextlib.suppress(ImageReadError):  # fail fast, before decoding a huge image
        size = image_size(image_path)
        if image_size(label_path) == size:  # else reading says that the sizes differ
            _check_sizes(config, *size, image_path)

    image, mask = read_image_and_mask(image_path, label_path)
    height, width = mask.shape
    _check_sizes(config, width, height, image_path)
    planned = count_windows(width, height, config.patches, config.rotations)
    if planned > MAX_WINDOWS:
        raise ConfigError(f"this patch plan cuts {planned:,} windows from the {width} x {height} "
                          f"image, more than the {MAX_WINDOWS:,} allowed; use larger stride "
                          "fractions, fewer patch sizes or fewer rotations", image_path)
    xs, ys, ss, rs = _plan_arrays(width, height, config.patches, config.rotations)
    region, is_test, is_train = _split(xs, ys, ss, width, height, config.test_fraction,
                                       config.seed, image_path)
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
        _write_patches(image, mask, xs, ys, ss, rs, splits, names, config.resize, staging,
                       on_progress, should_stop)
        source = os.path.abspath(image_path)
        text = _io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        for name, split, x, y, s, r in zip(names, splits.tolist(), xs.tolist(), ys.tolist(),
                                           ss.tolist(), rs.tolist(), strict=True):
            writer.writerow([name, split, source, x, y, s, r, config.resize or s])
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
    return GenerateResult(out_dir, total - n_test, n_test, out_dir / MANIFEST_NAME,
                          n_dropped=int(keep.size - total), test_region=region)


def _write_patches(image: np.ndarray, mask: np.ndarray, xs: np.ndarray, ys: np.ndarray,
                   ss: np.ndarray, rs: np.ndarray, splits: np.ndarray, names: list[str],
                   resize: int | None, staging: Path,
                   on_progress: Callable[[GenerateProgress], None] | None,
                   should_stop: Callable[[], bool] | None) -> None:
    """Write every patch with a small thread pool, a bounded number of patches in flight."""
    total = len(names)
    if on_progress is not None:
        on_progress(GenerateProgress(0, total))
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
                on_progress(GenerateProgress(done, total))
                last_report = now

    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="rooftop-patches")
    try:
        for i in range(total):
            if should_stop is not None and should_stop():
                raise Stopped("dataset generation stopped; nothing was written")
            split = splits[i]
            pending.add(pool.submit(
                _write_patch, image, mask, int(xs[i]), int(ys[i]), int(ss[i]), int(rs[i]), resize,
                staging / split / "data" / names[i], staging / split / "label" / names[i]))
            collect(limit)
        collect(1)
        if should_stop is not None and should_stop():
            raise Stopped("dataset generation stopped; nothing was written")
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)


# --------------------------------------------------------------------------------------------
# Reading a dataset folder
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    name: str
    split: str
    image_path: Path
    label_path: Path | None


@dataclass
class Dataset:
    root: Path
    train: list[Sample] = field(default_factory=list)
    test: list[Sample] = field(default_factory=list)
    orphan_labels: list[Path] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.root.name

    def samples(self, split: str) -> list[Sample]:
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; use train or test")
        return self.train if split == "train" else self.test


def _scan(folder: Path) -> list[Path]:
    """Image files in ``folder`` by name (one scandir, nothing decoded); [] if it is missing.

    Leftover temporary files of interrupted writes (``core.io.atomic_output``) found on the way
    are deleted once they are stale (:func:`core.io.remove_stale_temp_files`).
    """
    temps: list[str] = []
    try:
        with os.scandir(folder) as entries:
            found = []
            for e in entries:
                if e.name.startswith("."):
                    if is_temp_file_name(e.name):
                        temps.append(e.name)
                elif is_image_file(e.name) and e.is_file():
                    found.append(Path(e.path))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise DatasetError(f"cannot list the folder ({exc.strerror or exc})", folder) from exc
    if temps:
        remove_stale_temp_files(folder, names=temps)
    return sorted(found, key=lambda p: p.name)


_LAYOUT = ("expected a dataset folder holding train/data and/or test/data (images) with "
           "train/label and test/label (masks of the same names) beside them, as "
           "`rooftop generate` writes")


def open_dataset(root: str | Path) -> Dataset:
    """Scan ``root/{train,test}/{data,label}`` (no image is decoded).

    Stale temporary files of interrupted writes in these folders and in ``root`` are deleted
    (:func:`core.io.remove_stale_temp_files`; a write in progress is never touched).
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset folder not found; {_LAYOUT}", root)
    if not root.is_dir():
        raise DatasetError(f"is not a folder; {_LAYOUT}", root)
    if not any((root / split / "data").is_dir() for split in SPLITS):
        raise DatasetError(f"is not a dataset: {_LAYOUT}", root)
    remove_stale_temp_files(root)
    dataset = Dataset(root=root)
    for split in SPLITS:
        images = _scan(root / split / "data")
        labels = _scan(root / split / "label")
        by_name = {p.name: p for p in labels}
        by_stem: dict[str, Path] = {}
        for p in labels:
            by_stem.setdefault(p.stem, p)
        used: set[Path] = set()
        samples = []
        for image in images:
            label = by_name.get(image.name) or by_stem.get(image.stem)
            if label is not None:
                used.add(label)
            samples.append(Sample(image.name, split, image, label))
        dataset.orphan_labels.extend(p for p in labels if p not in used)
        setattr(dataset, split, samples)
    if not dataset.train and not dataset.test:
        raise DatasetError("empty dataset: there are no images in train/data or test/data", root)
    return dataset


def require_labels(samples: Sequence[Sample], what: str) -> None:
    """DatasetError naming the first image that has no label, and how many have none."""
    missing = [s for s in samples if s.label_path is None]
    if missing:
        first = missing[0]
        expected = first.image_path.parent.parent / "label" / (Path(first.name).stem + ".png")
        raise DatasetError(
            f"has no label (expected {expected}); {len(missing)} of the {len(samples)} images of "
            f"the {what} have no label - paint them or remove the images", first.image_path)


def label_path_for(root: str | Path, split: str, image_name: str) -> Path:
    """Where the label of ``split/data/image_name`` lives, or will be created.

    The label of the same file name when it exists (what :func:`open_dataset` prefers), else
    the same stem with ``.png``.
    """
    folder = Path(root) / split / "label"
    same = folder / image_name
    if Path(image_name).suffix.lower() != ".png" and same.is_file():
        return same
    return folder / (Path(image_name).stem + ".png")


__all__ = [
    "DEFAULT_PATCHES", "MANIFEST_COLUMNS", "SPLITS", "Dataset", "GenerateConfig", "GenerateProgress",
    "GenerateResult", "PatchSpec", "Sample", "Window", "choose_test_region",
    "count_windows", "generate_dataset", "label_path_for", "make_patch", "open_dataset", "patch_name", "plan_windows",
    "require_labels",
]
