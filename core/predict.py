"""Prediction: single images of any size, tiled with overlap and blended, and batch file output.

Tiling (:func:`predict_probabilities`, the row-of-tiles loop of :mod:`core.tiled_inference`,
which a windowed orthophoto runs too): the image is reflect-padded on the bottom/right so that
``tile`` x ``tile`` windows with a step of ``tile - overlap`` cover it exactly
(:func:`core.windows.plan_tiles`, a regular grid); the step is a multiple of the model's
``size_multiple`` so that every tile sees the same pooling grid as a whole-image pass would.
Each tile's probabilities are blended with a weight that is 0 within
``overlap / 4`` of an inner tile edge (where zero padding inside the network distorts the
output), rises linearly to 1 at ``3 * overlap / 4``, and is 1 on the image's own borders. So there
are no seams, the right and bottom edges are covered (the original dropped both), and away from
the borders the result equals a single whole-image pass when the model's receptive-field radius
is at most ``overlap / 4``.

Many images: :func:`predict_samples` yields one :class:`SamplePrediction` per image of a dataset
split (carrying on past an image that cannot be read); :mod:`core.predict_files` writes the
outputs of image and orthophoto files.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.device import resolve_device, resolve_precision
from core.errors import RooftopError
from core.ground_resolution import model_resolution, prediction_scale, sample_resolution
from core.input_stretch import apply_table, model_stretch, stretch
from core.io import (
    read_image,
    read_image_and_mask,
)
from core.progress import Progress, ProgressCallback, StopCheck, check_stop, report
from core.tiled_inference import (
    TileEngine,
    array_reader,
    check_tiling,
    forward,
    pad_image,
    stream_probabilities,
)


def predict_probabilities(
    model: torch.nn.Module,
    image: np.ndarray,
    tile: int = 512,
    overlap: int = 64,
    device: torch.device | str | None = None,
    batch_size: int = 4,
    tta: bool = False,
    should_stop: StopCheck | None = None,
    on_progress: ProgressCallback | None = None,
    precision: str = "auto",
    engine: TileEngine | None = None,
    stretch_table: np.ndarray | None = None,
    ground_resolution: float | None = None,
) -> np.ndarray:
    """Roof probability map ``(H, W) float32`` of an ``(H, W, 3) uint8`` image of any size.

    ``ground_resolution``: the image's, in cm per pixel; a model that records its own
    (:mod:`core.ground_resolution`) then sees the image resampled to it (None: as it is).

    ``engine`` (``core.onnx_export.OnnxEngine``) runs the tiles instead of torch.

    A model trained with an input stretch (:mod:`core.input_stretch`) sees the image stretched
    by ``stretch_table``: the table of the whole raster when ``image`` is a window of one
    (``core.input_stretch.raster_stretch_table``), else (None) the image's own.

    ``device``: where to run (None: the model's own device). ``precision``: ``auto`` runs the network in bfloat16 where the device computes it natively
    (core.device.resolve_precision; probabilities move by about 1e-3), ``fp32`` exactly.
    ``on_progress`` receives ``Progress(done, total, unit="tiles")`` after each batch of tiles
    (once, 1 of 1, for an image that fits one tile); ``should_stop`` is polled before each batch
    (Stopped, "prediction stopped")."""
    if device is None:  # where the model is
        device = next(model.parameters()).device
    elif not isinstance(device, torch.device):
        device = resolve_device(device)
    model.eval()
    amp_dtype = resolve_precision(precision, device, model)
    scale = prediction_scale(model_resolution(model), ground_resolution)
    image = model_input(model, image, stretch_table)
    h, w = image.shape[:2]
    out = np.empty((h, w), np.float32)
    # the same row-of-tiles loop as a windowed orthophoto (core.orthophoto), over the array
    for row, strip in stream_probabilities(
        model,
        array_reader(image),
        h,
        w,
        device,
        amp_dtype,
        tile=tile,
        overlap=overlap,
        batch_size=batch_size,
        tta=tta,
        should_stop=should_stop,
        on_progress=on_progress,
        prefetch=False,
        engine=engine,
        scale=scale,
    ):
        out[row : row + len(strip)] = strip
    return out


def image_resolution(source: Any, given: float | None, model: torch.nn.Module) -> float | None:
    """The ground resolution to predict an image at (``source``: its dataset sample or its file):
    its own (:func:`core.ground_resolution.sample_resolution`: a GeoTIFF's, the manifest's),
    else ``given`` (the user's ``--gsd``, for images without one), when the model records one
    (nothing is read for a model that does not), as the orthophoto paths do."""
    if model_resolution(model) is None:
        return given
    own = sample_resolution(source)
    return given if own is None else own


def model_input(
    model: torch.nn.Module, image: np.ndarray, stretch_table: np.ndarray | None = None
) -> np.ndarray:
    """``image`` as ``model`` expects it: stretched by ``stretch_table`` (or by its own table)
    when the model was trained with an input stretch, else unchanged."""
    if model_stretch(model) == "none":
        return image
    return apply_table(image, stretch_table) if stretch_table is not None else stretch(image)


def predict_whole(
    model: torch.nn.Module,
    image: np.ndarray,
    device: torch.device | str = "cpu",
    precision: str = "auto",
) -> np.ndarray:
    """One forward pass over the whole image (no tiling): the ceiling for speed, and the reference
    that tiled prediction is checked against."""
    device = resolve_device(device) if not isinstance(device, torch.device) else device
    multiple = getattr(model, "size_multiple", 1)
    h, w = image.shape[:2]
    ph, pw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    amp_dtype = resolve_precision(precision, device, model)
    image = model_input(model, image)
    return forward(model, pad_image(image, ph, pw)[None], device, False, amp_dtype)[0, :h, :w]


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplePrediction:
    """The prediction of one image of :func:`predict_samples`: its probability map, or the error
    that kept it from being read or predicted. ``label``: its mask, when asked for."""

    sample: Any
    prob: np.ndarray | None
    error: RooftopError | None = None
    label: np.ndarray | None = None


def predict_samples(
    model: torch.nn.Module,
    samples: Sequence[Any],
    tile: int = 512,
    overlap: int = 64,
    device: torch.device | str | None = None,
    batch_size: int = 4,
    tta: bool = False,
    precision: str = "auto",
    with_labels: bool = False,
    should_stop: StopCheck | None = None,
    on_progress: ProgressCallback | None = None,
    what: str = "prediction",
    ground_resolution: float | None = None,
) -> Iterator[SamplePrediction]:
    """Predict ``samples`` (``core.dataset.Sample``: anything with ``name`` and ``image_path``)
    one by one, yielding a :class:`SamplePrediction` for each, in order.

    An image that cannot be read or predicted (a RooftopError) is yielded with its ``error`` and
    the next one is predicted. ``with_labels``: each image is read with its label
    (``sample.label_path``, which must be the image's size: ``core.io.read_image_and_mask``),
    given as ``label``. ``on_progress`` receives ``Progress(done, total, item=name)`` before each
    image is yielded; ``should_stop`` is polled before each image and between batches of tiles
    (Stopped, "<what> stopped", ends the iteration). The tiling is checked before the first image.
    The arguments of the tiling are :func:`predict_probabilities`'s. Each image is seen at
    the model's ground resolution when both are known: the image's is ``ground_resolution``
    (cm per pixel, for every image) or else its georeferencing's
    (:func:`core.ground_resolution.file_resolution`).
    """
    check_tiling(tile, overlap, getattr(model, "size_multiple", 1))
    total = len(samples)
    for index, sample in enumerate(samples):
        check_stop(should_stop, what)
        label = None
        try:
            if with_labels:
                image, label = read_image_and_mask(sample.image_path, sample.label_path)
            else:
                image = read_image(sample.image_path)
            prob = predict_probabilities(
                model,
                image,
                tile=tile,
                overlap=overlap,
                device=device,
                batch_size=batch_size,
                tta=tta,
                should_stop=should_stop,
                precision=precision,
                ground_resolution=image_resolution(sample, ground_resolution, model),
            )
            result = SamplePrediction(sample, prob, None, label)
        except RooftopError as exc:
            result = SamplePrediction(sample, None, exc)
        report(on_progress, Progress(index + 1, total, sample.name))
        yield result


def bce_from_probabilities(prob: np.ndarray, truth: np.ndarray) -> float:
    """Summed binary cross-entropy of a probability map against a mask (for evaluation)."""
    p = torch.from_numpy(np.clip(prob, 1e-7, 1 - 1e-7))
    t = torch.from_numpy(truth.astype(np.float32))
    return float(F.binary_cross_entropy(p, t, reduction="sum"))
