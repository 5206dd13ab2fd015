"""What decides a training run, and what it reports: no torch, so the window imports it freely.

:class:`TrainConfig` (stored in the checkpoint) with the recipes :data:`DEFAULT_RECIPE` and
:data:`ORIGINAL_RECIPE`; the names of the architectures, losses, devices and precisions with the
help texts the command line and the window show; and the events ``core.training.loop.train``
reports through ``on_progress``: :class:`TrainingStarted`, :class:`BatchProgress` and
:class:`EpochResult`, then returns a :class:`TrainResult`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.ground_resolution import check_resolution
from core.input_stretch import check_stretch

#: (name, help) of the architectures of ``core.models`` (a test checks the two lists agree).
ARCHITECTURE_CHOICES: tuple[tuple[str, str], ...] = (
    (
        "liteunet",
        "U-Net that works at half resolution and below, refined at full resolution "
        "(width 8: about 0.5 M weights; many times faster than unet on a CPU); the default",
    ),
    (
        "unet",
        "U-Net with batch norm and skip connections, full resolution (about 2.0 M weights; "
        "slow on a CPU)",
    ),
    (
        "resunet",
        "U-Net with a residual encoder, full resolution (about 2.0 M weights; slow on a CPU)",
    ),
    ("prescribed", "the original exercise's PixelClassifier, exactly (22.6 k weights; weak)"),
)
ARCHITECTURES = tuple(name for name, _help in ARCHITECTURE_CHOICES)
DEFAULT_ARCH = "liteunet"
#: (name, help) of the losses.
LOSS_CHOICES: tuple[tuple[str, str], ...] = (
    ("bce+dice", "binary cross-entropy plus soft Dice: robust when roofs are a small fraction"),
    ("bce", "binary cross-entropy per pixel (the original exercise's loss)"),
    ("dice", "soft Dice over the batch: optimises overlap directly"),
    (
        "focal+dice",
        "focal loss (cross-entropy that discounts the easy pixels) plus soft Dice",
    ),
    (
        "bce+lovasz",
        "binary cross-entropy plus the Lovasz hinge, a convex surrogate of the IoU of each image",
    ),
)
LOSSES = tuple(name for name, _help in LOSS_CHOICES)
#: (name, help) of the devices (``cuda:N`` is accepted too).
DEVICE_CHOICES: tuple[tuple[str, str], ...] = (
    ("auto", "a CUDA GPU when PyTorch sees one, else the CPU"),
    ("cpu", "the CPU (one core is left free for the window)"),
    ("cuda", "the first CUDA GPU (an error if there is none)"),
)
#: (name, help) of the precisions (``core.device.resolve_precision``).
PRECISION_CHOICES: tuple[tuple[str, str], ...] = (
    (
        "auto",
        "bfloat16 mixed precision where the GPU or CPU computes it natively "
        "(about 1.6x faster on such a CPU), else float32",
    ),
    ("fp32", "float32 throughout (bit-for-bit reproducible)"),
    ("bf16", "bfloat16 mixed precision everywhere (slow on CPUs without native bfloat16)"),
)
PRECISIONS = tuple(name for name, _help in PRECISION_CHOICES)
OPTIMIZERS = ("adamw", "adam")
SCHEDULES = ("cosine", "constant")
MIN_SIDE = 64
#: The most ``zoom_out`` may be: a crop covering 4 times its side (a 0.3 m tile seen at 1.2 m).
ZOOM_OUT_MAX = 4.0
#: Epochs of a run given neither ``epochs`` nor a time budget (``max_minutes``).
DEFAULT_EPOCHS = 100
#: An epoch is one crop of every training image, but at least this many crops, so that a small
#: dataset (a few large tiles) is not validated after every handful of crops.
MIN_EPOCH_SAMPLES = 64
#: ``TrainConfig.input_stretch`` unless set: benchmarks/quality.py measured it (docs/model-quality.md:
#: leave-one-subset-out mean 0.370 against 0.323, Rio 0.403 against 0.061; the fixed split level).
DEFAULT_INPUT_STRETCH = "percentile"
#: Thresholds tried when tuning on validation.
THRESHOLDS = tuple(round(0.2 + 0.05 * i, 2) for i in range(13))


@dataclass
class TrainConfig:
    """Everything that decides a training run (stored in the checkpoint)."""

    # Defaults are the recommended recipe (DEFAULT_RECIPE, chosen by measurement, see
    # docs/model-quality.md); ORIGINAL_RECIPE reproduces the original exercise.
    arch: str = DEFAULT_ARCH
    #: Epochs to train; None: as many as the time budget (``max_minutes``) allows, or
    #: :data:`DEFAULT_EPOCHS` without one. With both, whichever ends first.
    epochs: int | None = None
    batch_size: int = 8
    lr: float = 2e-3
    loss: str = "bce+dice"
    val_fraction: float = 0.1
    device: str = "auto"
    max_minutes: float | None = None
    seed: int = 0
    crop_size: int = 256
    augment: bool = True
    #: Training samples per epoch (None: one random crop of every training image, at least
    #: :data:`MIN_EPOCH_SAMPLES`).
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
    #: How strong the photometric jitter is (1: brightness and contrast +-20 %, saturation
    #: +-25 %, hue +-0.15 rad, blur 15 % and noise 20 % of the crops; 2 doubles each).
    photometric_strength: float = 1.0
    #: Share of the crops whose image is made up to 4x coarser and enlarged back
    #: (core.training.data.coarsened), so that a model meets a coarser flight resampled to its
    #: ground resolution; 0 = off.
    coarsen: float = 0.0
    #: The most a crop is zoomed out: with a value above 1 the scale augmentation reaches from
    #: ``1 - scale_jitter`` to this (a crop covering up to this times its side, shrunk to it,
    #: small images mirrored at their edges), so roofs also look as they do in a coarser
    #: flight; 1 = off (the range stays ``1 +- scale_jitter``).
    zoom_out: float = 1.0
    #: Probability of drawing again a crop with less than ``min_roof`` roof (0 = off).
    balance: float = 0.5
    min_roof: float = 0.05
    #: Choose the model's threshold on validation (robust_threshold) instead of keeping 0.5.
    #: Off by default: on devdata the few held-out tiles chose 0.20 in 5 of 9 runs (0.20 to
    #: 0.50) while the test tiles peaked at 0.40 to 0.55, and 0.5 scored higher on average in
    #: each of the three sets of three runs (docs/model-quality.md).
    tune_threshold: bool = False
    #: Per-image contrast stretch of the input (:mod:`core.input_stretch`): ``none`` (RGB / 255)
    #: or ``percentile`` (each band cut at its 2nd and 98th percentile, QGIS's default).
    input_stretch: str = DEFAULT_INPUT_STRETCH
    #: Weight of the colour-affinity regulariser on the pixels strokes leave unlabelled
    #: (core.training.losses.colour_affinity_loss; 0 = off); full labels are not affected. Off by
    #: default: at 0.5 it scored 0.432 against 0.426 without (docs/sparse-labels.md), within the
    #: noise, and cost 15-25 % of the crops of a time budget.
    stroke_affinity: float = 0.0
    #: Self-training on strokes: from half the run on, an image labelled by strokes only also
    #: learns from the unlabelled pixels the model is this sure of (probability at least this:
    #: roof; at most 1 minus it: background); 0 = off. Full labels are not affected. Off, and
    #: not on the command line: at 0.9 it scored below the plain strokes (docs/sparse-labels.md);
    #: ``benchmarks/sparse_labels.py --variant pseudo_labels=0.9`` measures it.
    pseudo_labels: float = 0.0
    #: Decay of an exponential moving average of the weights, warmed up
    #: (:mod:`core.training.weight_average`); the average is what is validated and saved.
    #: 0 = off (the default until measured to help: docs/model-quality.md).
    ema_decay: float = 0.0
    #: The ground resolution the model learns at, in cm per pixel (:mod:`core.ground_resolution`):
    #: training images whose georeferencing gives their own are resampled to it, the others are
    #: taken to be at it, and predictions resample images to it. None: the finest resolution of
    #: the georeferenced training images (none is shrunk), or unknown when none is georeferenced.
    ground_resolution_cm: float | None = None
    #: Which epoch the checkpoint keeps: ``final`` (the last; the cosine schedule has annealed
    #: the learning rate to zero by then, and a few validation tiles are too noisy to pick an
    #: epoch by) or ``best`` (the epoch with the best validation IoU).
    keep: str = "final"
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

    def epoch_limit(self) -> int | None:
        """Epochs this run may train: ``epochs``; or None (only the time budget stops it); or
        :data:`DEFAULT_EPOCHS` when neither is given."""
        if self.epochs is not None:
            return self.epochs
        return None if self.max_minutes else DEFAULT_EPOCHS

    def epoch_samples(self, train_images: int) -> int:
        """Training crops in one epoch over ``train_images`` images."""
        return self.samples_per_epoch or max(train_images, MIN_EPOCH_SAMPLES)

    def validate(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ConfigError(
                f"unknown architecture {self.arch!r} (known: {', '.join(ARCHITECTURES)})"
            )
        if self.arch == "prescribed" and self.arch_params:
            raise ConfigError(
                "the prescribed architecture has no parameters (--width applies to liteunet, "
                "unet and resunet)"
            )
        width = self.arch_params.get("width")
        if width is not None and not (isinstance(width, int) and 4 <= width <= 128):
            raise ConfigError(f"--width must be a whole number from 4 to 128, got {width}")
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r} (known: {', '.join(LOSSES)})")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not (0 < self.lr < 10):
            raise ConfigError(f"--lr must be a positive number, got {self.lr}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(
                f"--val-fraction must be from 0 up to (not including) 1, got {self.val_fraction}"
            )
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ConfigError(f"--max-minutes must be positive, got {self.max_minutes}")
        if self.crop_size < MIN_SIDE:
            raise ConfigError(f"crop size must be at least {MIN_SIDE}, got {self.crop_size}")
        if self.samples_per_epoch is not None and self.samples_per_epoch < 1:
            raise ConfigError(f"samples per epoch must be at least 1, got {self.samples_per_epoch}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"unknown optimizer {self.optimizer!r} (known: {', '.join(OPTIMIZERS)})"
            )
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r} (known: {', '.join(SCHEDULES)})")
        if not 0 <= self.weight_decay < 1:
            raise ConfigError(f"weight decay must be from 0 up to 1, got {self.weight_decay}")
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"warm-up share must be from 0 up to 1, got {self.warmup}")
        if not 0 <= self.photometric_strength <= 3:
            raise ConfigError(
                f"photometric strength must be from 0 to 3, got {self.photometric_strength}"
            )
        if not 0 <= self.coarsen <= 1:
            raise ConfigError(f"coarsen must be a share from 0 to 1, got {self.coarsen}")
        if not 1 <= self.zoom_out <= ZOOM_OUT_MAX:
            raise ConfigError(f"zoom out must be from 1 to {ZOOM_OUT_MAX:g}, got {self.zoom_out}")
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
        check_stretch(self.input_stretch)
        if not 0 <= self.stroke_affinity <= 10:
            raise ConfigError(f"stroke affinity must be from 0 to 10, got {self.stroke_affinity}")
        if self.pseudo_labels and not 0.5 < self.pseudo_labels < 1:
            raise ConfigError(
                f"pseudo-label confidence must be above 0.5 and below 1 (or 0: off), "
                f"got {self.pseudo_labels}"
            )
        check_resolution(self.ground_resolution_cm, "ground_resolution_cm")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(
                f"--ema must be from 0 (off) up to (not including) 1, got {self.ema_decay}"
            )
        if self.keep not in KEEP_CHOICES:
            raise ConfigError(
                f"unknown checkpoint choice {self.keep!r} (known: {', '.join(KEEP_CHOICES)})"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"unknown precision {self.precision!r} (known: {', '.join(PRECISIONS)})"
            )


#: What the checkpoint keeps (``TrainConfig.keep``).
KEEP_CHOICES: tuple[str, ...] = ("final", "best")

#: The recommended recipe: the defaults of ``rooftop train`` (chosen by measurement,
#: docs/model-quality.md); the fields not named here have the recommended values as defaults.
DEFAULT_RECIPE: dict[str, Any] = {
    "arch": DEFAULT_ARCH,
    "optimizer": "adamw",
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "loss": "bce+dice",
    "schedule": "cosine",
    "batch_size": 8,
}

#: The original exercise's recipe (apply with ``TrainConfig(**ORIGINAL_RECIPE)``).
ORIGINAL_RECIPE: dict[str, Any] = {
    "arch": "prescribed",
    "optimizer": "adam",
    "lr": 1e-4,
    "weight_decay": 0.0,
    "loss": "bce",
    "schedule": "constant",
    "warmup": 0.0,
    "augment": False,
    "balance": 0.0,
    "tune_threshold": False,
    "batch_size": 32,
    "keep": "best",
    "input_stretch": "none",
}


@dataclass(frozen=True)
class BatchProgress:
    """Reported after every training batch."""

    epoch: int  # 1-based
    epochs: int | None  # None: until the time budget is used
    batch: int  # 1-based
    batches: int
    loss: float
    samples_seen: int
    elapsed_seconds: float


@dataclass(frozen=True)
class EpochResult:
    """Reported after every epoch (also a partial one cut short by a stop)."""

    epoch: int
    epochs: int | None  # None: until the time budget is used
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
        return {
            "model": str(self.model_path),
            "stopped": self.stopped,
            "best_epoch": self.best_epoch,
            "val_iou": self.val_iou,
            "threshold": self.threshold,
            "samples_seen": self.samples_seen,
            "seconds": round(self.seconds, 3),
            "history": [asdict(h) for h in self.history],
        }
