"""Training: the loop, losses, augmentation, validation, time limits, cancellation, checkpoints.

``train(dataset_dir, models_dir, config, on_progress, should_stop)`` is the single entry point the
CLI and the GUI call. It reports :class:`BatchProgress` after every batch and :class:`EpochResult`
after every epoch through ``on_progress``, checks ``should_stop()`` between batches, and always
saves the model it has when it stops (finished, time limit, or stopped by the user).

Data handling, compared with the original exercise:

* each image and mask is decoded once and kept as uint8 (the original decoded and resized every
  PNG on every access);
* a training sample is a random ``crop_size`` crop (so images of different sizes can share a
  batch); with ``balance`` > 0 a crop with less than ``min_roof`` roof is drawn again with that
  probability (up to three times), so roof-poor tiles do not swamp the batch;
* augmentation (``augment``): the same random scale (``scale_jitter``: the crop is cut
  ``crop * s`` px wide, ``s`` log-uniform in ``[1 - j, 1 + j]``, and resized back; bilinear, the
  mask thresholded at 0.5), flip and 90-degree rotation for image and mask; then, on the image
  only (``photometric``), brightness, contrast, saturation and hue jitter, and sometimes a slight
  blur or Gaussian noise;
* validation images are taken from the training split only (never from test); at most
  ``val_max_images`` of them, each centre-cropped to at most ``val_max_side`` px a side, so that
  validation stays cheap next to training (a 1024 x 1024 image costs about as much as 16
  training crops of 256);
* the loss is averaged over pixels (the original summed it, which ties the step size to batch and
  image size);
* the optimizer is AdamW (``optimizer="adam"`` for the original's Adam) with a linear warm-up
  over the first ``warmup`` share of the run and a cosine decay to 1 % of ``lr`` (``schedule``);
  the run's progress is the larger of the share of samples done (``epochs`` x samples per epoch)
  and, with ``max_minutes``, the share of the time budget used, so a time-limited run anneals
  within its budget;
* on a GPU, two threads cut and augment the next batches while the device trains on the current
  one (``loader_threads``), so it does not wait for the CPU; each batch has its own generator
  seeded from the run's, so the batches do not depend on the number of threads;
* with ``precision="auto"`` the forward pass runs in bfloat16 mixed precision on a GPU and on a
  CPU with native bfloat16 (AVX-512 BF16 or AMX): about 1.6x the samples per second for the
  U-Nets on such a CPU; weights, optimizer state and the loss stay float32;
* the saved model is the epoch with the best validation IoU; with ``tune_threshold`` the
  probability threshold is chosen on validation too (the IoU-best of 0.20, 0.25, ..., 0.80) and
  stored in the checkpoint as the model's default ``threshold``.

The original way (Adam 1e-4, BCE, no augmentation, constant rate) is
``TrainConfig(arch="prescribed", optimizer="adam", lr=1e-4, loss="bce", schedule="constant",
augment=False, balance=0, tune_threshold=False, weight_decay=0)``: :data:`ORIGINAL_RECIPE`.
"""

from __future__ import annotations

import copy
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.checkpoint import (
    load_checkpoint,
    next_model_path,
    remove_stale_model_temp_files,
    save_checkpoint,
)
from core.dataset import Sample, open_dataset, require_labels
from core.device import (
    PRECISION_CHOICES,
    autocast,
    precision_name,
    resolve_device,
    resolve_precision,
    tune_cpu_allocator,
)
from core.errors import ConfigError, DatasetError, ImageReadError, TrainingStopped
from core.io import ensure_folder, image_size, read_image_and_mask
from core.models import ARCHITECTURES, DEFAULT_ARCH, build_model

LOSSES = ("bce", "dice", "bce+dice")
OPTIMIZERS = ("adamw", "adam")
SCHEDULES = ("cosine", "constant")
MIN_SIDE = 64
#: Thresholds tried when tuning on validation.
THRESHOLDS = tuple(round(0.2 + 0.05 * i, 2) for i in range(13))
_BINS = 200  # probability histogram resolution for threshold tuning (thresholds on bin edges)


@dataclass
class TrainConfig:
    """Everything that decides a training run (stored in the checkpoint)."""

    # Defaults are the recommended recipe (DEFAULT_RECIPE, chosen by measurement, see
    # docs/model-quality.md); ORIGINAL_RECIPE reproduces the original exercise.
    arch: str = DEFAULT_ARCH
    epochs: int = 100
    batch_size: int = 8
    lr: float = 2e-3
    loss: str = "bce+dice"
    val_fraction: float = 0.1
    device: str = "auto"
    max_minutes: float | None = None
    seed: int = 0
    crop_size: int = 256
    augment: bool = True
    #: Training samples per epoch (None: one random crop of every training image).
    samples_per_epoch: int | None = None
    arch_params: dict[str, Any] = field(default_factory=dict)
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    #: Share of the run spent warming the learning rate up linearly from 0.
    warmup: float = 0.05
    #: Augmentation strengths (used when ``augment``): relative scale range, photometric on/off.
    scale_jitter: float = 0.25
    photometric: bool = True
    #: Probability of drawing again a crop with less than ``min_roof`` roof (0 = off).
    balance: float = 0.5
    min_roof: float = 0.05
    tune_threshold: bool = True
    #: Validation cost cap: at most this many images, each centre-cropped to at most this side.
    val_max_images: int | None = 32
    val_max_side: int | None = 1024
    #: ``auto`` (bfloat16 mixed precision where the CPU or GPU computes it natively), ``fp32``
    #: or ``bf16`` (see core.device.resolve_precision).
    precision: str = "auto"
    #: Threads that cut and augment the next batches while the current one trains (None: 2 on a
    #: GPU, which would otherwise wait for the CPU, and 0 on the CPU, where they would compete
    #: with the training threads for the same cores).
    loader_threads: int | None = None

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
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r} (known: {', '.join(OPTIMIZERS)})")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r} (known: {', '.join(SCHEDULES)})")
        if not 0 <= self.weight_decay < 1:
            raise ConfigError(f"weight decay must be from 0 up to 1, got {self.weight_decay}")
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"warm-up share must be from 0 up to 1, got {self.warmup}")
        if not 0 <= self.scale_jitter < 1:
            raise ConfigError(f"scale jitter must be from 0 up to 1, got {self.scale_jitter}")
        if not 0 <= self.balance <= 1 or not 0 <= self.min_roof <= 1:
            raise ConfigError("balance and min_roof must be from 0 to 1")
        if self.val_max_images is not None and self.val_max_images < 1:
            raise ConfigError(f"val_max_images must be at least 1, got {self.val_max_images}")
        if self.val_max_side is not None and self.val_max_side < MIN_SIDE:
            raise ConfigError(f"val_max_side must be at least {MIN_SIDE}, got {self.val_max_side}")
        if self.loader_threads is not None and not 0 <= self.loader_threads <= 16:
            raise ConfigError(f"loader threads must be from 0 to 16, got {self.loader_threads}")
        if self.precision not in PRECISION_CHOICES:
            raise ConfigError(f"unknown precision {self.precision!r} (known: {', '.join(PRECISION_CHOICES)})")


#: The recommended recipe: the defaults of ``rooftop train`` (chosen by measurement,
#: docs/model-quality.md); the fields not named here have the recommended values as defaults.
DEFAULT_RECIPE: dict[str, Any] = {
    "arch": DEFAULT_ARCH, "optimizer": "adamw", "lr": 2e-3, "weight_decay": 1e-4,
    "loss": "bce+dice", "schedule": "cosine", "batch_size": 8,
}

#: The original exercise's recipe (apply with ``TrainConfig(**ORIGINAL_RECIPE)``).
ORIGINAL_RECIPE: dict[str, Any] = {
    "arch": "prescribed", "optimizer": "adam", "lr": 1e-4, "weight_decay": 0.0, "loss": "bce",
    "schedule": "constant", "warmup": 0.0, "augment": False, "balance": 0.0,
    "tune_threshold": False, "batch_size": 32,
}


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
    #: With threshold tuning: the best validation IoU over :data:`THRESHOLDS` and its threshold.
    val_iou_tuned: float | None = None
    threshold: float | None = None
    #: Learning rate at the end of the epoch.
    lr: float | None = None


@dataclass(frozen=True)
class TrainingStarted:
    """Reported once, when the data is loaded and the first batch is about to run."""

    train_images: int
    val_images: int
    device: str
    crop_size: int
    parameters: int
    model_path: Path
    #: ``"bf16"`` (mixed precision) or ``"fp32"``.
    precision: str = "fp32"


@dataclass
class TrainResult:
    model_path: Path
    history: list[EpochResult]
    stopped: str | None  # None (all epochs done), "time" or "user"
    best_epoch: int | None
    val_iou: float | None
    samples_seen: int
    seconds: float
    #: The model's default threshold, as stored in the checkpoint (tuned on validation or 0.5).
    threshold: float = 0.5

    def as_dict(self) -> dict[str, Any]:
        return {"model": str(self.model_path), "stopped": self.stopped,
                "best_epoch": self.best_epoch, "val_iou": self.val_iou, "threshold": self.threshold,
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


def _resize_pair(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize a square crop and its mask to ``size`` (bilinear; the mask thresholded at 0.5)."""
    from PIL import Image

    im = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((size, size), Image.BILINEAR))
    soft = Image.fromarray(np.ascontiguousarray(mask).astype(np.uint8) * 255)
    ma = np.asarray(soft.resize((size, size), Image.BILINEAR)) >= 128
    return im, ma


def _crop_origin(h: int, w: int, side: int, rng: np.random.Generator) -> tuple[int, int]:
    return int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))


def random_crop_batch(cache: ImageCache, indices: list[int], crop: int, rng: np.random.Generator,
                      augment: bool, scale_jitter: float = 0.0, balance: float = 0.0,
                      min_roof: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """A batch ``(N, crop, crop, 3) uint8`` and ``(N, crop, crop) bool`` of random crops.

    With ``augment``: a random scale (``scale_jitter``), flip and 90-degree rotation, the same
    for image and mask. With ``balance``: a crop with less than ``min_roof`` roof is drawn again
    with probability ``balance`` (at most three times)."""
    images = np.empty((len(indices), crop, crop, 3), np.uint8)
    masks = np.empty((len(indices), crop, crop), bool)
    for row, index in enumerate(indices):
        image, mask = cache.get(index)
        h, w = mask.shape
        side = crop
        if augment and scale_jitter > 0:
            lo, hi = math.log(1 - scale_jitter), math.log(1 + scale_jitter)
            side = int(round(crop * math.exp(rng.uniform(lo, hi))))
            side = max(MIN_SIDE // 2, min(side, h, w))
        y, x = _crop_origin(h, w, side, rng)
        for _ in range(3):
            if balance <= 0 or mask[y:y + side, x:x + side].mean() >= min_roof:
                break
            if rng.random() >= balance:
                break
            y, x = _crop_origin(h, w, side, rng)
        im, ma = image[y:y + side, x:x + side], mask[y:y + side, x:x + side]
        if augment:
            im, ma = _augment(im, ma, rng)
        if side != crop:
            im, ma = _resize_pair(im, ma, crop)
        images[row] = im
        masks[row] = ma
    return images, masks


#: RGB <-> YIQ (hue rotation turns the I/Q plane around the luma axis).
_RGB2YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ2RGB = np.linalg.inv(_RGB2YIQ)


def photometric_jitter(x: torch.Tensor, rng: np.random.Generator, strength: float = 1.0) -> torch.Tensor:
    """Random brightness, contrast, saturation and hue per image of an ``(N, 3, H, W)`` batch in
    [0, 1], then a slight blur (15 % of images) or Gaussian noise (20 %); geometry is untouched,
    so the mask stays valid. Returns a new tensor in [0, 1]."""
    n = x.shape[0]
    dev, dt = x.device, x.dtype
    mats = []
    for _ in range(n):
        angle = rng.uniform(-0.15, 0.15) * strength          # hue, radians
        sat = 1 + rng.uniform(-0.25, 0.25) * strength
        c, s_ = math.cos(angle), math.sin(angle)
        rot = np.array([[1, 0, 0], [0, sat * c, -sat * s_], [0, sat * s_, sat * c]])
        mats.append(_YIQ2RGB @ rot @ _RGB2YIQ)
    mat = torch.as_tensor(np.stack(mats), dtype=dt, device=dev)
    y = torch.einsum("nij,njhw->nihw", mat, x)
    bright = torch.as_tensor(1 + rng.uniform(-0.2, 0.2, n) * strength, dtype=dt, device=dev)
    contrast = torch.as_tensor(1 + rng.uniform(-0.2, 0.2, n) * strength, dtype=dt, device=dev)
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = (y - mean) * contrast.view(n, 1, 1, 1) + mean * bright.view(n, 1, 1, 1)
    blur = rng.random(n) < 0.15 * strength
    noise = (~blur) & (rng.random(n) < 0.2 * strength)
    for i in np.flatnonzero(blur):
        sigma = rng.uniform(0.4, 1.0)
        k = torch.exp(-torch.arange(-1, 2, dtype=dt, device=dev) ** 2 / (2 * sigma ** 2))
        k = (k[:, None] * k[None, :]) / k.sum() ** 2
        y[i] = F.conv2d(F.pad(y[i:i + 1], (1, 1, 1, 1), mode="replicate"),
                        k.expand(3, 1, 3, 3).contiguous(), groups=3)[0]
    for i in np.flatnonzero(noise):
        gen = torch.Generator(device="cpu").manual_seed(int(rng.integers(2 ** 31)))
        y[i] += (torch.randn(y[i].shape, generator=gen) * rng.uniform(0.005, 0.03)).to(dev, dt)
    return y.clamp_(0.0, 1.0).contiguous(memory_format=torch.channels_last)


def to_input_tensor(images: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """``(N, H, W, 3) uint8`` (numpy or a CPU tensor, pinned for a fast copy to a GPU) ->
    ``(N, 3, H, W)`` float in [0, 1] on ``device``, channels-last memory."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.require(images, requirements=["C", "W"]))
    tensor = images.to(device, non_blocking=True)
    return tensor.permute(0, 3, 1, 2).float().div_(255.0).contiguous(memory_format=torch.channels_last)


@dataclass
class PreparedBatch:
    """One training batch cut and augmented on the CPU, not yet on the device."""

    images: torch.Tensor  # (N, crop, crop, 3) uint8
    masks: torch.Tensor  # (N, crop, crop) bool
    rng: np.random.Generator  # the batch's own generator, for what follows on the device


class BatchLoader:
    """Cuts and augments training batches, ``threads`` batches ahead in background threads (0:
    in the calling thread, when asked).

    Each batch has its own random generator seeded from the run's, so the batches are the same
    whatever the number of threads and however they are scheduled. numpy copies and Pillow's
    resize release the GIL, so the threads overlap with the training step; on a GPU that keeps
    the device from waiting for the CPU. With ``pin`` the batches are in pinned memory, which a
    GPU copies from asynchronously.
    """

    def __init__(self, cache: ImageCache, crop: int, config: TrainConfig, threads: int,
                 pin: bool = False) -> None:
        self.cache, self.crop, self.config, self.pin = cache, crop, config, pin
        self.depth = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="rooftop-batches") if threads else None

    def _prepare(self, indices: list[int], seed: int) -> PreparedBatch:
        cfg = self.config
        rng = np.random.default_rng(seed)
        images, masks = random_crop_batch(self.cache, indices, self.crop, rng, cfg.augment,
                                          cfg.scale_jitter, cfg.balance, cfg.min_roof)
        images_t, masks_t = torch.from_numpy(images), torch.from_numpy(masks)
        if self.pin:
            images_t, masks_t = images_t.pin_memory(), masks_t.pin_memory()
        return PreparedBatch(images_t, masks_t, rng)

    def epoch(self, plan: list[tuple[list[int], int]]) -> Iterator[PreparedBatch]:
        """The batches of ``plan`` (indices and seed of each), in order. Batches prepared ahead
        and not taken (the caller stopped) are dropped."""
        if self._pool is None:
            for indices, seed in plan:
                yield self._prepare(indices, seed)
            return
        pending: deque[Future[PreparedBatch]] = deque()
        upcoming = iter(plan)
        try:
            for indices, seed in upcoming:
                pending.append(self._pool.submit(self._prepare, indices, seed))
                if len(pending) > self.depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


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


@dataclass(frozen=True)
class ValidationScores:
    loss: float
    iou: float  # at threshold 0.5
    tuned_iou: float  # the best over THRESHOLDS
    threshold: float  # where tuned_iou is reached (0.5 on ties)


def _iou_by_threshold(pos: np.ndarray, neg: np.ndarray) -> dict[float, float]:
    """IoU at each of :data:`THRESHOLDS` from probability histograms of roof / background pixels."""
    pos_above = np.cumsum(pos[::-1])[::-1]  # roof pixels with p >= bin edge
    neg_above = np.cumsum(neg[::-1])[::-1]
    total_pos = pos.sum()
    scores = {}
    for t in (0.5, *THRESHOLDS):
        k = int(round(t * _BINS))
        tp, fp = float(pos_above[k]), float(neg_above[k])
        fn = float(total_pos) - tp
        scores[t] = tp / (tp + fp + fn) if tp + fp + fn else 1.0
    return scores


def _centre_crop(image: np.ndarray, mask: np.ndarray, side: int | None) -> tuple[np.ndarray, np.ndarray]:
    if side is None:
        return image, mask
    h, w = mask.shape
    y, x = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return image[y:y + side, x:x + side], mask[y:y + side, x:x + side]


@torch.no_grad()
def validate(model: torch.nn.Module, cache: ImageCache, device: torch.device, loss_name: str,
             should_stop: Callable[[], bool] | None = None, max_side: int | None = None,
             amp_dtype: torch.dtype | None = None) -> ValidationScores | None:
    """Mean loss and IoU (summed over pixels) of the validation images, each whole or its centre
    ``max_side`` crop: at threshold 0.5 and at the best of :data:`THRESHOLDS`."""
    if len(cache) == 0:
        return None
    was_training = model.training
    model.eval()
    total_loss, done = 0.0, 0
    pos = np.zeros(_BINS + 1, np.int64)
    neg = np.zeros(_BINS + 1, np.int64)
    multiple = getattr(model, "size_multiple", 1)
    try:
        for index in range(len(cache)):
            if should_stop is not None and index and should_stop():
                break
            image, mask = _centre_crop(*cache.get(index), max_side)
            x, h, w = pad_to_multiple(to_input_tensor(image[None], device), multiple)
            with autocast(device, amp_dtype):
                logits = model(x)[..., :h, :w].float()
            target = torch.from_numpy(mask[None, None].astype(np.float32)).to(device)
            total_loss += float(compute_loss(loss_name, logits, target))
            bins = (torch.sigmoid(logits[0, 0]) * _BINS).long().clamp_(0, _BINS).cpu().numpy()
            pos += np.bincount(bins[mask], minlength=_BINS + 1)
            neg += np.bincount(bins[~mask], minlength=_BINS + 1)
            done += 1
    finally:
        model.train(was_training)
    scores = _iou_by_threshold(pos, neg)
    best = max(THRESHOLDS, key=lambda t: (scores[t], t == 0.5, -abs(t - 0.5)))
    return ValidationScores(total_loss / done, scores[0.5], scores[best], best)


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
        w, h = image_size(sample.image_path)  # header only, no decoding
        if min(w, h) < MIN_SIDE:
            raise ImageReadError(f"image is {w} x {h}; training needs at least {MIN_SIDE} px a side",
                                 sample.image_path)
        smallest = min(smallest, w, h)
    crop = smallest - smallest % max(multiple, 1)
    if crop < MIN_SIDE // 2:
        raise ConfigError(f"images are too small ({smallest} px) for this architecture")
    return crop


def lr_factor(progress: float, schedule: str, warmup: float, floor: float = 0.01) -> float:
    """Learning-rate multiplier at ``progress`` (0 to 1) of the run: linear warm-up over the first
    ``warmup`` share, then constant or cosine down to ``floor``."""
    progress = min(max(progress, 0.0), 1.0)
    if warmup > 0 and progress < warmup:
        return max(progress / warmup, 0.02)
    if schedule == "constant":
        return 1.0
    t = (progress - warmup) / max(1e-9, 1.0 - warmup)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def _make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    # No weight decay on batch-norm and bias parameters (the usual AdamW practice).
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)


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
    if device.type == "cpu":
        tune_cpu_allocator()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    dataset = open_dataset(dataset_dir)
    require_labels(dataset.train, "training")
    if not dataset.train:
        raise DatasetError("the train split has no images", Path(dataset_dir) / "train" / "data")
    train_samples, val_samples = split_validation(dataset.train, config.val_fraction, config.seed)
    if config.val_max_images is not None:
        val_samples = val_samples[:config.val_max_images]

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    history: list[EpochResult] = []
    resumed = None
    if resume_from is not None:
        resumed = load_checkpoint(resume_from, device="cpu", with_optimizer=True)
        model = resumed.model
        config.arch, config.arch_params = resumed.arch, dict(resumed.arch_params)
        # The optimizer state only fits the optimizer that wrote it (checkpoints written before
        # the optimizer was configurable used Adam).
        config.optimizer = resumed.metadata.get("config", {}).get("optimizer", "adam")
        history = [EpochResult(**h) for h in resumed.metadata.get("history", [])]
    else:
        model = build_model(config.arch, **config.arch_params)
    model.to(device).train()
    model = model.to(memory_format=torch.channels_last)
    optimizer = _make_optimizer(config, model)
    if resumed is not None and resumed.optimizer_state is not None:
        try:
            optimizer.load_state_dict(resumed.optimizer_state)
        except (ValueError, KeyError) as exc:  # e.g. saved by a different optimizer layout
            raise ConfigError(f"cannot restore the optimizer state of {resume_from} ({exc}); "
                              f"train a new model instead") from exc
    base_lrs = []
    for group in optimizer.param_groups:
        group["lr"] = config.lr
        base_lrs.append(config.lr)

    train_cache, val_cache = ImageCache(train_samples), ImageCache(val_samples)
    crop = _crop_size_for(train_cache, config.crop_size, getattr(model, "size_multiple", 1))
    threads = config.loader_threads
    if threads is None:
        threads = 2 if device.type == "cuda" else 0
    loader = BatchLoader(train_cache, crop, config, threads, pin=device.type == "cuda")
    ensure_folder(models_dir)
    remove_stale_model_temp_files(models_dir)  # leftovers of checkpoint writes killed midway
    model_path = next_model_path(models_dir)
    amp_dtype = resolve_precision(config.precision, device, model)
    emit(TrainingStarted(len(train_samples), len(val_samples), str(device), crop,
                         sum(p.numel() for p in model.parameters()), model_path,
                         precision_name(amp_dtype)))

    per_epoch = config.samples_per_epoch or len(train_samples)
    batches = max(1, math.ceil(per_epoch / config.batch_size))
    budget = config.max_minutes * 60 if config.max_minutes else None
    deadline = started + budget if budget else None
    first_epoch = len(history) + 1
    last_epoch = len(history) + config.epochs
    total_samples = config.epochs * per_epoch
    samples_seen = 0
    stopped: str | None = None
    # The saved model is the best epoch of this run by validation IoU (the last one without val).
    best_state, best_iou, best_epoch, best_threshold = None, -1.0, None, 0.5
    epoch_seconds: list[float] = []
    lr_now = config.lr

    def progress_now() -> float:
        done = samples_seen / total_samples
        if budget:
            done = max(done, (time.monotonic() - started) / budget)
        return done

    try:
        for epoch in range(first_epoch, last_epoch + 1):
            epoch_start = time.monotonic()
            order = rng.permutation(np.resize(np.arange(len(train_samples)), per_epoch)).tolist()
            seeds = rng.integers(2**63, size=batches).tolist()
            plan = [(order[b * config.batch_size:(b + 1) * config.batch_size], seeds[b])
                    for b in range(batches)]
            prepared_batches = loader.epoch(plan)
            loss_sum, loss_count = 0.0, 0
            for batch in range(batches):
                if stop_requested():
                    stopped = "user"
                elif deadline is not None and samples_seen and time.monotonic() >= deadline:
                    stopped = "time"  # (after at least one batch, so a time limit always saves)
                if stopped:
                    break
                indices = plan[batch][0]
                prepared = next(prepared_batches)
                x = to_input_tensor(prepared.images, device)
                if config.augment and config.photometric:
                    x = photometric_jitter(x, prepared.rng)
                target = prepared.masks[:, None].to(device, non_blocking=True).float()
                factor = lr_factor(progress_now(), config.schedule, config.warmup)
                for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                    group["lr"] = lr_now = base * factor
                with autocast(device, amp_dtype):
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
            prepared_batches.close()  # drops batches prepared ahead when the epoch was cut short
            if loss_count == 0:
                break  # stopped before this epoch trained anything
            scores = validate(model, val_cache, device, config.loss, max_side=config.val_max_side,
                              amp_dtype=amp_dtype)
            seconds = time.monotonic() - epoch_start
            epoch_seconds.append(seconds)
            remaining = last_epoch - epoch
            eta = None if stopped else remaining * float(np.mean(epoch_seconds))
            if eta is not None and deadline is not None:
                eta = min(eta, max(0.0, deadline - time.monotonic()))
            tuned = config.tune_threshold and scores is not None
            result = EpochResult(epoch, last_epoch, loss_sum / loss_count,
                                 scores.loss if scores else None, scores.iou if scores else None,
                                 seconds, eta, samples_seen, complete=stopped is None,
                                 val_iou_tuned=scores.tuned_iou if tuned else None,
                                 threshold=scores.threshold if tuned else None, lr=lr_now)
            history.append(result)
            emit(result)
            if scores is not None:
                score, threshold = (scores.tuned_iou, scores.threshold) if tuned else (scores.iou, 0.5)
                if score > best_iou:
                    best_iou, best_epoch, best_threshold = score, epoch, threshold
                    best_state = copy.deepcopy(model.state_dict())
            if stopped:
                break
    finally:
        loader.close()

    if not history:
        raise TrainingStopped("training was stopped before the first batch finished; nothing to save")
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
        "threshold": best_threshold,
        "threshold_source": "validation" if config.tune_threshold and best_iou >= 0 else "default",
        "normalization": "rgb / 255",
        "precision": precision_name(amp_dtype),
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
                       samples_seen=samples_seen, seconds=time.monotonic() - started,
                       threshold=best_threshold)
