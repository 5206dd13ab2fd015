"""Ground resolution: the size of a pixel on the ground, in cm, for models and images.

A model learns roofs at the scale of its training imagery: a house 30 px wide at 30 cm per pixel
is 8 px wide at 1.17 m. A model records the resolution it learnt at (``resolution_cm`` in its
checkpoint, from ``TrainConfig.ground_resolution_cm``, ``rooftop train --gsd``; Deepness's ``resolution`` metadata when
exported to ONNX), and every prediction path shows it an image resampled to that resolution
(:func:`core.tiled_inference.stream_probabilities` with ``scale``); the probabilities are
resampled back, so every output stays on the image's own grid.

An image's resolution comes from its georeferencing (a raster in a projected coordinate system:
the pixel size times the metres of its linear unit), from its dataset's manifest (``source_gsd_m``,
written by ``rooftop generate`` from a georeferenced orthophoto: a patch stands for its source) or from the user (``--gsd``, in m per pixel, for images without one).
Resolutions within :data:`SAME` of each other are taken as equal (no resampling), and a scale
beyond :data:`MAX_SCALE` either way is refused: it means a wrong resolution, not a model that
could see roofs there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError

#: Resolutions within 5 % of each other are the same: resampling by less only blurs.
SAME = 0.05
#: The most a prediction enlarges or shrinks an image to the model's resolution.
MAX_SCALE = 8.0
#: Suffixes of files whose georeferencing is read for their resolution (GeoTIFF and the like).
GEOREFERENCED_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")


def check_resolution(value: float | None, what: str) -> float | None:
    """``value`` (cm per pixel) if it is a positive finite number or None, else a ConfigError
    naming ``what`` (the option the user set)."""
    if value is None:
        return None
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{what} must be a positive ground sample distance, got {value}")
    return float(value)


def resolution_of_grid(crs: Any, transform: Any) -> float | None:
    """The ground resolution in cm of a raster's pixels (the geometric mean of their two sides),
    or None when it has no projected coordinate system (degrees are not a ground distance)."""
    if crs is None or not getattr(crs, "is_projected", False):
        return None
    try:
        metres_per_unit = float(crs.linear_units_factor[1])
    except (AttributeError, TypeError, ValueError, IndexError):  # a CRS without linear units
        return None
    width = math.hypot(transform.a, transform.d)
    height = math.hypot(transform.b, transform.e)
    if not (width > 0 and height > 0):
        return None
    return math.sqrt(width * height) * metres_per_unit * 100.0


def file_resolution(path: str | Path) -> float | None:
    """The ground resolution in cm of an image file that is georeferenced in a projected
    coordinate system (GeoTIFF and the like), else None (a PNG, an unreadable file: the reader
    that decodes it reports what is wrong)."""
    path = Path(path)
    if path.suffix.lower() not in GEOREFERENCED_SUFFIXES:
        return None
    try:
        import rasterio

        from core.raster import QuietGdal

        with QuietGdal(), rasterio.open(path) as src:
            return resolution_of_grid(src.crs, src.transform)
    except Exception:  # not readable as a raster here: decoding it says why, where it matters
        return None


def prediction_scale(
    model_resolution: float | None, image_resolution: float | None, image: Any = "the image"
) -> float:
    """How much to enlarge an image (> 1) or shrink it (< 1) so that the model sees it at its
    own resolution: 1.0 when either is unknown or they are within :data:`SAME`. A ConfigError
    naming ``image`` when the scale is beyond :data:`MAX_SCALE`."""
    if not model_resolution or not image_resolution:
        return 1.0
    scale = image_resolution / model_resolution
    if abs(scale - 1.0) <= SAME:
        return 1.0
    if not 1.0 / MAX_SCALE <= scale <= MAX_SCALE:
        raise ConfigError(
            f"{image}: its ground resolution ({image_resolution:.1f} cm per pixel) is "
            f"{max(scale, 1 / scale):.1f} times {'coarser' if scale > 1 else 'finer'} than the "
            f"model's ({model_resolution:.1f} cm); at most {MAX_SCALE:g} times is resampled. "
            "Check the image's georeferencing or --gsd, or train a model on such imagery"
        )
    return scale


def model_resolution(model: Any) -> float | None:
    """The ground resolution a model learnt at (``ground_resolution_cm`` on the model, set from
    its checkpoint by :func:`core.checkpoint.load_checkpoint`; None: unknown)."""
    return getattr(model, "ground_resolution_cm", None)


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """``(width, height)`` of an image resized by ``scale`` (at least 1 px a side)."""
    return max(1, round(width * scale)), max(1, round(height * scale))


def resample_pair(
    image: np.ndarray, mask: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """An image and its mask (bool, or uint8 codes) resized by ``scale``: the image with
    Pillow's antialiased bilinear filter, a bool mask bilinearly and thresholded at one half (so
    a roof's outline stays smooth), codes by nearest neighbour."""
    from PIL import Image

    h, w = image.shape[:2]
    size = scaled_size(w, h, scale)
    resized = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.BILINEAR))
    if mask.dtype == bool:
        soft = Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.BILINEAR)
        return resized, np.asarray(soft) >= 128
    return resized, np.asarray(
        Image.fromarray(np.ascontiguousarray(mask)).resize(size, Image.NEAREST)
    )


def sample_resolution(source: Any) -> float | None:
    """The ground resolution in cm of an image: a dataset sample's from the dataset's manifest
    (``Sample.ground_resolution_cm``, written by ``rooftop generate``), else its file's
    georeferencing (``source`` a sample or a path; None when neither gives one)."""
    known = getattr(source, "ground_resolution_cm", None)
    if known:
        return float(known)
    return file_resolution(getattr(source, "image_path", source))


def finest_resolution(sources: Iterable[Any]) -> float | None:
    """The finest ground resolution among images (samples or paths, :func:`sample_resolution`;
    None when none has one): a model trained at it shrinks none of its training images."""
    found = [r for r in map(sample_resolution, sources) if r is not None]
    return round(min(found), 2) if found else None
