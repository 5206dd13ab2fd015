"""The training loop: schedule, time limits, cancellation, the best epoch and the checkpoint.

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
  a time budget (``max_minutes``) alone trains until the budget is used, whatever the size of the
  dataset; ``epochs`` alone trains that many; with both, whichever ends first. The run's progress
  is the larger of the share of epochs done and the share of the time budget used, so the
  schedule anneals over whichever limit applies;
* on a GPU, two threads cut and augment the next batches while the device trains on the current
  one (``loader_threads``), so it does not wait for the CPU; each batch has its own generator
  seeded from the run's, so the batches do not depend on the number of threads;
* with ``precision="auto"`` the forward pass runs in bfloat16 mixed precision on a GPU and on a
  CPU with native bfloat16 (AVX-512 BF16 or AMX): about 1.6x the samples per second for the
  U-Nets on such a CPU; weights, optimizer state and the loss stay float32;
* the saved model is the last epoch's (``keep="final"``, the default: the schedule has annealed
  by then, and picking an epoch by a few validation tiles picked early, undertrained ones:
  docs/model-quality.md) or the epoch with the best validation IoU (``keep="best"``, the
  original recipe's); with ``tune_threshold`` the probability threshold is chosen on
  validation too (:func:`core.training.validate.robust_threshold` over 0.20, 0.25, ..., 0.80)
  and stored in the checkpoint as the model's default ``threshold``;
* with ``ema_decay`` (off by default) the model validated, previewed and saved is an exponential
  moving average of the weights, warmed up (:mod:`core.training.weight_average`);
* with ``pseudo_labels`` (self-training on strokes), once half the run is done, each image
  labelled by strokes only is predicted by the model of that moment, and its unlabelled pixels
  the model is sure of (probability at least ``pseudo_labels``, or at most 1 minus it) are
  learnt from for the rest of the run; the strokes keep their labels;
* validation holds out whole images (scenes), at least two when there are eight or more, and
  scores the same centre crops of them; with a time budget it runs after the first epoch, the
  last, and otherwise only as often as keeps it to :data:`VALIDATION_SHARE` of the time (on a
  2-core CPU without bfloat16 it took 30 % of a 5-minute run when every epoch of 64 crops was
  validated), so the budget goes to training; a run of epochs validates every epoch;
* with a time budget, training stops when only the last validation's time is left (at most a
  quarter of the budget), so the final validation and the save fit in the budget (in one
  process; under torchrun only rank 0 validates and the ranks must stop on the same batch, so
  they stop at the budget itself).

The original way (Adam 1e-4, BCE, no augmentation, constant rate) is
``TrainConfig(arch="prescribed", optimizer="adam", lr=1e-4, loss="bce", schedule="constant",
augment=False, balance=0, tune_threshold=False, weight_decay=0)``: :data:`ORIGINAL_RECIPE`.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from core.checkpoint import (
    load_checkpoint,
    next_model_path,
    remove_stale_model_temp_files,
    save_checkpoint,
)
from core.dataset import open_dataset
from core.device import (
    autocast,
    precision_name,
    resolve_device,
    resolve_precision,
    tune_cpu_allocator,
)
from core.errors import ConfigError, DatasetError, ImageReadError
from core.ground_resolution import finest_resolution, model_resolution
from core.input_stretch import model_stretch
from core.io import ensure_folder
from core.models import build_model
from core.progress import ProgressCallback, StopCheck, Stopped
from core.training import distributed
from core.training.config import (
    MIN_SIDE,
    BatchProgress,
    EpochResult,
    TrainConfig,
    TrainingStarted,
    TrainResult,
)
from core.training.data import (
    BatchLoader,
    ImageCache,
    add_pseudo_labels,
    labelled_samples,
    photometric_jitter,
    split_validation,
    to_input_tensor,
)
from core.training.losses import colour_affinity_loss, compute_loss
from core.training.validate import (
    ValidationReserve,
    score_and_threshold,
    score_fields,
    validate,
)
from core.training.weight_average import WeightAverage

#: With a time budget, the share of the time validation may take: an epoch is validated when
#: the training since the last validation took at least (1 - share) / share times as long as
#: that validation did (the first epoch and the last are always validated). A run of epochs
#: (no budget) validates every epoch.
VALIDATION_SHARE = 0.1

#: The clock of time budgets and timings (a test replaces it with a fake one).
_now = time.monotonic


def _crop_size_for(cache: ImageCache, wanted: int, multiple: int) -> int:
    smallest = wanted
    for index, sample in enumerate(cache.samples):
        w, h = cache.size(index)  # header only, no decoding
        if min(w, h) < MIN_SIDE:
            raise ImageReadError(
                f"image is {w} x {h}; training needs at least {MIN_SIDE} px a side",
                sample.image_path,
            )
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
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
    )


def _agreed_stop(
    user: bool, elapsed: float, budget: float | None, samples_seen: int
) -> tuple[str | None, float]:
    """The stop decision of every rank at the top of a batch: one all_reduce (MAX) of the stop
    flags and clocks, so every rank stops on the same batch, and the schedule follows the same
    (slowest) clock on every rank."""
    flag, elapsed = distributed.agree(1.0 if user else 0.0, elapsed)
    if flag:
        return "user", elapsed
    if budget and samples_seen and elapsed >= budget:
        return "time", elapsed
    return None, elapsed


def train(
    dataset_dir: str | Path,
    models_dir: str | Path,
    config: TrainConfig | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    resume_from: str | Path | None = None,
    init_from: str | Path | None = None,
    on_weights: Callable[[int, dict], None] | None = None,
) -> TrainResult:
    """Train a model on ``dataset_dir``'s train split and save it as ``models_dir/model_vN``.

    ``resume_from`` continues a run (its weights, optimizer state and history); ``init_from``
    starts a new run from an earlier model's weights (its architecture, a fresh optimizer and
    schedule), to fine-tune last year's model on a few new labels.

    Under ``torchrun`` (:mod:`core.training.distributed`) every process trains one shared model
    with DistributedDataParallel, ``batch_size`` crops a process a batch and an epoch's crops
    shared out; rank 0 alone validates, reports ``on_progress`` and writes the checkpoint; all
    ranks stop on the same batch (a stop asked on any rank, or the time budget).
    """
    if resume_from is not None and init_from is not None:
        raise ConfigError(
            "--resume and --init exclude each other: --resume continues a run, "
            "--init starts a new run from a model's weights"
        )
    config = config or TrainConfig()
    config.validate()
    with distributed.session(resolve_device(config.device)) as device:
        return _train(
            dataset_dir,
            models_dir,
            config,
            device,
            on_progress,
            should_stop,
            resume_from,
            init_from,
            on_weights,
        )


def _train(
    dataset_dir,
    models_dir,
    config: TrainConfig,
    device: torch.device,
    on_progress: ProgressCallback | None,
    should_stop: StopCheck | None,
    resume_from,
    init_from,
    on_weights,
) -> TrainResult:
    started = _now()
    main, world = distributed.is_main(), distributed.world_size()
    emit = (on_progress if main else None) or (lambda event: None)
    on_weights = on_weights if main else None
    stop_requested = should_stop or (lambda: False)
    if device.type == "cpu":
        tune_cpu_allocator()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    dataset = open_dataset(dataset_dir)
    if not dataset.train:
        raise DatasetError("the train split has no images", Path(dataset_dir) / "train" / "data")
    labelled = labelled_samples(dataset.train)
    train_samples, val_samples = split_validation(labelled, config.val_fraction, config.seed)
    if config.val_max_images is not None:
        val_samples = val_samples[: config.val_max_images]

    torch.manual_seed(config.seed)
    # Each rank draws its own crops (rank 0's are a single process's).
    rng = np.random.default_rng(config.seed + distributed.rank())
    history: list[EpochResult] = []
    resumed = None
    if resume_from is not None:
        resumed = load_checkpoint(resume_from, device="cpu", with_optimizer=True)
        model = resumed.model
        config.arch, config.arch_params = resumed.arch, dict(resumed.arch_params)
        # The optimizer state only fits the optimizer that wrote it (checkpoints written before
        # the optimizer was configurable used Adam).
        config.optimizer = resumed.metadata.get("config", {}).get("optimizer", "adam")
        config.input_stretch = model_stretch(model)
        history = [EpochResult(**h) for h in resumed.metadata.get("history", [])]
    elif init_from is not None:
        start = load_checkpoint(init_from, device="cpu")
        model = start.model
        config.arch, config.arch_params = start.arch, dict(start.arch_params)
        config.input_stretch = model_stretch(model)  # its weights learnt that input
    else:
        model = build_model(config.arch, **config.arch_params)
    model.input_stretch = config.input_stretch
    # the scale its weights learnt (a resumed run's always; a starting model's unless set)
    if resumed is not None or (init_from is not None and config.ground_resolution_cm is None):
        config.ground_resolution_cm = model_resolution(model)
    if config.ground_resolution_cm is None:
        config.ground_resolution_cm = finest_resolution(labelled)
    model.ground_resolution_cm = config.ground_resolution_cm
    model.to(device).train()
    model = model.to(memory_format=torch.channels_last)
    model = distributed.sync_batch_norm(model, device)
    optimizer = _make_optimizer(config, model)
    # the weights validated and saved: the model's own, or their moving average (ema_decay)
    average = WeightAverage(model, config.ema_decay) if config.ema_decay else None
    kept = model if average is None else average.model
    if resumed is not None and resumed.optimizer_state is not None:
        try:
            optimizer.load_state_dict(resumed.optimizer_state)
        except (ValueError, KeyError) as exc:  # e.g. saved by a different optimizer layout
            raise ConfigError(
                f"cannot restore the optimizer state of {resume_from} ({exc}); "
                f"train a new model instead"
            ) from exc
    base_lrs = []
    for group in optimizer.param_groups:
        group["lr"] = config.lr
        base_lrs.append(config.lr)

    train_cache = ImageCache(train_samples, config.input_stretch, config.ground_resolution_cm)
    val_cache = ImageCache(val_samples, config.input_stretch, config.ground_resolution_cm)
    crop = _crop_size_for(train_cache, config.crop_size, getattr(model, "size_multiple", 1))
    threads = config.loader_threads
    if threads is None:
        threads = 2 if device.type == "cuda" else 0
    loader = BatchLoader(train_cache, crop, config, threads, pin=device.type == "cuda")
    net = distributed.wrap(model, device)  # the model itself, or its DDP wrapper
    model_path = None
    if main:
        ensure_folder(models_dir)
        remove_stale_model_temp_files(models_dir)  # leftovers of checkpoint writes killed midway
        model_path = next_model_path(models_dir)
    model_path = distributed.from_main(model_path)
    amp_dtype = resolve_precision(config.precision, device, model)
    emit(
        TrainingStarted(
            len(train_samples),
            len(val_samples),
            str(device),
            crop,
            sum(p.numel() for p in model.parameters()),
            model_path,
            precision_name(amp_dtype),
        )
    )

    per_epoch = config.epoch_samples(len(train_samples))
    per_rank = math.ceil(per_epoch / world)  # an epoch's crops are shared out between ranks
    batches = max(1, math.ceil(per_rank / config.batch_size))
    budget = config.max_minutes * 60 if config.max_minutes else None
    deadline = started + budget if budget else None
    first_epoch = len(history) + 1
    limit = config.epoch_limit()
    last_epoch = None if limit is None else len(history) + limit  # None: the budget stops it
    total_samples = None if limit is None else limit * per_rank * world
    samples_seen = 0
    stopped: str | None = None
    # The saved model: the last epoch, or (keep="best") the best by validation IoU.
    best_state, best_iou, best_epoch, best_threshold = None, -1.0, None, 0.5
    epoch_seconds: list[float] = []
    # seconds kept for the final validation (the last one's time, or a guess before the first)
    reserve = ValidationReserve(
        val_cache if main else None, config.val_max_side, budget or 0.0, _now()
    )
    last_validation_end, validation_seconds = None, 0.0
    lr_now = config.lr
    pseudo_labelled = False  # config.pseudo_labels: done once, at half the run

    def score_now():
        return validate(
            kept, val_cache, device, config.loss, max_side=config.val_max_side, amp_dtype=amp_dtype
        )

    def progress_now(elapsed: float | None = None) -> float:
        done = 0.0 if total_samples is None else samples_seen / total_samples
        if budget:
            done = max(done, (_now() - started if elapsed is None else elapsed) / budget)
        return done

    try:
        epochs = (
            itertools.count(first_epoch)
            if last_epoch is None
            else range(first_epoch, last_epoch + 1)
        )
        for epoch in epochs:
            epoch_start = _now()
            order = rng.permutation(np.resize(np.arange(len(train_samples)), per_rank)).tolist()
            seeds = rng.integers(2**63, size=batches).tolist()
            plan = [
                (order[b * config.batch_size : (b + 1) * config.batch_size], seeds[b])
                for b in range(batches)
            ]
            prepared_batches = loader.epoch(plan)
            loss_sum, loss_count = 0.0, 0
            for batch in range(batches):
                elapsed = None
                if world > 1:  # every rank the same answer: stop on the same batch
                    stopped, elapsed = _agreed_stop(
                        stop_requested(), _now() - started, budget, samples_seen
                    )
                elif stop_requested():
                    stopped = "user"
                elif deadline is not None and samples_seen:
                    # (after at least one batch, so a time limit always saves; the final
                    # validation's time is kept, so the run ends in its budget)
                    now = _now()
                    if now + reserve.seconds(now) >= deadline:
                        stopped = "time"
                if stopped:
                    break
                indices = plan[batch][0]
                prepared = next(prepared_batches)
                x = to_input_tensor(prepared.images, device)
                if config.augment and config.photometric:
                    x = photometric_jitter(x, prepared.rng, config.photometric_strength)
                target = prepared.masks[:, None].to(device, non_blocking=True).float()
                known = (
                    None
                    if prepared.known is None
                    else prepared.known[:, None].to(device, non_blocking=True)
                )
                factor = lr_factor(progress_now(elapsed), config.schedule, config.warmup)
                for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                    group["lr"] = lr_now = base * factor
                with autocast(device, amp_dtype):
                    logits = net(x)
                loss = compute_loss(config.loss, logits, target, known)
                if known is not None and config.stroke_affinity:
                    # strokes: the unlabelled pixels follow the image's colour edges
                    loss = loss + config.stroke_affinity * colour_affinity_loss(
                        logits, x, 1.0 - known.float()
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if average is not None:
                    average.update(model)
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value):
                    raise ConfigError(
                        f"training diverged (loss {loss_value}) at epoch {epoch}; "
                        "lower the learning rate"
                    )
                loss_sum += loss_value * len(indices)
                loss_count += len(indices)
                samples_seen += len(indices) * world
                reserve.trained(x.shape[0] * x.shape[-2] * x.shape[-1])
                emit(
                    BatchProgress(
                        epoch,
                        last_epoch,
                        batch + 1,
                        batches,
                        loss_value,
                        samples_seen,
                        _now() - started,
                    )
                )
            prepared_batches.close()  # drops batches prepared ahead when the epoch was cut short
            if loss_count == 0:
                break  # stopped before this epoch trained anything
            if world > 1:  # the epoch's loss over every rank's crops
                loss_sum, loss_count = distributed.total(loss_sum, loss_count)
            validation_start = _now()
            seconds_trained = validation_start - epoch_start
            final = (
                stopped is not None
                or (last_epoch is not None and epoch >= last_epoch)
                # the budget will likely end the run before another epoch has trained
                or (
                    deadline is not None
                    and validation_start + reserve.seconds(validation_start) + seconds_trained
                    >= deadline
                )
            )
            due = (
                budget is None  # a run of epochs: every epoch, as always
                or final
                or last_validation_end is None
                or validation_start - last_validation_end
                >= validation_seconds * (1 - VALIDATION_SHARE) / VALIDATION_SHARE
            )
            scores = score_now() if main and due else None
            if due:
                last_validation_end = _now()
                validation_seconds = last_validation_end - validation_start
                reserve.timed(validation_seconds)
            seconds = _now() - epoch_start
            epoch_seconds.append(seconds)
            eta = None
            if not stopped:
                if last_epoch is not None:
                    eta = (last_epoch - epoch) * float(np.mean(epoch_seconds))
                if deadline is not None:
                    left = max(0.0, deadline - _now())
                    eta = left if eta is None else min(eta, left)
            result = EpochResult(
                epoch=epoch,
                epochs=last_epoch,
                train_loss=loss_sum / loss_count,
                seconds=seconds,
                eta_seconds=eta,
                samples_seen=samples_seen,
                complete=stopped is None,
                lr=lr_now,
                **score_fields(scores, config.tune_threshold),
            )
            history.append(result)
            emit(result)
            if on_weights is not None:  # a CPU copy of this epoch's weights (live preview)
                on_weights(
                    epoch,
                    {k: v.detach().to("cpu", copy=True) for k, v in kept.state_dict().items()},
                )
            if scores is not None:
                score, threshold = score_and_threshold(scores, config.tune_threshold)
                if config.keep == "final":
                    best_iou, best_epoch, best_threshold = score, epoch, threshold
                elif score > best_iou:
                    best_iou, best_epoch, best_threshold = score, epoch, threshold
                    best_state = copy.deepcopy(kept.state_dict())
            if stopped:
                break
            if config.pseudo_labels and not pseudo_labelled and progress_now() >= 0.5:
                pseudo_labelled = True
                add_pseudo_labels(kept, train_cache, device, config)
    finally:
        loader.close()

    if not history:
        raise Stopped("training was stopped before the first batch finished; nothing to save")
    if main and len(val_cache) and history[-1].val_iou is None:
        # the budget ended the run right after an epoch left unvalidated: score the weights saved
        scores = score_now()
        history[-1] = dataclasses.replace(
            history[-1], **score_fields(scores, config.tune_threshold)
        )
        score, threshold = score_and_threshold(scores, config.tune_threshold)
        if config.keep == "final" or score > best_iou:
            best_iou, best_epoch, best_threshold = score, history[-1].epoch, threshold
            best_state = None  # these are the weights in hand
    final_state = None
    if best_state is not None and best_epoch != history[-1].epoch:
        final_state = copy.deepcopy(kept.state_dict())
        kept.load_state_dict(best_state)
    if best_epoch is None:
        best_epoch = history[-1].epoch
    if not main:  # rank 0 writes the checkpoint
        return TrainResult(
            model_path=model_path,
            history=history,
            stopped=stopped,
            best_epoch=best_epoch,
            val_iou=None,
            samples_seen=samples_seen,
            seconds=_now() - started,
            threshold=best_threshold,
        )
    metadata = {
        "config": asdict(config),
        "dataset": str(Path(dataset_dir).resolve()),
        "history": [asdict(h) for h in history],
        "metrics": {
            "val_iou": best_iou if best_iou >= 0 else None,
            "best_epoch": best_epoch,
            "train_images": len(train_samples),
            "val_images": len(val_samples),
        },
        "threshold": best_threshold,
        "threshold_source": "validation" if config.tune_threshold and best_iou >= 0 else "default",
        "normalization": "rgb / 255",
        "input_stretch": config.input_stretch,
        # the ground resolution it learnt at (core.ground_resolution); Deepness's `resolution`
        "resolution_cm": config.ground_resolution_cm,
        "precision": precision_name(amp_dtype),
        "samples_seen": samples_seen + (resumed.metadata.get("samples_seen", 0) if resumed else 0),
        "stopped": stopped,
        "resumed_from": str(resume_from) if resume_from else None,
        "initialised_from": str(init_from) if init_from else None,
        "train_seconds": round(_now() - started, 3),
        "world_size": world,
        "global_batch_size": config.batch_size * world,
    }
    kept.to("cpu")
    save_checkpoint(model_path, kept, metadata, optimizer_state=optimizer.state_dict())
    if final_state is not None:
        kept.load_state_dict(final_state)
    return TrainResult(
        model_path=model_path,
        history=history,
        stopped=stopped,
        best_epoch=best_epoch,
        val_iou=metadata["metrics"]["val_iou"],
        samples_seen=samples_seen,
        seconds=_now() - started,
        threshold=best_threshold,
    )
