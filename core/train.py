"""Training: the loop, losses, augmentation, validation, time limits, cancellation, checkpoints.

``train(dataset_dir, models_dir, config, on_progress, should_stop)`` is the single entry point the
CLI and the GUI call. It reports :class:`BatchProgress` after every batch and :class:`EpochResult`
after every epoch through ``on_progress``, checks ``should_stop()`` between batches, and always
saves the model it has when it stops (finished, time limit, or stopped by the user).

Data handling, compared with the original exercise:

* each image and mask is decoded once and kept as uint8 (the original decoded and resized every
  PNG on every access);
* a training sample is a random ``crop_size`` crop (so images of different sizes can share a
  batch), flipped and rotated by a multiple of 90 degrees identically in image and mask;
* validation images are taken from the training split only (never from test) and evaluated whole;
* the loss is averaged over pixels (the original summed it, which ties the step size to batch and
  image size); Adam with lr 1e-4 as in the original by default.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.checkpoint import load_checkpoint, next_model_path, save_checkpoint
from core.dataset import Sample, open_dataset, require_labels
from core.device import resolve_device
from core.errors import ConfigError, DatasetError, ImageReadError
from core.io import ensure_folder, read_image_and_mask
from core.metrics import Confusion
from core.models import ARCHITECTURES, build_model

LOSSES = ("bce", "dice", "bce+dice")
MIN_SIDE = 64


@dataclass
class TrainConfig:
    """Everything that decides a training run (stored in the checkpoint)."""

    arch: str = "prescribed"
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-4
    loss: str = "bce"
    val_fraction: float = 0.1
    device: str = "auto"
    max_minutes: float | None = None
    seed: int = 0
    crop_size: int = 256
    augment: bool = True
    #: Training samples per epoch (None: one random crop of every training image).
    samples_per_epoch: int | None = None
    arch_params: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"unknown architecture {self.arch!r} (known: {', '.join(ARCHITECTURES)})")
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r} (known: {', '.join(LOSSES)})")
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not (0 < self.lr < 10):
            raise ConfigError(f"--lr must be a positive number, got {self.lr}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"--val-fraction must be from 0 up to (not including) 1, got {self.val_fraction}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ConfigError(f"--max-minutes must be positive, got {self.max_minutes}")
        if self.crop_size < MIN_SIDE:
            raise ConfigError(f"crop size must be at least {MIN_SIDE}, got {self.crop_size}")
        if self.samples_per_epoch is not None and self.samples_per_epoch < 1:
            raise ConfigError(f"samples per epoch must be at least 1, got {self.samples_per_epoch}")


@dataclass(frozen=True)
class BatchProgress:
    """Reported after every training batch."""

    epoch: int  # 1-based
    epochs: int
    batch: int  # 1-based
    batches: int
    loss: float
    samples_seen: int
    elapsed_seconds: float


@dataclass(frozen=True)
class EpochResult:
    """Reported after every epoch (also a partial one cut short by a stop)."""

    epoch: int
    epochs: int
    train_loss: float
    val_loss: float | None
    val_iou: float | None
    seconds: float
    eta_seconds: float | None
    samples_seen: int
    complete: bool = True


@dataclass(frozen=True)
class TrainingStarted:
    """Reported once, when the data is loaded and the first batch is about to run."""

    train_images: int
    val_images: int
    device: str
    crop_size: int
    parameters: int
    model_path: Path


@dataclass
class TrainResult:
    model_path: Path
    history: list[EpochResult]
    stopped: str | None  # None (all epochs done), "time" or "user"
    best_epoch: int | None
    val_iou: float | None
    samples_seen: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"model": str(self.model_path), "stopped": self.stopped,
                "best_epoch": self.best_epoch, "val_iou": self.val_iou,
                "samples_seen": self.samples_seen, "seconds": round(self.seconds, 3),
                "history": [asdict(h) for h in self.history]}


ProgressCallback = Callable[[Any], None]


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

class ImageCache:
    """Decodes each (image, mask) pair once and keeps it as uint8 / bool arrays."""

    def __init__(self, samples: list[Sample]):
        self.samples = samples
        self._data: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        item = self._data[index]
        if item is None:
            sample = self.samples[index]
            image, mask = read_image_and_mask(sample.image_path, sample.label_path)
            if min(image.shape[:2]) < MIN_SIDE:
                raise ImageReadError(
                    f"image is {image.shape[1]} x {image.shape[0]}; training needs at least "
                    f"{MIN_SIDE} px a side", sample.image_path)
            item = (image, mask)
            self._data[index] = item
        return item


def _augment(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The same random flip and 90-degree rotation for image and mask."""
    k = int(rng.integers(4))
    if k:
        image, mask = np.rot90(image, k), np.rot90(mask, k)
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    return image, mask


def random_crop_batch(cache: ImageCache, indices: list[int], crop: int, rng: np.random.Generator,
                      augment: bool) -> tuple[np.ndarray, np.ndarray]:
    """A batch ``(N, crop, crop, 3) uint8`` and ``(N, crop, crop) bool`` of random crops."""
    images = np.empty((len(indices), crop, crop, 3), np.uint8)
    masks = np.empty((len(indices), crop, crop), bool)
    for row, index in enumerate(indices):
        image, mask = cache.get(index)
        h, w = mask.shape
        y = int(rng.integers(h - crop + 1))
        x = int(rng.integers(w - crop + 1))
        im, ma = image[y:y + crop, x:x + crop], mask[y:y + crop, x:x + crop]
        if augment:
            im, ma = _augment(im, ma, rng)
        images[row] = im
        masks[row] = ma
    return images, masks


def to_input_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """``(N, H, W, 3) uint8`` numpy -> ``(N, 3, H, W)`` float in [0, 1], channels-last memory."""
    tensor = torch.from_numpy(np.require(images, requirements=["C", "W"])).to(device, non_blocking=True)
    return tensor.permute(0, 3, 1, 2).float().div_(255.0).contiguous(memory_format=torch.channels_last)


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------

def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss over the whole batch (1 - Dice of probabilities)."""
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum()
    return 1.0 - (2.0 * inter + eps) / (prob.sum() + target.sum() + eps)


def compute_loss(name: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    logits = logits.float()
    if name == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    if name == "dice":
        return dice_loss(logits, target)
    if name == "bce+dice":
        return F.binary_cross_entropy_with_logits(logits, target) + dice_loss(logits, target)
    raise ConfigError(f"unknown loss {name!r}")


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Reflect-pad an ``(N, C, H, W)`` tensor on the bottom/right to multiples of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


@torch.no_grad()
def validate(model: torch.nn.Module, cache: ImageCache, device: torch.device, loss_name: str,
             should_stop: Callable[[], bool] | None = None) -> tuple[float, float] | None:
    """Mean loss and summed IoU (threshold 0.5) over whole validation images."""
    if len(cache) == 0:
        return None
    was_training = model.training
    model.eval()
    total_loss, confusion = 0.0, Confusion()
    multiple = getattr(model, "size_multiple", 1)
    try:
        for index in range(len(cache)):
            if should_stop is not None and index and should_stop():
                break
            image, mask = cache.get(index)
            x, h, w = pad_to_multiple(to_input_tensor(image[None], device), multiple)
            logits = model(x)[..., :h, :w]
            target = torch.from_numpy(mask[None, None].astype(np.float32)).to(device)
            total_loss += float(compute_loss(loss_name, logits, target))
            prediction = (logits[0, 0] >= 0).cpu().numpy()
            confusion = confusion + Confusion.from_masks(prediction, mask)
            done = index + 1
    finally:
        model.train(was_training)
    return total_loss / done, confusion.iou


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------

def split_validation(samples: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Random ``fraction`` of the training samples for validation (at least one when > 0)."""
    if fraction <= 0 or len(samples) < 2:
        return list(samples), []
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(samples))
    n_val = min(len(samples) - 1, max(1, int(round(len(samples) * fraction))))
    val_idx = set(order[:n_val].tolist())
    train = [s for i, s in enumerate(samples) if i not in val_idx]
    val = [s for i, s in enumerate(samples) if i in val_idx]
    return train, val


def _crop_size_for(cache: ImageCache, wanted: int, multiple: int) -> int:
    smallest = wanted
    for sample in cache.samples:
        from core.io import image_size  # header only, no decoding

        w, h = image_size(sample.image_path)
        if min(w, h) < MIN_SIDE:
            raise ImageReadError(f"image is {w} x {h}; training needs at least {MIN_SIDE} px a side",
                                 sample.image_path)
        smallest = min(smallest, w, h)
    crop = smallest - smallest % max(multiple, 1)
    if crop < MIN_SIDE // 2:
        raise ConfigError(f"images are too small ({smallest} px) for this architecture")
    return crop


def train(dataset_dir: str | Path, models_dir: str | Path, config: TrainConfig | None = None,
          on_progress: ProgressCallback | None = None,
          should_stop: Callable[[], bool] | None = None,
          resume_from: str | Path | None = None) -> TrainResult:
    """Train a model on ``dataset_dir``'s train split and save it as ``models_dir/model_vN``."""
    config = config or TrainConfig()
    config.validate()
    started = time.monotonic()
    emit = on_progress or (lambda event: None)
    stop_requested = should_stop or (lambda: False)
    device = resolve_device(config.device)

    dataset = open_dataset(dataset_dir)
    require_labels(dataset.train, "training")
    if not dataset.train:
        raise DatasetError("the train split has no images", Path(dataset_dir) / "train" / "data")
    train_samples, val_samples = split_validation(dataset.train, config.val_fraction, config.seed)

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    history: list[EpochResult] = []
    resumed = None
    if resume_from is not None:
        resumed = load_checkpoint(resume_from, device="cpu", with_optimizer=True)
        model = resumed.model
        config.arch, config.arch_params = resumed.arch, dict(resumed.arch_params)
        history = [EpochResult(**h) for h in resumed.metadata.get("history", [])]
    else:
        model = build_model(config.arch, **config.arch_params)
    model.to(device).train()
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if resumed is not None and resumed.optimizer_state is not None:
        optimizer.load_state_dict(resumed.optimizer_state)
        for group in optimizer.param_groups:
            group["lr"] = config.lr

    train_cache, val_cache = ImageCache(train_samples), ImageCache(val_samples)
    crop = _crop_size_for(train_cache, config.crop_size, getattr(model, "size_multiple", 1))
    ensure_folder(models_dir)
    model_path = next_model_path(models_dir)
    use_amp = device.type == "cuda"
    emit(TrainingStarted(len(train_samples), len(val_samples), str(device), crop,
                         sum(p.numel() for p in model.parameters()), model_path))

    per_epoch = config.samples_per_epoch or len(train_samples)
    batches = max(1, math.ceil(per_epoch / config.batch_size))
    deadline = started + config.max_minutes * 60 if config.max_minutes else None
    first_epoch = len(history) + 1
    last_epoch = len(history) + config.epochs
    samples_seen = 0
    stopped: str | None = None
    # The saved model is the best epoch of this run by validation IoU (the last one without val).
    best_state, best_iou, best_epoch = None, -1.0, None
    epoch_seconds: list[float] = []

    for epoch in range(first_epoch, last_epoch + 1):
        epoch_start = time.monotonic()
        order = rng.permutation(np.resize(np.arange(len(train_samples)), per_epoch)).tolist()
        loss_sum, loss_count = 0.0, 0
        for batch in range(batches):
            if stop_requested():
                stopped = "user"
            elif deadline is not None and time.monotonic() >= deadline:
                stopped = "time"
            if stopped:
                break
            indices = order[batch * config.batch_size:(batch + 1) * config.batch_size]
            images, masks = random_crop_batch(train_cache, indices, crop, rng, config.augment)
            x = to_input_tensor(images, device)
            target = torch.from_numpy(masks[:, None].astype(np.float32)).to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = model(x)
            loss = compute_loss(config.loss, logits, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise ConfigError(f"training diverged (loss {loss_value}) at epoch {epoch}; "
                                  "lower the learning rate")
            loss_sum += loss_value * len(indices)
            loss_count += len(indices)
            samples_seen += len(indices)
            emit(BatchProgress(epoch, last_epoch, batch + 1, batches, loss_value, samples_seen,
                               time.monotonic() - started))
        if loss_count == 0:
            break  # stopped before this epoch trained anything
        scores = validate(model, val_cache, device, config.loss)
        val_loss, val_iou = scores if scores else (None, None)
        seconds = time.monotonic() - epoch_start
        epoch_seconds.append(seconds)
        remaining = last_epoch - epoch
        eta = None if stopped else remaining * float(np.mean(epoch_seconds))
        if eta is not None and deadline is not None:
            eta = min(eta, max(0.0, deadline - time.monotonic()))
        result = EpochResult(epoch, last_epoch, loss_sum / loss_count, val_loss, val_iou, seconds,
                             eta, samples_seen, complete=stopped is None)
        history.append(result)
        emit(result)
        if val_iou is not None and val_iou > best_iou:
            best_iou, best_epoch = val_iou, epoch
            best_state = copy.deepcopy(model.state_dict())
        if stopped:
            break

    if not history:
        raise ConfigError("training was stopped before the first batch finished; nothing to save")
    final_state = None
    if best_state is not None and best_epoch != history[-1].epoch:
        final_state = copy.deepcopy(model.state_dict())
        model.load_state_dict(best_state)
    if best_epoch is None:
        best_epoch = history[-1].epoch
    metadata = {
        "config": asdict(config),
        "dataset": str(Path(dataset_dir).resolve()),
        "history": [asdict(h) for h in history],
        "metrics": {"val_iou": best_iou if best_iou >= 0 else None, "best_epoch": best_epoch,
                    "train_images": len(train_samples), "val_images": len(val_samples)},
        "threshold": 0.5,
        "normalization": "rgb / 255",
        "samples_seen": samples_seen + (resumed.metadata.get("samples_seen", 0) if resumed else 0),
        "stopped": stopped,
        "resumed_from": str(resume_from) if resume_from else None,
        "train_seconds": round(time.monotonic() - started, 3),
    }
    model.to("cpu")
    save_checkpoint(model_path, model, metadata, optimizer_state=optimizer.state_dict())
    if final_state is not None:
        model.load_state_dict(final_state)
    return TrainResult(model_path=model_path, history=history, stopped=stopped,
                       best_epoch=best_epoch, val_iou=metadata["metrics"]["val_iou"],
                       samples_seen=samples_seen, seconds=time.monotonic() - started)
