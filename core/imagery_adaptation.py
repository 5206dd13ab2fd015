"""A model adapted to the imagery it is about to predict (``rooftop predict --adapt``,
``rooftop evaluate --adapt``): its batch-norm statistics re-estimated on a sample of those images
(:mod:`core.batch_norm_adaptation`), half and half with the ones it learnt.

The sample is what prediction will see: image files are read whole, spread over the list, until
:data:`SAMPLE_PIXELS` are taken; an orthophoto gives windows on an even grid over it (those at
least :data:`MIN_VALID` valid), each of the side that becomes one tile at the model's ground
resolution. Every sample then passes through :func:`core.predict.predict_probabilities`, so it is
stretched, resampled and tiled exactly as the prediction that follows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.batch_norm_adaptation import adapt_batch_norm
from core.errors import ConfigError
from core.ground_resolution import (
    model_resolution,
    prediction_scale,
    resolution_of_grid,
)
from core.input_stretch import model_stretch, raster_stretch_table
from core.io import image_size, read_image
from core.predict import image_resolution, predict_probabilities

#: The share of the imagery's statistics in the adapted model (the rest: the training's).
#: Measured in docs/model-quality.md ("adapting to the imagery"): half and half held up better
#: than the imagery's statistics alone, most of all on the subsets that gained nothing.
ADAPTATION_WEIGHT = 0.5
#: At most this many pixels of the imagery are run to estimate the statistics (16 tiles of
#: 512 px): enough for stable statistics, a small share of a town's orthophoto.
SAMPLE_PIXELS = 16 * 512 * 512
#: An orthophoto's window is sampled only when at least this share of its pixels is valid.
MIN_VALID = 0.9


@dataclass(frozen=True)
class ImagerySample:
    """One piece of the imagery: the pixels as read, their ground resolution (cm per pixel,
    None: unknown) and the stretch table of the raster they come from (None: their own)."""

    image: np.ndarray
    ground_resolution: float | None = None
    stretch_table: np.ndarray | None = None


def adapted_model(
    model: torch.nn.Module,
    samples: Sequence[ImagerySample],
    *,
    device: torch.device | str | None = None,
    tile: int = 512,
    overlap: int = 64,
    precision: str = "auto",
    weight: float = ADAPTATION_WEIGHT,
) -> torch.nn.Module:
    """A copy of ``model`` whose batch-norm statistics are ``weight`` x those of ``samples``
    (predicted with these tiling arguments) + the rest of its own. ConfigError with no samples."""
    if not samples:
        raise ConfigError("--adapt: there is no imagery to adapt the model to")

    def run(copy: torch.nn.Module) -> None:
        for sample in samples:
            predict_probabilities(
                copy,
                sample.image,
                tile=tile,
                overlap=overlap,
                device=device,
                precision=precision,
                stretch_table=sample.stretch_table,
                ground_resolution=sample.ground_resolution,
            )

    return adapt_batch_norm(model, run, weight)


def spread(count: int) -> list[int]:
    """``0 .. count - 1`` in an order that covers the range evenly from the start (0, the
    middle, the quarters, ...): a prefix of it is a fair sample of a list."""
    order: list[int] = []
    seen: set[int] = set()
    step = 1 << max(0, math.ceil(math.log2(max(count, 1))))
    while step >= 1 and len(order) < count:
        for i in range(0, count, step):
            if i not in seen:
                seen.add(i)
                order.append(i)
        step //= 2
    return order


def image_samples(
    sources: Sequence[Any],
    model: torch.nn.Module,
    given_resolution: float | None = None,
    pixels: int = SAMPLE_PIXELS,
) -> list[ImagerySample]:
    """Whole images of ``sources`` (image files, or dataset samples, whose manifest may give
    their ground resolution), spread over the list, until ``pixels`` are taken (at least one
    image). ``given_resolution``: cm per pixel of those without their own."""
    samples: list[ImagerySample] = []
    taken = 0
    for index in spread(len(sources)):
        path = getattr(sources[index], "image_path", sources[index])
        width, height = image_size(path)
        if samples and taken + width * height > pixels:
            continue
        resolution = image_resolution(sources[index], given_resolution, model)
        samples.append(ImagerySample(read_image(path), resolution))
        taken += width * height
    return samples


def raster_samples(
    path: str | Path,
    model: torch.nn.Module,
    bands: Sequence[int] | None = None,
    given_resolution: float | None = None,
    tile: int = 512,
    pixels: int = SAMPLE_PIXELS,
) -> list[ImagerySample]:
    """Windows of the orthophoto at ``path`` on an even grid, each of the side that becomes one
    ``tile`` at the model's ground resolution, at most ``pixels`` in all, those at least
    :data:`MIN_VALID` valid. ``given_resolution``: cm per pixel when the raster gives none."""
    from core.raster import open_raster

    with open_raster(path, bands) as source:
        own = resolution_of_grid(source.crs, source.transform)
        resolution = own or given_resolution
        scale = prediction_scale(model_resolution(model), resolution, source.path)
        side = max(1, min(round(tile / scale), source.width, source.height))
        count = max(1, pixels // (side * side))
        per_axis = max(1, math.isqrt(count))
        table = None
        if model_stretch(model) != "none":
            table = raster_stretch_table(source.path, source.bands, source=source)
        samples = []
        for row in _grid(source.height, side, per_axis):
            for col in _grid(source.width, side, per_axis):
                rgb, valid = source.read_window(row, col, side, side, boundless=False)
                if valid.mean() >= MIN_VALID:
                    samples.append(ImagerySample(rgb, resolution, table))
    return samples


def _grid(length: int, side: int, count: int) -> list[int]:
    """``count`` window offsets spread evenly over ``length`` (windows of ``side``), each once."""
    last = length - side
    if count == 1:
        return [last // 2]
    return sorted({round(last * i / (count - 1)) for i in range(count)})
