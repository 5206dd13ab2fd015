"""Datasets: the folder layout and reading it (torch-free and Qt-free).

Layout (the original exercise's, kept)::

    DATASET/train/data/NNNNN.png   DATASET/train/label/NNNNN.png
    DATASET/test/data/NNNNN.png    DATASET/test/label/NNNNN.png
    DATASET/manifest.csv           (written by core.generate: where each patch was cut)
    DATASET/train/scribble/NNNNN.png  (optional strokes, a partial label: core.scribbles)

An image's label has its file name (or its stem with ``.png``); labels are single-channel 0/255
PNGs. :func:`open_dataset` scans the folders without decoding an image. Patch generation is in
``core.generate``, its spatial train/test split in ``core.spatial_split``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.errors import ConfigError, DatasetError
from core.io import is_image_file, is_temp_file_name, remove_stale_temp_files

SPLITS = ("train", "test")
#: The folder of stroke files (the value of ``core.scribbles.FOLDER``).
SCRIBBLE_FOLDER = "scribble"


@dataclass(frozen=True)
class Sample:
    name: str
    split: str
    image_path: Path
    label_path: Path | None
    #: The strokes (partial label, :mod:`core.scribbles`): ``<split>/scribble/NAME.png``.
    scribble_path: Path | None = None
    #: The ground resolution in cm per pixel of the imagery it stands for, when the dataset's
    #: ``manifest.csv`` gives it: the ``source_gsd_m`` of the orthophoto ``rooftop generate`` cut
    #: it from (a patch generate enlarged or shrunk is that source's scale augmentation, so it
    #: is taken at the source's resolution; :mod:`core.ground_resolution`).
    ground_resolution_cm: float | None = None

    @property
    def partly_labelled(self) -> bool:
        """Strokes but no full label: training learns from its painted pixels only."""
        return self.label_path is None and self.scribble_path is not None


@dataclass
class Dataset:
    root: Path
    train: list[Sample] = field(default_factory=list)
    test: list[Sample] = field(default_factory=list)
    orphan_labels: list[Path] = field(default_factory=list)
    orphan_scribbles: list[Path] = field(default_factory=list)

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


_LAYOUT = (
    "expected a dataset folder holding train/data and/or test/data (images) with "
    "train/label and test/label (masks of the same names) beside them, as "
    "`rooftop generate` writes"
)


#: The file ``rooftop generate`` writes beside the splits (core.generate.MANIFEST_NAME).
MANIFEST = "manifest.csv"
#: The manifest column of the source image's ground sample distance in m per pixel.
COLUMN = "source_gsd_m"


def manifest_resolutions(root: Path) -> dict[str, float]:
    """Ground resolution (cm per pixel) by image name from ``root/manifest.csv``'s
    ``source_gsd_m`` column ({} without the file, the column or a value); a DatasetError naming the manifest for
    a value that is not a positive number."""
    path = root / MANIFEST
    try:
        stat = path.stat()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise DatasetError(f"cannot read the manifest ({exc.strerror or exc})", path) from exc
    # read once per version of the file: the browser opens the dataset often
    return dict(_read_resolutions(str(path), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _read_resolutions(name: str, _mtime_ns: int, _size: int) -> tuple[tuple[str, float], ...]:
    import csv

    path = Path(name)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or COLUMN not in reader.fieldnames:
                return ()
            found: dict[str, float] = {}
            for line, row in enumerate(reader, start=2):
                text = (row.get(COLUMN) or "").strip()
                if not text:
                    continue
                try:
                    value = float(text)
                except ValueError:
                    value = float("nan")
                if not value > 0 or value == float("inf"):
                    raise DatasetError(
                        f"line {line}: {COLUMN} must be a positive number of m per pixel, got {text!r}",
                        path,
                    )
                found[row.get("name", "")] = value * 100.0
            return tuple(found.items())
    except FileNotFoundError:
        return ()
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read the manifest ({exc})", path) from exc


def open_dataset(root: str | Path) -> Dataset:
    """Scan ``root/{train,test}/{data,label,scribble}`` (no image is decoded).

    A sample's ``scribble_path`` is ``<split>/scribble/<stem>.png`` when that file exists
    (:func:`core.scribbles.scribble_path_for`); stroke files of no image are
    ``orphan_scribbles``.

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
    resolutions: dict[str, float] | None = None
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
        scribbles = {
            p.stem: p for p in _scan(root / split / SCRIBBLE_FOLDER) if p.suffix.lower() == ".png"
        }
        if scribbles:
            samples = [
                replace(s, scribble_path=scribbles.pop(Path(s.name).stem, None)) for s in samples
            ]
            dataset.orphan_scribbles.extend(sorted(scribbles.values()))
        if resolutions is None:
            resolutions = manifest_resolutions(root)
        if resolutions:
            samples = [
                replace(s, ground_resolution_cm=resolutions.get(s.name))
                if s.name in resolutions
                else s
                for s in samples
            ]
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
            f"the {what} have no label - paint them or remove the images",
            first.image_path,
        )


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


__all__ = ["SPLITS", "Dataset", "Sample", "label_path_for", "open_dataset", "require_labels"]
