"""``rooftop train``: train a model on a dataset's train split (Ctrl+C stops and saves)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from core.cli.output import (
    Formatter,
    Reporter,
    StopOnInterrupt,
    format_seconds,
    positive_int,
    text_bar,
)


def _of(epoch: int, epochs: int | None, width: int = 0) -> str:
    """``"  3/100"``, or ``"  3"`` when only the time budget ends the run."""
    return f"{epoch:>{width}}" if epochs is None else f"{epoch:>{width}}/{epochs}"


def train_config(args: argparse.Namespace) -> Any:
    """The ``TrainConfig`` of ``rooftop train``'s arguments (what the window's Train runs with
    the same settings: a test checks the two agree)."""
    from core.ground_resolution import check_resolution
    from core.training.config import TrainConfig

    return TrainConfig(
        arch=args.arch,
        arch_params={} if args.width is None else {"width": args.width},
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        loss=args.loss,
        val_fraction=args.val_fraction,
        device=args.device,
        max_minutes=args.max_minutes,
        seed=args.seed,
        crop_size=args.crop_size,
        samples_per_epoch=args.samples_per_epoch,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        warmup=args.warmup,
        augment=not args.no_augment,
        balance=args.balance,
        tune_threshold=args.tune_threshold,
        keep=args.keep,
        input_stretch=args.input_stretch,
        stroke_affinity=args.stroke_affinity,
        ema_decay=args.ema,
        ground_resolution_cm=None
        if args.gsd is None
        else check_resolution(args.gsd, "--gsd") * 100,
        precision=args.precision,
    )


def cmd_train(args: argparse.Namespace, out: Reporter) -> dict[str, Any]:
    from core.training.config import BatchProgress, EpochResult, TrainingStarted
    from core.training.loop import train

    config = train_config(args)

    def progress(event: Any) -> None:
        if isinstance(event, TrainingStarted):
            out.line(
                f"training {config.arch} ({event.parameters:,} weights) on {event.device} "
                f"({event.precision}): "
                f"{event.train_images} train / {event.val_images} validation images, "
                f"{event.crop_size} px crops; will save {event.model_path}"
            )
            if config.ground_resolution_cm is not None:  # set by --gsd or the GeoTIFF tiles
                out.line(
                    f"ground resolution {config.ground_resolution_cm / 100:g} m/px: "
                    "georeferenced images are resampled to it, here and in predictions"
                )
            world = int(os.environ.get("WORLD_SIZE", "1") or 1)
            if world > 1:
                out.line(
                    f"{world} processes (torchrun): {config.batch_size} crops a process a "
                    f"batch, {config.batch_size * world} a step"
                )
        elif isinstance(event, BatchProgress):
            out.status(
                f"epoch {_of(event.epoch, event.epochs)} {text_bar(event.batch, event.batches)} "
                f"loss {event.loss:.4f}"
            )
        elif isinstance(event, EpochResult):
            val = (
                "val loss -      val IoU -    "
                if event.val_loss is None
                else f"val loss {event.val_loss:.4f}  val IoU {event.val_iou:.3f}"
            )
            partial = "" if event.complete else " (partial)"
            out.line(
                f"epoch {_of(event.epoch, event.epochs, 3)}{partial}  train loss {event.train_loss:.4f}  "
                f"{val}  {event.seconds:.1f} s  ETA {format_seconds(event.eta_seconds)}"
            )

    with StopOnInterrupt(out) as should_stop:
        result = train(
            args.data,
            args.models,
            config,
            on_progress=progress,
            should_stop=should_stop,
            resume_from=args.resume,
            init_from=args.init,
        )
    why = {None: "finished", "time": "time limit reached", "user": "stopped by user"}[
        result.stopped
    ]
    iou = "-" if result.val_iou is None else f"{result.val_iou:.3f}"
    out.line(
        f"{why}: saved {result.model_path} (epoch {result.best_epoch}, val IoU {iou}, "
        f"{result.samples_seen} samples, {result.seconds:.1f} s)"
    )
    return result.as_dict()


def add_commands(sub: Any) -> None:
    from core.input_stretch import STRETCHES
    from core.training.config import (
        ARCHITECTURE_CHOICES,
        DEFAULT_INPUT_STRETCH,
        LOSSES,
        PRECISIONS,
        TrainConfig,
    )
    from core.training.config import DEFAULT_RECIPE as recipe

    archs = "; ".join(f"{k}: {v}" for k, v in ARCHITECTURE_CHOICES)
    p = sub.add_parser(
        "train",
        formatter_class=Formatter,
        help="train a model on a dataset's train split",
        description="Train on DATASET/train (a share of it held out for validation; the "
        "test split is never used) and save MODELS/model_vN.safetensors "
        "with the next free N. Ctrl+C stops after the current batch and "
        f"still saves. Architectures: {archs}. The original "
        "exercise's recipe: --arch prescribed --optimizer adam --lr 1e-4 "
        "--loss bce --schedule constant --batch-size 32 --no-augment "
        "--balance 0 --no-tune-threshold --weight-decay 0 --warmup 0 --keep best "
        "--input-stretch none.",
    )
    p.add_argument(
        "--data", required=True, type=Path, help="dataset folder (from `rooftop generate`)"
    )
    p.add_argument(
        "--models", required=True, type=Path, help="folder for model_vN.safetensors (created)"
    )
    p.add_argument(
        "--arch",
        default=recipe["arch"],
        help="architecture: " + ", ".join(k for k, _v in ARCHITECTURE_CHOICES),
    )
    p.add_argument(
        "--width",
        type=positive_int,
        default=None,
        help="channels of the U-Nets' first level, doubled at each level below (default: 8 "
        "for liteunet, 16 for unet and resunet; wider learns more per crop but sees fewer "
        "crops in a time budget: 16 is worth trying on a GPU)",
    )
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="number of epochs (default: as many as --max-minutes allows, or "
        "100 without a time budget; with both, whichever ends first)",
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=recipe["batch_size"], help="images per batch"
    )
    p.add_argument("--lr", type=float, default=recipe["lr"], help="peak learning rate")
    p.add_argument("--loss", default=recipe["loss"], choices=LOSSES, help="loss function")
    p.add_argument(
        "--optimizer", default=recipe["optimizer"], choices=("adamw", "adam"), help="optimizer"
    )
    p.add_argument(
        "--weight-decay",
        type=float,
        default=recipe["weight_decay"],
        help="weight decay (AdamW: decoupled)",
    )
    p.add_argument(
        "--schedule",
        default=recipe["schedule"],
        choices=("cosine", "constant"),
        help="learning rate after a 5 %% warm-up: cosine decay over the run (epochs, "
        "or --max-minutes when that ends first) or constant",
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=recipe.get("warmup", 0.05),
        help="share of the run spent warming the learning rate up from 0",
    )
    p.add_argument(
        "--no-augment",
        action="store_true",
        help="no augmentation (default: scale, flips, 90-degree rotations, colour, blur, noise)",
    )
    p.add_argument(
        "--balance",
        type=float,
        default=0.5,
        help="probability of drawing again a crop with under 5 %% roof (0 = off)",
    )
    p.add_argument(
        "--tune-threshold",
        action=argparse.BooleanOptionalAction,
        default=TrainConfig.tune_threshold,
        help="choose the model's threshold on the held-out images and store it in the model "
        "(default: keep 0.5, which held up better on new tiles: docs/model-quality.md)",
    )
    p.add_argument(
        "--keep",
        default="final",
        choices=("final", "best"),
        help="the model saved: the last epoch's (the schedule has annealed by then) or the "
        "epoch with the best validation IoU",
    )
    p.add_argument(
        "--ema",
        type=float,
        default=TrainConfig.ema_decay,
        metavar="DECAY",
        help="save an exponential moving average of the weights with this decay (e.g. 0.999; "
        "warmed up, so short runs work too); 0 = off, the default",
    )
    p.add_argument(
        "--gsd",
        type=float,
        default=None,
        metavar="M",
        help="the ground sample distance (m/px) the model learns at and predictions resample "
        "images to; georeferenced training images (GeoTIFF) are resampled to it, the others "
        "taken to be at it (default: the finest of the georeferenced training images; none: "
        "images are used as they are)",
    )
    p.add_argument(
        "--input-stretch",
        default=DEFAULT_INPUT_STRETCH,
        choices=STRETCHES,
        help="per-image contrast stretch the model learns on and predicts with: none (RGB as "
        "it is) or percentile (each band cut at its 2nd and 98th percentile, as QGIS shows "
        "rasters; one stretch per orthophoto)",
    )
    p.add_argument(
        "--stroke-affinity",
        type=float,
        default=TrainConfig.stroke_affinity,
        help="weight of the regulariser that makes the pixels strokes leave unlabelled follow "
        "the image's colour edges (0 = off, the default; e.g. 0.5; images with full labels "
        "are not affected)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of the train split held out for validation",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="arithmetic: auto (bfloat16 mixed precision on a GPU or a CPU with native bfloat16, "
        "else float32), fp32 or bf16",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="time budget: train until this many minutes are used (whatever the "
        "dataset's size; the schedule anneals over it), then save the model",
    )
    p.add_argument("--crop-size", type=int, default=256, help="training crop size in pixels")
    p.add_argument(
        "--samples-per-epoch",
        type=positive_int,
        default=None,
        help="training crops per epoch (default: one per training image, at least 64)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="MODEL",
        help="continue training from this checkpoint (optimizer state included)",
    )
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        metavar="MODEL",
        help="start a new run from this model's weights (its architecture, a fresh "
        "optimizer and schedule): fine-tune an earlier model on new labels",
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object with the model path and history"
    )
    p.set_defaults(run=cmd_train)
