"""Loose images as a dataset: open one image, several, or a folder of them without generating
patches, to view, predict, export and label them (torch-free).

:func:`open_images` returns a :class:`core.dataset.Dataset` whose root is the images' common
folder and whose ``test`` split holds the images (so the window's Predict split, export and
metrics work on them); each image's label is the mask found beside it (:func:`find_label_for`:
``X_label.png``, ``X_mask.png``, ``label/X`` of a ``data/`` folder...) or, when there is none,
``X_label.png`` beside it, created when the user saves a painted label.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from core.dataset import Dataset, Sample
from core.errors import ConfigError, ImageReadError
from core.io import is_image_file, list_images

#: Name endings of mask files, which are not listed as images of a folder.
MASK_SUFFIXES = ("_mask", "_label", "_labels")


def collect_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand INPUT arguments (files or folders of images) into a list of image files."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = list_images(path)
            if not found:
                raise ImageReadError("folder holds no images (.png, .jpg, .tif, ...)", path)
            files.extend(found)
        elif path.exists():
            if not is_image_file(path):
                raise ImageReadError(
                    "not an image file name (expected one of .png .jpg .tif ...)", path
                )
            files.append(path)
        else:
            raise ImageReadError("file not found", path)
    if not files:
        raise ImageReadError("no input images given")
    return files


def find_label_for(image_path: Path) -> Path | None:
    """A mask that belongs to an image, if one is found: ``data/X`` -> ``label/X`` (the dataset
    layout), ``images/X`` -> ``masks/X``, or ``X_mask.png`` / ``X_label.png`` beside it."""
    candidates = []
    parent = image_path.parent
    for here, there in (("data", "label"), ("images", "masks"), ("image", "label")):
        if parent.name == here:
            candidates += [
                parent.parent / there / image_path.name,
                parent.parent / there / (image_path.stem + ".png"),
            ]
    candidates += [
        parent / f"{image_path.stem}_{suffix}.png" for suffix in ("mask", "label", "labels")
    ]
    if image_path.stem == "image":  # the original's image.tif + labels.tif, and `rooftop demo`
        candidates += [
            parent / f"{name}{suffix}"
            for name in ("labels", "label", "mask")
            for suffix in (".png", ".tif", ".tiff")
        ]
    return next((c for c in candidates if c.is_file() and c != image_path), None)


def new_label_path(image_path: Path) -> Path:
    """Where a label painted for a loose image is saved: ``X_label.png`` beside it."""
    return image_path.with_name(f"{image_path.stem}_label.png")


def _is_mask_name(path: Path) -> bool:
    return path.stem.lower().endswith(MASK_SUFFIXES) or path.stem.lower() in (
        "labels",
        "label",
        "mask",
    )


def open_images(inputs: Iterable[str | Path]) -> Dataset:
    """The images of ``inputs`` (files, or folders whose mask files are left out) as a dataset
    (see the module docstring). Two images of the same name from different folders, or no image
    at all, are a clear error."""
    inputs = [Path(p) for p in inputs]
    files = []
    for path in inputs:
        found = collect_inputs([path])
        files.extend(f for f in found if not (path.is_dir() and _is_mask_name(f)))
    if not files:
        raise ImageReadError("holds only mask files, no images", inputs[0])
    files = list(dict.fromkeys(f.resolve() for f in files))
    by_name: dict[str, Path] = {}
    for file in files:
        if file.name in by_name:
            raise ConfigError(
                f"two images are called {file.name}: {by_name[file.name]} and "
                f"{file}; open them separately"
            )
        by_name[file.name] = file
    root = Path(os.path.commonpath([str(f.parent) for f in files]))
    samples = [
        Sample(f.name, "test", f, find_label_for(f) or new_label_path(f))
        for f in sorted(files, key=lambda p: p.name)
    ]
    return Dataset(root=root, test=samples)
