"""Datasets: patch generation from a large image and its mask, the spatial split, the folder layout.

Layout (the original exercise's, kept)::

    DATASET/train/data/NNNNN.png   DATASET/train/label/NNNNN.png
    DATASET/test/data/NNNNN.png    DATASET/test/label/NNNNN.png
    DATASET/manifest.csv           one row per patch: name, split, source_image, x, y, size,
                                   rotation, resize

Patches (:func:`generate_dataset`): for each rotation (a multiple of 90 degrees) and each
:class:`PatchSpec` (window size, stride as a fraction of it), square windows slide over the
*rotated* image as in the original, keeping only full windows, plus a last window flush with the
right and bottom edges so the edges are covered. Each window is cut from the source image and
rotated with ``np.rot90`` (exact: no black corners, unlike PIL's ``rotate``), then resized: the
image with a box (area) filter, the mask by area-averaging the 0/1 mask and thresholding at 0.5,
so it stays binary. The manifest records each window's top-left corner in *source* coordinates.

The split is spatial: the source is cut into vertical or horizontal bands; a band of the source
is the test region. Windows wholly inside it go to test, windows wholly outside go to train, and
windows that straddle its border are dropped, so no ground pixel is in both splits (the original
drew test patches at random from overlapping windows, leaking test ground into training). The
band (orientation, position, width) is chosen among many candidates, with the seed breaking ties,
as the one whose share of test patches is closest to ``test_fraction``.
"""

from __future__ import annotations

import csv
import io as _io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import ConfigError, DatasetError, ImageWriteError, TrainingStopped
from core.io import ensure_folder, is_image_file, read_image_and_mask, write_bytes_atomic

SPLITS = ("train", "test")


@dataclass(frozen=True)
class PatchSpec:
    """A window size in source pixels and its stride as a fraction of the size."""

    size: int
    stride_fraction: float

    @property
    def stride(self) -> int:
        return max(1, int(round(self.size * self.stride_fraction)))

    @classmethod
    def parse(cls, text: str) -> PatchSpec:
        """``"512:0.25"`` -> ``PatchSpec(512, 0.25)``; ConfigError with the expected form."""
        raw = str(text).strip()
        size_text, sep, frac_text = raw.partition(":")
        try:
            size, frac = int(size_text), float(frac_text)
        except ValueError:
            raise ConfigError(f"--patch takes SIZE:STRIDE_FRACTION like 512:0.25, got {raw!r}") from None
        if not sep or size < 8:
            raise ConfigError(f"--patch {raw!r}: the window size must be at least 8 px (like 512:0.25)")
        if not 0 < frac <= 1:
            raise ConfigError(f"--patch {raw!r}: the stride fraction must be above 0 and at most 1")
        return cls(size, frac)

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
    n_dropped: int = 0
    test_region: tuple[int, int, int, int] | None = None  # (x0, y0, x1, y1) in source pixels


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

def _starts(length: int, size: int, stride: int) -> list[int]:
    starts = list(range(0, length - size + 1, stride))
    if starts and starts[-1] != length - size:
        starts.append(length - size)  # flush with the far edge
    return starts


def plan_windows(width: int, height: int, patches: Iterable[PatchSpec],
                 rotations: Iterable[int]) -> list[Window]:
    """Every window of the patch plan, in source coordinates (see module docstring)."""
    windows = []
    for rotation in rotations:
        k = (rotation // 90) % 4
        rw, rh = (width, height) if k % 2 == 0 else (height, width)
        for spec in patches:
            s = spec.size
            for ry in _starts(rh, s, spec.stride):
                for rx in _starts(rw, s, spec.stride):
                    # top-left of the rotated-frame window, mapped back to the source frame
                    # (np.rot90 rotates counter-clockwise k times)
                    if k == 0:
                        x, y = rx, ry
                    elif k == 1:
                        x, y = width - ry - s, rx
                    elif k == 2:
                        x, y = width - rx - s, height - ry - s
                    else:
                        x, y = ry, height - rx - s
                    windows.append(Window(x, y, s, rotation))
    return windows


def _assign(windows: list[Window], region: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Boolean arrays (inside region, outside region) for the windows."""
    x0, y0, x1, y1 = region
    xs = np.array([w.x for w in windows])
    ys = np.array([w.y for w in windows])
    ss = np.array([w.size for w in windows])
    inside = (xs >= x0) & (ys >= y0) & (xs + ss <= x1) & (ys + ss <= y1)
    outside = (xs + ss <= x0) | (xs >= x1) | (ys + ss <= y0) | (ys >= y1)
    return inside, outside


def choose_test_region(windows: list[Window], width: int, height: int, fraction: float,
                       seed: int) -> tuple[tuple[int, int, int, int] | None, np.ndarray, np.ndarray]:
    """The test band whose test share is closest to ``fraction`` (module docstring).

    Returns ``(region, is_test, is_train)``; region None when ``fraction`` is 0.
    """
    n = len(windows)
    if fraction <= 0:
        return None, np.zeros(n, bool), np.ones(n, bool)
    rng = np.random.default_rng(seed)
    candidates = []
    for axis_len, vertical in ((width, True), (height, False)):
        step = max(1, axis_len // 64)
        for band in range(step, axis_len, step):
            for start in (0, axis_len - band):  # bands at either edge keep train in one piece
                region = ((start, 0, start + band, height) if vertical
                          else (0, start, width, start + band))
                candidates.append(region)
    best, best_key = None, None
    for region in candidates:
        inside, outside = _assign(windows, region)
        n_test, n_train = int(inside.sum()), int(outside.sum())
        if n_test == 0 or n_train == 0:
            continue
        share = n_test / (n_test + n_train)
        kept = (n_test + n_train) / n
        # closest share first, then keep as many patches as possible, then the seed decides
        key = (round(abs(share - fraction), 3), -round(kept, 2), rng.random())
        if best_key is None or key < best_key:
            best, best_key = (region, inside, outside), key
    if best is None:
        raise ConfigError(
            f"the image ({width} x {height}) is too small to split spatially with this patch "
            "plan: no band of it holds whole test windows while leaving whole train windows; use "
            "smaller --patch sizes or --test-fraction 0")
    return best


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------

def _resize_patch(image: np.ndarray, mask: np.ndarray, size: int | None) -> tuple[np.ndarray, np.ndarray]:
    if size is None or image.shape[0] == size:
        return image, mask
    img = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BOX))
    area = np.asarray(Image.fromarray(mask.astype(np.float32)).resize((size, size), Image.Resampling.BOX))
    return img, area >= 0.5


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = _io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _has_dataset(folder: Path) -> bool:
    return any((folder / split / "data").is_dir() for split in SPLITS) or (folder / "manifest.csv").exists()


def generate_dataset(image_path: str | Path, label_path: str | Path, out_dir: str | Path,
                     config: GenerateConfig = GenerateConfig(),
                     on_progress: Callable[[GenerateProgress], None] | None = None,
                     should_stop: Callable[[], bool] | None = None) -> GenerateResult:
    """Cut ``image_path`` and its mask into a train/test patch dataset in ``out_dir``."""
    image_path, label_path, out_dir = Path(image_path), Path(label_path), Path(out_dir)
    if not config.patches:
        raise ConfigError("the patch plan is empty")
    for rotation in config.rotations:
        if rotation % 90:
            raise ConfigError(f"rotations must be multiples of 90 degrees, got {rotation}")
    if not 0 <= config.test_fraction < 1:
        raise ConfigError(f"the test fraction must be from 0 up to 1, got {config.test_fraction}")
    if config.resize is not None and config.resize < 8:
        raise ConfigError(f"resize must be at least 8 px, got {config.resize}")
    if out_dir.exists() and not out_dir.is_dir():
        raise ImageWriteError("exists and is not a folder", out_dir)
    if out_dir.is_dir() and _has_dataset(out_dir) and not config.overwrite:
        raise DatasetError("already holds a dataset; choose an empty folder or pass --overwrite", out_dir)

    image, mask = read_image_and_mask(image_path, label_path)
    height, width = mask.shape
    for spec in config.patches:
        if spec.size > min(width, height):
            raise ConfigError(f"patch size {spec.size} is larger than the image "
                              f"({width} x {height})", image_path)
    windows = plan_windows(width, height, config.patches, config.rotations)
    region, is_test, is_train = choose_test_region(windows, width, height, config.test_fraction,
                                                   config.seed)
    kept = [Window(w.x, w.y, w.size, w.rotation, "test" if t else "train")
            for w, t, r in zip(windows, is_test, is_train, strict=True) if t or r]
    digits = max(5, len(str(len(kept) - 1)))

    ensure_folder(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=".generating-", dir=out_dir))
    try:
        for split in SPLITS:
            for kind in ("data", "label"):
                (staging / split / kind).mkdir(parents=True)
        rows = []

        def write(index: int, window: Window) -> None:
            k = (window.rotation // 90) % 4
            sl = (slice(window.y, window.y + window.size), slice(window.x, window.x + window.size))
            patch, patch_mask = np.rot90(image[sl], k), np.rot90(mask[sl], k)
            patch, patch_mask = _resize_patch(np.ascontiguousarray(patch), patch_mask, config.resize)
            name = f"{index:0{digits}d}.png"
            (staging / window.split / "data" / name).write_bytes(_png_bytes(patch))
            (staging / window.split / "label" / name).write_bytes(
                _png_bytes(np.where(patch_mask, np.uint8(255), np.uint8(0))))

        total = len(kept)
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            chunk = 32
            for start in range(0, total, chunk):
                if should_stop is not None and should_stop():
                    raise TrainingStopped("dataset generation cancelled")
                batch = list(enumerate(kept[start:start + chunk], start))
                list(pool.map(lambda item: write(*item), batch))
                for index, window in batch:
                    rows.append([f"{index:0{digits}d}.png", window.split, str(image_path),
                                 window.x, window.y, window.size, window.rotation,
                                 config.resize or window.size])
                if on_progress is not None:
                    on_progress(GenerateProgress(min(start + chunk, total), total))
        # move into place: old dataset (with --overwrite) out, new one in
        for split in SPLITS:
            target = out_dir / split
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging / split, target)
        manifest = out_dir / "manifest.csv"
        text = _io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["name", "split", "source_image", "x", "y", "size", "rotation", "resize"])
        writer.writerows(rows)
        write_bytes_atomic(manifest, text.getvalue().encode("utf-8"))
    except OSError as exc:
        raise ImageWriteError(f"cannot write the dataset ({exc.strerror or exc})", out_dir) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    n_test = sum(1 for w in kept if w.split == "test")
    return GenerateResult(out_dir, len(kept) - n_test, n_test, manifest,
                          n_dropped=len(windows) - len(kept), test_region=region)


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
    if not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        return sorted((Path(e.path) for e in entries
                       if e.is_file() and not e.name.startswith(".") and is_image_file(e.name)),
                      key=lambda p: p.name)


def open_dataset(root: str | Path) -> Dataset:
    """Scan ``root/{train,test}/{data,label}`` (no image is decoded)."""
    root = Path(root)
    if not root.exists():
        raise DatasetError("dataset folder not found", root)
    if not root.is_dir():
        raise DatasetError("is not a folder", root)
    if not any((root / split / "data").is_dir() for split in SPLITS):
        raise DatasetError("is not a dataset: expected train/data and/or test/data folders "
                           "(with label folders beside them), as `rooftop generate` writes "
                           "- the dataset is empty or this is another folder", root)
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
        raise DatasetError("empty dataset: no images in train/data or test/data", root)
    return dataset


def require_labels(samples: list[Sample], what: str) -> None:
    """DatasetError naming the first image that has no label."""
    missing = [s for s in samples if s.label_path is None]
    if missing:
        first = missing[0]
        more = f" ({len(missing)} images of the {what} have none)" if len(missing) > 1 else ""
        raise DatasetError(f"has no label: expected {first.image_path.parent.parent / 'label' / first.name}"
                           f"{more}", first.image_path)


def label_path_for(root: str | Path, split: str, image_name: str) -> Path:
    """Where the label of ``split/data/image_name`` lives (or will be created): same stem, .png."""
    return Path(root) / split / "label" / (Path(image_name).stem + ".png")
