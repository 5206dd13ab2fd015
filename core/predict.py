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
split (carrying on past an image that cannot be read), :func:`predict_files` writes the masks (and
composites) of image files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.checkpoint import LoadedModel, load_checkpoint
from core.device import resolve_device, resolve_precision
from core.errors import ConfigError, ImageReadError, RooftopError
from core.export import composite, composite_path, mask_path
from core.io import (
    ensure_folder,
    is_image_file,
    list_images,
    read_image,
    read_image_and_mask,
    read_mask,
    write_image,
    write_mask,
)
from core.postprocess import check_kernel, check_threshold, to_mask
from core.progress import Progress, ProgressCallback, StopCheck, check_stop, report
from core.tiled_inference import (
    array_reader,
    check_tiling,
    forward,
    pad_image,
    stream_probabilities,
)


def predict_probabilities(model: torch.nn.Module, image: np.ndarray, tile: int = 512, overlap: int = 64,
                          device: torch.device | str | None = None, batch_size: int = 4,
                          tta: bool = False, should_stop: StopCheck | None = None,
                          on_progress: ProgressCallback | None = None,
                          precision: str = "auto") -> np.ndarray:
    """Roof probability map ``(H, W) float32`` of an ``(H, W, 3) uint8`` image of any size.

    ``precision``: ``auto`` runs the network in bfloat16 where the device computes it natively
    (core.device.resolve_precision; probabilities move by about 1e-3), ``fp32`` exactly.
    ``on_progress`` receives ``Progress(done, total, unit="tiles")`` after each batch of tiles
    (once, 1 of 1, for an image that fits one tile); ``should_stop`` is polled before each batch
    (Stopped, "prediction stopped")."""
    device = resolve_device(device) if not isinstance(device, torch.device) else device
    if device is None:
        device = next(model.parameters()).device
    model.eval()
    amp_dtype = resolve_precision(precision, device, model)
    h, w = image.shape[:2]
    out = np.empty((h, w), np.float32)
    # the same row-of-tiles loop as a windowed orthophoto (core.orthophoto), over the array
    for row, strip in stream_probabilities(model, array_reader(image), h, w, device, amp_dtype,
                                           tile=tile, overlap=overlap, batch_size=batch_size,
                                           tta=tta, should_stop=should_stop,
                                           on_progress=on_progress, prefetch=False):
        out[row:row + len(strip)] = strip
    return out


def predict_whole(model: torch.nn.Module, image: np.ndarray, device: torch.device | str = "cpu",
                  precision: str = "auto") -> np.ndarray:
    """One forward pass over the whole image (no tiling): the ceiling for speed, and the reference
    that tiled prediction is checked against."""
    device = resolve_device(device) if not isinstance(device, torch.device) else device
    multiple = getattr(model, "size_multiple", 1)
    h, w = image.shape[:2]
    ph, pw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    amp_dtype = resolve_precision(precision, device, model)
    return forward(model, pad_image(image, ph, pw)[None], device, False, amp_dtype)[0, :h, :w]


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------

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
                raise ImageReadError("not an image file name (expected one of .png .jpg .tif ...)", path)
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
            candidates += [parent.parent / there / image_path.name,
                           parent.parent / there / (image_path.stem + ".png")]
    candidates += [parent / f"{image_path.stem}_{suffix}.png" for suffix in ("mask", "label", "labels")]
    if image_path.stem == "image":  # the original's image.tif + labels.tif, and `rooftop demo`
        candidates += [parent / f"{name}{suffix}" for name in ("labels", "label", "mask")
                       for suffix in (".png", ".tif", ".tiff")]
    return next((c for c in candidates if c.is_file() and c != image_path), None)


@dataclass(frozen=True)
class SamplePrediction:
    """The prediction of one image of :func:`predict_samples`: its probability map, or the error
    that kept it from being read or predicted. ``label``: its mask, when asked for."""

    sample: Any
    prob: np.ndarray | None
    error: RooftopError | None = None
    label: np.ndarray | None = None


def predict_samples(model: torch.nn.Module, samples: Sequence[Any], tile: int = 512,
                    overlap: int = 64, device: torch.device | str | None = None,
                    batch_size: int = 4, tta: bool = False, precision: str = "auto",
                    with_labels: bool = False, should_stop: StopCheck | None = None,
                    on_progress: ProgressCallback | None = None,
                    what: str = "prediction") -> Iterator[SamplePrediction]:
    """Predict ``samples`` (``core.dataset.Sample``: anything with ``name`` and ``image_path``)
    one by one, yielding a :class:`SamplePrediction` for each, in order.

    An image that cannot be read or predicted (a RooftopError) is yielded with its ``error`` and
    the next one is predicted. ``with_labels``: each image is read with its label
    (``sample.label_path``, which must be the image's size: ``core.io.read_image_and_mask``),
    given as ``label``. ``on_progress`` receives ``Progress(done, total, item=name)`` before each
    image is yielded; ``should_stop`` is polled before each image and between batches of tiles
    (Stopped, "<what> stopped", ends the iteration). The tiling is checked before the first image.
    The arguments of the tiling are :func:`predict_probabilities`'s.
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
            prob = predict_probabilities(model, image, tile=tile, overlap=overlap, device=device,
                                         batch_size=batch_size, tta=tta, should_stop=should_stop,
                                         precision=precision)
            result = SamplePrediction(sample, prob, None, label)
        except RooftopError as exc:
            result = SamplePrediction(sample, None, exc)
        report(on_progress, Progress(index + 1, total, sample.name))
        yield result


@dataclass(frozen=True)
class PredictedFile:
    source: Path
    mask_path: Path
    composite_path: Path | None
    roof_fraction: float


def predict_files(model: str | Path | LoadedModel, inputs: Iterable[str | Path], out_dir: str | Path,
                  threshold: float | None = None, dilation: int = 0, tile: int = 512, overlap: int = 64,
                  composite_output: bool = False, device: str = "auto", tta: bool = False,
                  on_progress: ProgressCallback | None = None,
                  should_stop: StopCheck | None = None,
                  precision: str = "auto") -> list[PredictedFile]:
    """Predict every input image and write ``out_dir/<name>.png`` (0/255) and optional composites
    (``<name>_composite.png``, ``core.export.mask_path`` and ``composite_path``).

    ``on_progress`` receives ``Progress(done, total, item=<the input's path>, unit="files")``
    after each file; ``should_stop`` is polled before each file and between batches of tiles
    (Stopped, "prediction stopped"). An unreadable input is an error (nothing after it is
    written)."""
    dilation = check_kernel(dilation)
    files = collect_inputs(inputs)
    torch_device = resolve_device(device)
    loaded = model if isinstance(model, LoadedModel) else load_checkpoint(model, device=torch_device)
    loaded.model.to(torch_device)
    threshold = check_threshold(loaded.threshold if threshold is None else threshold)
    resolve_precision(precision, torch_device)  # a bad choice fails before any output is written
    check_tiling(tile, overlap, getattr(loaded.model, "size_multiple", 1))
    out_dir = ensure_folder(out_dir)
    outputs: dict[Path, Path] = {}
    sources = {f.resolve() for f in files}
    for source in files:
        target = mask_path(out_dir, source.name)
        if target in outputs:
            raise ConfigError(f"two inputs would both be written to {target}: {outputs[target]} and "
                              f"{source}; predict them into separate folders")
        if target.resolve() in sources:
            raise ConfigError(f"the output {target} would overwrite an input image; choose another --out")
        outputs[target] = source
    results = []
    for index, (target, source) in enumerate(outputs.items()):
        check_stop(should_stop, "prediction")
        image = read_image(source)
        prob = predict_probabilities(loaded.model, image, tile=tile, overlap=overlap,
                                     device=torch_device, tta=tta, should_stop=should_stop,
                                     precision=precision)
        mask = to_mask(prob, threshold, dilation)
        write_mask(target, mask)
        picture_path = None
        if composite_output:
            label_path = find_label_for(source)
            label = read_mask(label_path) if label_path is not None else None
            if label is not None and label.shape != mask.shape:
                raise ImageReadError(f"label is {label.shape[1]} x {label.shape[0]} but the image is "
                                     f"{mask.shape[1]} x {mask.shape[0]}", label_path)
            picture_path = composite_path(out_dir, source.name)
            write_image(picture_path, composite(image, label, mask))
        results.append(PredictedFile(source, target, picture_path, float(mask.mean())))
        report(on_progress, Progress(index + 1, len(outputs), str(source), unit="files"))
    return results


def bce_from_probabilities(prob: np.ndarray, truth: np.ndarray) -> float:
    """Summed binary cross-entropy of a probability map against a mask (for evaluation)."""
    p = torch.from_numpy(np.clip(prob, 1e-7, 1 - 1e-7))
    t = torch.from_numpy(truth.astype(np.float32))
    return float(F.binary_cross_entropy(p, t, reduction="sum"))
