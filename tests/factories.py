"""The one place that writes test data: datasets on disk and untrained models.

Plain functions (the fixtures of tests/conftest.py call them); no test module imports another,
they import from here. torch is imported only by :func:`save_untrained_model`, so a test that
checks what the GUI imports can use the dataset writer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

#: Draws one sample: ``draw(rng, size) -> (RGB uint8 image, 0/255 uint8 mask)``.
Draw = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]


def one_square(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise with one roof: a square of a third of the side, coloured (200, 80, 60)."""
    image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    y, x = rng.integers(0, size // 2, 2)
    mask[y : y + size // 3, x : x + size // 3] = 255
    image[mask > 0] = (200, 80, 60)
    return image, mask


def bright_squares(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Three bright rectangles (roof) on a dark noisy ground: a tiny model learns it in a few
    epochs (the training tests' learning thresholds are set on it)."""
    mask = np.zeros((size, size), bool)
    for _ in range(3):
        y, x = rng.integers(0, size - 16, 2)
        mask[y : y + int(rng.integers(8, 16)), x : x + int(rng.integers(8, 16))] = True
    image = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
    image[mask] = rng.integers(180, 256, (int(mask.sum()), 3)).astype(np.uint8)
    return image, mask.astype(np.uint8) * 255


def write_dataset(
    root: Path,
    n_train: int = 6,
    n_test: int = 3,
    size: int = 64,
    with_labels: bool = True,
    seed: int = 0,
    draw: Draw = one_square,
    with_strokes: bool | str = False,
    stroke_fraction: float = 0.05,
) -> Path:
    """``root/{train,test}/{data,label}/NNNNN.png``, numbered on across the splits (6 train + 3
    test: train 00000-00005, test 00006-00008); both folders of both splits exist even when a
    split has no image. Without labels the label folders are empty. Same arguments, same pixels.

    ``with_strokes``: also ``<split>/scribble/NNNNN.png``, strokes simulated from the true mask
    (:func:`core.scribbles.simulate_strokes`, at most ``stroke_fraction`` of the pixels); True
    for both splits, ``"train"`` for the train split only.
    """
    rng = np.random.default_rng(seed)
    index = 0
    for split, count in (("train", n_train), ("test", n_test)):
        (root / split / "data").mkdir(parents=True, exist_ok=True)
        (root / split / "label").mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            name = f"{index:05d}.png"
            image, mask = draw(rng, size)
            Image.fromarray(image).save(root / split / "data" / name)
            if with_labels:
                Image.fromarray(mask).save(root / split / "label" / name)
            if with_strokes is True or with_strokes == split:
                from core.scribbles import scribble_path_for, simulate_strokes, write_scribble

                codes = simulate_strokes(
                    mask > 0,
                    index,
                    max_fraction=stroke_fraction,
                    roof_strokes=3,
                    background_strokes=3,
                    radius=1.5,
                    length=size / 4,
                    margin=2.5,
                    per_area=None,
                )
                target = scribble_path_for(root, split, name)
                target.parent.mkdir(parents=True, exist_ok=True)
                write_scribble(target, codes)
            index += 1
    return root


def save_untrained_model(
    folder: Path,
    arch: str = "prescribed",
    metadata: dict | None = None,
    name: str = "model_v1.safetensors",
    **arch_params,
) -> Path:
    """An untrained model (weights seeded with 0) saved as ``folder/models/<name>``, the models
    folder of a dataset at ``folder``; returns its path."""
    import torch

    from core.checkpoint import save_checkpoint
    from core.models import build_model

    torch.manual_seed(0)
    models = folder / "models"
    models.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(models / name, build_model(arch, **arch_params), metadata or {})


def save_prescribed_model(folder: Path, metadata: dict) -> Path:
    """``save_untrained_model(folder, "prescribed", metadata)`` (the name tests/gui/test_rescore.py
    and test_prediction.py call it by)."""
    return save_untrained_model(folder, "prescribed", metadata)


class FakeClock:
    """``time.monotonic`` that advances a fixed step per call, so a budget ends after a known
    number of clock reads whatever the machine's speed."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 1000.0, step

    def monotonic(self) -> float:
        self.now += self.step
        return self.now


def tiny_train_config(**overrides):
    """A ``TrainConfig`` that trains a tiny ``liteunet`` on 64 px crops in a second or two (the
    datasets of :func:`write_dataset`); ``overrides`` replace its fields."""
    from core.training.config import TrainConfig

    fields = dict(
        arch="liteunet",
        arch_params={"width": 8, "depth": 2},
        epochs=3,
        batch_size=4,
        lr=1e-2,
        loss="bce+dice",
        crop_size=64,
        samples_per_epoch=8,
        val_fraction=0.25,
        device="cpu",
        seed=0,
        tune_threshold=True,
    )
    fields.update(overrides)
    return TrainConfig(**fields)


def write_geotiff(path: Path, image: np.ndarray, pixel_m: float, crs: str | None = "EPSG:32633"):
    """An RGB (or one-band) uint8 GeoTIFF at ``path`` with square pixels of ``pixel_m`` map
    units (metres in the default UTM zone; ``crs=None``: a geotransform without a CRS)."""
    import rasterio
    from rasterio.transform import Affine

    bands = image[..., None] if image.ndim == 2 else image
    h, w, count = bands.shape
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=count,
        dtype="uint8",
        crs=crs,
        transform=Affine(pixel_m, 0.0, 500_000.0, 0.0, -pixel_m, 5_800_000.0),
    ) as dst:
        dst.write(np.moveaxis(bands, -1, 0))
    return path


def write_geotiff_dataset(root: Path, pixel_sizes: list[float], size: int = 64) -> Path:
    """``root/train/{data,label}/tN.tif``: :func:`bright_squares` tiles as GeoTIFFs with pixels
    of the given sizes (m), their masks beside them under the same names; an empty test split."""
    rng = np.random.default_rng(0)
    for index, pixel in enumerate(pixel_sizes):
        image, mask = bright_squares(rng, size)
        write_geotiff(root / "train" / "data" / f"t{index}.tif", image, pixel)
        (root / "train" / "label").mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(root / "train" / "label" / f"t{index}.tif")
    (root / "test" / "data").mkdir(parents=True, exist_ok=True)
    return root
