"""Evaluation of a model on a dataset split: metrics summed over the whole split.

The images are predicted by ``core.predict.predict_samples`` (each read with its label) and scored
as the window scores a predicted split (a ``core.metrics.Confusion`` per image, summed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.checkpoint import LoadedModel, load_checkpoint
from core.dataset import open_dataset, require_labels
from core.device import resolve_device
from core.errors import ConfigError, DatasetError
from core.ground_resolution import check_resolution
from core.metrics import Confusion
from core.postprocess import check_kernel, check_threshold, to_mask
from core.predict import bce_from_probabilities, predict_samples
from core.progress import ProgressCallback, StopCheck


@dataclass(frozen=True)
class ImageScore:
    name: str
    iou: float
    confusion: Confusion


@dataclass
class EvaluationResult:
    split: str
    model: Path
    threshold: float
    dilation: int
    images: int
    confusion: Confusion
    loss: float
    per_image: list[ImageScore]
    adapted: bool = False  # batch-norm statistics adapted to the split's images (--adapt)

    @property
    def metrics(self) -> dict[str, float]:
        return {**self.confusion.scores(), "loss": self.loss}

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.metrics,
            "split": self.split,
            "model": str(self.model),
            "images": self.images,
            "threshold": self.threshold,
            "dilation": self.dilation,
            "adapted": self.adapted,
            "tp": self.confusion.tp,
            "fp": self.confusion.fp,
            "fn": self.confusion.fn,
            "tn": self.confusion.tn,
        }


def evaluate(
    dataset_dir: str | Path,
    model: str | Path | LoadedModel,
    split: str = "test",
    threshold: float | None = None,
    dilation: int = 0,
    device: str = "auto",
    tile: int = 512,
    overlap: int = 64,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    precision: str = "auto",
    gsd: float | None = None,
    adapt: bool = False,
) -> EvaluationResult:
    """Loss (mean per-pixel BCE), IoU, F1, precision, recall and accuracy over a whole split.

    ``on_progress`` receives ``Progress(done, total, item=<image name>)`` after each image;
    ``should_stop`` is polled before each image and between batches of tiles (Stopped,
    "evaluation stopped"). An image or label that cannot be read is an error.

    ``gsd`` (m per pixel): the images' ground sample distance where their georeferencing gives
    none; a model that records its ground resolution sees each image resampled to it
    (:mod:`core.ground_resolution`), and is scored on the image's own grid.

    ``adapt``: predict with the model's batch-norm statistics adapted to the split's images
    (:mod:`core.imagery_adaptation`), as ``rooftop predict --adapt`` predicts a new town."""
    if split not in ("train", "test"):
        raise ConfigError(f"--split must be train or test, got {split!r}")
    dilation = check_kernel(dilation)
    dataset = open_dataset(dataset_dir)
    samples = dataset.samples(split)
    if not samples:
        raise DatasetError(f"the {split} split has no images", Path(dataset_dir) / split / "data")
    require_labels(samples, f"{split} split")
    torch_device = resolve_device(device)
    loaded = (
        model if isinstance(model, LoadedModel) else load_checkpoint(model, device=torch_device)
    )
    loaded.model.to(torch_device)
    threshold = check_threshold(loaded.threshold if threshold is None else threshold)
    given = None if gsd is None else check_resolution(gsd, "--gsd") * 100.0
    model = loaded.model
    if adapt:
        from core.imagery_adaptation import adapted_model, image_samples

        taken = image_samples(samples, model, given)
        model = adapted_model(
            model, taken, device=torch_device, tile=tile, overlap=overlap, precision=precision
        )
    total, loss_sum, pixels, scores = Confusion(), 0.0, 0, []
    for result in predict_samples(
        model,
        samples,
        tile=tile,
        overlap=overlap,
        device=torch_device,
        precision=precision,
        with_labels=True,
        should_stop=should_stop,
        on_progress=on_progress,
        what="evaluation",
        ground_resolution=given,
    ):
        if result.error is not None:
            raise result.error
        prob, truth, sample = result.prob, result.label, result.sample
        confusion = Confusion.from_masks(to_mask(prob, threshold, dilation), truth)
        total = total + confusion
        loss_sum += bce_from_probabilities(prob, truth)
        pixels += truth.size
        scores.append(ImageScore(sample.name, confusion.iou, confusion))
    return EvaluationResult(
        split=split,
        model=loaded.path,
        threshold=threshold,
        dilation=dilation,
        images=len(samples),
        confusion=total,
        loss=loss_sum / max(pixels, 1),
        per_image=scores,
        adapted=adapt,
    )
