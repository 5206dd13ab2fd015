"""The training loop and recipe on tiny synthetic data: it learns, stops, resumes, augments in
step, balances crops, tunes and stores the threshold, and reports the documented events.

Fast (tiny models, 64 px images); no assertion depends on wall-clock time."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from core.checkpoint import load_checkpoint, read_metadata
from core.errors import ConfigError, ImageReadError
from core.training import data as data_module
from core.training.config import (
    ORIGINAL_RECIPE,
    THRESHOLDS,
    ZOOM_OUT_MAX,
    BatchProgress,
    EpochResult,
    TrainConfig,
    TrainingStarted,
    TrainResult,
)
from core.training.data import (
    COARSEN_MAX,
    ImageCache,
    coarsened,
    mirror_padded,
    photometric_jitter,
    random_crop_batch,
)
from core.training.loop import lr_factor, train
from core.training.validate import validate
from tests.factories import bright_squares, tiny_train_config, write_dataset

TINY = {"width": 8, "depth": 2}


def _blocks(rng: np.random.Generator, size: int, block: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """An image of random coloured blocks whose mask is derived from it: roof = red > 128."""
    small = rng.integers(0, 256, (size // block, size // block, 3), dtype=np.uint8)
    image = small.repeat(block, 0).repeat(block, 1)
    return image, image[..., 0] > 128


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """8 train + 2 test images of bright squares on a dark noisy ground: trivially learnable."""
    return write_dataset(
        tmp_path_factory.mktemp("train") / "ds", n_train=8, n_test=2, draw=bright_squares
    )


def _config(**kw) -> TrainConfig:
    return tiny_train_config(**{"arch_params": dict(TINY), **kw})


def test_loop_learns_a_trivial_problem(dataset, tmp_path):
    result = train(dataset, tmp_path / "m", _config(epochs=12, photometric=False))
    losses = [h.train_loss for h in result.history]
    assert np.mean(losses[-3:]) < 0.85 * np.mean(losses[:2])
    assert result.val_iou is not None and result.val_iou > 0.8
    assert result.val_iou > result.history[0].val_iou_tuned
    assert result.model_path.is_file()


def test_should_stop_stops_within_one_batch_and_still_saves(dataset, tmp_path):
    batches = []
    flag = {"stop": False}

    def on_progress(event):
        if isinstance(event, BatchProgress):
            batches.append(event)
            if len(batches) == 3:
                flag["stop"] = True

    result = train(
        dataset,
        tmp_path / "m",
        _config(epochs=50),
        on_progress=on_progress,
        should_stop=lambda: flag["stop"],
    )
    assert len(batches) == 3  # no batch started after the request
    assert result.stopped == "user"
    assert result.samples_seen == 12
    assert result.model_path.is_file()
    assert not result.history[-1].complete


def test_time_limit_stops_and_saves(dataset, tmp_path):
    result = train(dataset, tmp_path / "m", _config(epochs=1_000_000, max_minutes=1e-4))
    assert result.stopped == "time"
    assert result.model_path.is_file()
    assert read_metadata(result.model_path)["stopped"] == "time"


def test_resume_continues_history_and_optimizer_state(dataset, tmp_path):
    first = train(dataset, tmp_path / "m", _config(epochs=2))
    loaded = load_checkpoint(first.model_path, with_optimizer=True)
    assert {float(v["step"]) for v in loaded.optimizer_state["state"].values()} == {4.0}  # 2 x 2
    second = train(dataset, tmp_path / "m", _config(epochs=2), resume_from=first.model_path)
    assert len(second.history) == 4
    assert [h.epoch for h in second.history] == [1, 2, 3, 4]
    again = load_checkpoint(second.model_path, with_optimizer=True)
    assert {float(v["step"]) for v in again.optimizer_state["state"].values()} == {8.0}
    assert read_metadata(second.model_path)["resumed_from"] == str(first.model_path)


def test_geometric_augmentation_keeps_image_and_mask_aligned(tmp_path):
    rng = np.random.default_rng(1)
    cache = ImageCache([])
    cache._data = [_blocks(rng, 128), _blocks(rng, 96)]
    cache.samples = [None, None]
    draw = np.random.default_rng(2)
    # Flips and rotations only: exact.
    images, masks = random_crop_batch(cache, [0, 1] * 8, 64, draw, augment=True)
    assert np.array_equal(images[..., 0] > 128, masks)
    # With scale jitter (bilinear resampling), the relation holds away from block edges.
    images, masks = random_crop_batch(cache, [0, 1] * 8, 64, draw, augment=True, scale_jitter=0.25)
    agree = np.mean((images[..., 0] > 128) == masks)
    assert agree > 0.95
    # The augmentation did change something (not the identity crop every time).
    plain, _ = random_crop_batch(cache, [0] * 16, 64, np.random.default_rng(2), augment=False)
    assert not all(np.array_equal(plain[0], im) for im in images[::2])


def test_photometric_strength_scales_the_jitter():
    x = torch.rand(16, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    same = photometric_jitter(x.clone(), np.random.default_rng(0), strength=0.0)
    assert torch.allclose(same, x, atol=1e-4)  # strength 0: nothing changes
    change = {
        s: float((photometric_jitter(x.clone(), np.random.default_rng(0), s) - x).abs().mean())
        for s in (1.0, 2.0)
    }
    assert change[2.0] > 1.3 * change[1.0] > 0
    with pytest.raises(ConfigError, match="photometric strength"):
        TrainConfig(photometric_strength=-1).validate()


def test_coarsened_keeps_the_size_and_loses_the_detail():
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    flat = np.full((64, 64, 3), 90, np.uint8)
    for factor in (1.25, 2.0, COARSEN_MAX):
        out = coarsened(noise, factor)
        assert out.shape == noise.shape and out.dtype == np.uint8
        assert out.std() < noise.std()  # fine detail is gone
    assert coarsened(noise, 4.0).std() < coarsened(noise, 1.25).std()  # the more, the coarser
    assert np.array_equal(coarsened(flat, 3.0), flat)  # nothing to lose: unchanged


def test_coarsen_touches_the_image_only_and_its_share(monkeypatch):
    rng = np.random.default_rng(1)
    cache = ImageCache([])
    cache._data = [_blocks(rng, 128, block=2)]
    cache.samples = [None]
    args = dict(crop=64, augment=True, scale_jitter=0.0)
    plain_im, _ = random_crop_batch(cache, [0] * 40, rng=np.random.default_rng(5), **args)
    sharp = [float(np.abs(np.diff(im.astype(int), axis=0)).mean()) for im in plain_im]
    blurred, _ = random_crop_batch(
        cache, [0] * 40, rng=np.random.default_rng(5), coarsen=1.0, **args
    )
    soft = [float(np.abs(np.diff(im.astype(int), axis=0)).mean()) for im in blurred]
    assert max(soft) < min(sharp)  # every crop lost detail
    # With coarsening made the identity, every crop went through it, each by a factor in its
    # range, and the masks still match their images pixel for pixel: only images are touched.
    factors = []

    def identity(image, factor):
        factors.append(factor)
        return image

    monkeypatch.setattr(data_module, "coarsened", identity)
    images, masks = random_crop_batch(
        cache, [0] * 40, rng=np.random.default_rng(5), coarsen=1.0, **args
    )
    assert len(factors) == 40 and all(1.25 <= f <= COARSEN_MAX for f in factors)
    assert np.array_equal(images[..., 0] > 128, masks)
    monkeypatch.undo()
    half_im, _ = random_crop_batch(
        cache, [0] * 200, rng=np.random.default_rng(6), coarsen=0.5, **args
    )
    edges = np.array([np.abs(np.diff(im.astype(int), axis=0)).mean() for im in half_im])
    share = float(np.mean(edges < min(sharp)))
    assert 0.35 < share < 0.65
    with pytest.raises(ConfigError, match="coarsen"):
        TrainConfig(coarsen=1.5).validate()


def test_mirror_padded_mirrors_evenly_to_the_side():
    a = np.arange(12).reshape(3, 4)
    out = mirror_padded(a, 7)
    assert out.shape == (7, 7)
    assert np.array_equal(out[2:5, 1:5], a)  # the original in the middle (4 rows, 3 columns added)
    assert np.array_equal(out[1, 1:5], a[0]) and np.array_equal(out[0, 1:5], a[1])  # mirrored
    assert np.array_equal(out[2:5, 0], a[:, 0])  # and so is the left edge
    rgb = np.zeros((10, 20, 3), np.uint8)
    assert mirror_padded(rgb, 16).shape == (16, 20, 3)  # a side already long enough is kept
    assert mirror_padded(rgb, 50).shape == (50, 50, 3)  # more than the image itself: repeated


def test_zoom_out_shrinks_crops_of_a_small_image_and_keeps_masks_aligned(monkeypatch):
    rng = np.random.default_rng(2)
    cache = ImageCache([])
    cache._data = [_blocks(rng, 64, block=8)]  # the image is as small as the crop
    cache.samples = [None]
    args = dict(crop=64, augment=True, scale_jitter=0.0)
    sides = []
    resize = data_module._resize_pair

    def spy(image, mask, size):
        sides.append(image.shape[0])
        return resize(image, mask, size)

    monkeypatch.setattr(data_module, "_resize_pair", spy)
    plain, _ = random_crop_batch(cache, [0] * 30, rng=np.random.default_rng(4), **args)
    assert sides == []  # no jitter, no zoom: crops are cut at their size
    images, masks = random_crop_batch(
        cache, [0] * 30, rng=np.random.default_rng(4), zoom_out=3.0, **args
    )
    # every crop covered from 1 to 3 times its side of the mirrored image, shrunk to 64 px
    assert len(sides) == 30 and all(64 < side <= 192 for side in sides)
    assert max(sides) > 128

    # the roofs shrank with the crop: more edges per pixel than in the plain crops
    def edges(batch):
        return float(np.abs(np.diff(batch[..., 0].astype(int), axis=1)).mean())

    assert edges(images) > 1.2 * edges(plain)
    # image and mask went through the same mirror, orientation and resize
    agree = np.mean((images[..., 0] > 128) == masks)
    assert agree > 0.95
    for bad in (0.5, ZOOM_OUT_MAX + 1):
        with pytest.raises(ConfigError, match="zoom out"):
            TrainConfig(zoom_out=bad).validate()


def test_photometric_jitter_changes_colour_not_geometry():
    x = torch.zeros(6, 3, 32, 32)
    x[:, :, 8:24, 8:24] = 0.8  # a bright square on a dark ground
    y = photometric_jitter(x, np.random.default_rng(0))
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert not torch.equal(x, y)
    inside = y[:, :, 10:22, 10:22].mean(dim=(1, 2, 3))
    outside = torch.cat([y[:, :, :6].flatten(1), y[:, :, 26:].flatten(1)], 1).mean(1)
    assert bool((inside > outside + 0.3).all())  # the square is still where it was


def test_balanced_crops_favour_roof():
    image = np.zeros((256, 256, 3), np.uint8)
    mask = np.zeros((256, 256), bool)
    mask[:48, :48] = True
    cache = ImageCache([])
    cache._data, cache.samples = [(image, mask)], [None]
    fractions = {}
    for balance in (0.0, 1.0):
        _, masks = random_crop_batch(
            cache,
            [0] * 300,
            64,
            np.random.default_rng(0),
            augment=False,
            balance=balance,
            min_roof=0.05,
        )
        fractions[balance] = masks.mean()
    assert fractions[1.0] > 2 * fractions[0.0]


class _RedModel(torch.nn.Module):
    """p = 0.1 + 0.2 * red: roof (red 1) gets 0.3, ground (red 0) 0.1."""

    size_multiple = 1

    def forward(self, x):
        p = 0.1 + 0.2 * x[:, :1]
        return torch.log(p / (1 - p))


def test_validation_tunes_the_threshold():
    image = np.zeros((64, 64, 3), np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[10:30, 20:50] = True
    image[mask] = 255
    cache = ImageCache([])
    cache._data, cache.samples = [(image, mask)], [None]
    scores = validate(_RedModel(), cache, torch.device("cpu"), "bce")
    assert scores.iou == 0.0  # nothing reaches 0.5
    assert scores.tuned_iou == pytest.approx(1.0)
    # perfect from 0.2 to 0.3: the middle one, whose neighbours are perfect too
    assert scores.threshold == 0.25


def test_the_threshold_is_chosen_on_a_broad_maximum_not_a_spike():
    from core.training.config import THRESHOLDS
    from core.training.validate import robust_threshold

    scores = dict.fromkeys(THRESHOLDS, 0.5)
    scores.update({0.35: 0.70, 0.4: 0.71, 0.45: 0.70, 0.75: 0.72})  # 0.75 alone peaks
    assert robust_threshold(scores) == 0.4
    flat = dict.fromkeys(THRESHOLDS, 0.6)
    assert robust_threshold(flat) == 0.5  # ties: the nearest to 0.5


def test_tuned_threshold_is_stored_and_loaded(dataset, tmp_path):
    result = train(dataset, tmp_path / "m", _config(epochs=2))
    assert result.threshold in THRESHOLDS
    meta = read_metadata(result.model_path)
    assert meta["threshold"] == result.threshold
    assert load_checkpoint(result.model_path).threshold == result.threshold
    best = result.history[result.best_epoch - 1]
    assert best.threshold == result.threshold and best.val_iou_tuned == result.val_iou
    untuned = train(dataset, tmp_path / "m", _config(epochs=1, tune_threshold=False))
    assert untuned.threshold == 0.5 and read_metadata(untuned.model_path)["threshold"] == 0.5
    assert read_metadata(untuned.model_path)["threshold_source"] == "default"
    assert TrainConfig().tune_threshold is False  # the user's default keeps 0.5


def test_events_have_the_documented_fields(dataset, tmp_path):
    events = []
    result = train(dataset, tmp_path / "m", _config(epochs=2), on_progress=events.append)
    started = [e for e in events if isinstance(e, TrainingStarted)]
    assert len(started) == 1 and events[0] is started[0]
    s = started[0]
    assert (s.train_images, s.val_images, s.device, s.crop_size) == (6, 2, "cpu", 64)
    assert s.parameters > 0 and s.model_path == result.model_path
    batches = [e for e in events if isinstance(e, BatchProgress)]
    epochs = [e for e in events if isinstance(e, EpochResult)]
    assert len(batches) == 4 and len(epochs) == 2
    b = batches[-1]
    assert (b.epoch, b.epochs, b.batch, b.batches, b.samples_seen) == (2, 2, 2, 2, 16)
    assert np.isfinite(b.loss) and b.elapsed_seconds >= 0
    for e in epochs:
        for name in (
            "epoch",
            "epochs",
            "train_loss",
            "val_loss",
            "val_iou",
            "seconds",
            "eta_seconds",
            "samples_seen",
            "complete",
            "val_iou_tuned",
            "threshold",
            "lr",
        ):
            assert hasattr(e, name)
        assert e.complete and 0 <= e.val_iou <= 1
    assert epochs[-1].eta_seconds == 0
    assert isinstance(result, TrainResult)
    assert {f.name for f in dataclasses.fields(result)} >= {
        "model_path",
        "history",
        "stopped",
        "best_epoch",
        "val_iou",
        "samples_seen",
        "seconds",
        "threshold",
    }
    assert result.as_dict()["threshold"] == result.threshold


def test_original_recipe_is_plain_adam_bce_without_augmentation(dataset, tmp_path):
    config = TrainConfig(
        **{
            **ORIGINAL_RECIPE,
            "epochs": 1,
            "batch_size": 4,
            "crop_size": 64,
            "samples_per_epoch": 4,
            "device": "cpu",
        }
    )
    result = train(dataset, tmp_path / "m", config)
    meta = read_metadata(result.model_path)
    assert meta["arch"] == "prescribed" and meta["config"]["optimizer"] == "adam"
    assert meta["threshold"] == 0.5
    assert result.history[0].lr == pytest.approx(1e-4)  # constant, no warm-up


def test_schedule_warms_up_then_decays():
    values = [lr_factor(p / 100, "cosine", 0.05) for p in range(101)]
    peak = int(np.argmax(values))
    assert values[0] < 0.1 and 4 <= peak <= 6 and values[peak] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[peak:], values[peak + 1 :], strict=False))
    assert values[-1] == pytest.approx(0.01)
    assert lr_factor(0.7, "constant", 0.05) == 1.0


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_both_precisions_learn_and_the_checkpoint_records_which(dataset, tmp_path, precision):
    events = []
    result = train(
        dataset,
        tmp_path / "m",
        _config(epochs=8, photometric=False, precision=precision),
        on_progress=events.append,
    )
    assert result.val_iou is not None and result.val_iou > 0.6
    meta = read_metadata(result.model_path)
    assert meta["precision"] == precision and meta["config"]["precision"] == precision
    assert events[0].precision == precision
    # weights stay float32 whatever the arithmetic
    assert all(
        p.dtype == torch.float32 for p in load_checkpoint(result.model_path).model.parameters()
    )


def test_background_batch_threads_train_exactly_like_the_calling_thread(dataset, tmp_path):
    runs = [
        train(
            dataset,
            tmp_path / f"m{threads}",
            _config(epochs=3, precision="fp32", loader_threads=threads),
        )
        for threads in (0, 2)
    ]
    assert [h.train_loss for h in runs[0].history] == [h.train_loss for h in runs[1].history]
    first, second = (load_checkpoint(r.model_path).model.state_dict() for r in runs)
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_batch_loader_gives_the_plan_in_order_and_drops_what_is_not_taken(dataset):
    from core.dataset import open_dataset
    from core.training.data import BatchLoader, ImageCache

    cache = ImageCache(open_dataset(dataset).train)
    config = _config()
    plan = [([i % len(cache), (i + 1) % len(cache)], 100 + i) for i in range(6)]
    direct = BatchLoader(cache, 64, config, threads=0)
    threaded = BatchLoader(cache, 64, config, threads=3)
    try:
        for a, b in zip(direct.epoch(plan), threaded.epoch(plan), strict=True):
            assert a.images.shape == (2, 64, 64, 3) and a.images.dtype == torch.uint8
            assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
        batches = threaded.epoch(plan)
        next(batches)
        batches.close()  # a stop after one batch: the rest is cancelled or dropped
    finally:
        threaded.close()
        direct.close()


def test_a_broken_image_read_in_a_loader_thread_names_the_file(dataset, tmp_path):
    import shutil

    broken = tmp_path / "ds"
    shutil.copytree(dataset, broken)
    victim = sorted((broken / "train" / "data").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:120])  # the header reads; the pixels do not
    with pytest.raises(ImageReadError, match=victim.name):
        train(broken, tmp_path / "m", _config(epochs=1, loader_threads=2, val_fraction=0))


def test_auto_precision_is_recorded_as_what_the_model_ran_in(dataset, tmp_path):
    from core.device import cpu_has_native_bf16

    events = []
    result = train(dataset, tmp_path / "m", _config(epochs=1), on_progress=events.append)
    expected = "bf16" if cpu_has_native_bf16() else "fp32"  # liteunet gains from bf16
    assert events[0].precision == expected == read_metadata(result.model_path)["precision"]
    events.clear()
    train(
        dataset,
        tmp_path / "m",
        _config(epochs=1, arch="prescribed", arch_params={}),
        on_progress=events.append,
    )
    assert events[0].precision == "fp32"


def test_bad_recipe_values_are_config_errors():
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp16").validate()
    with pytest.raises(ConfigError, match="loader threads"):
        TrainConfig(loader_threads=-1).validate()
    with pytest.raises(ConfigError, match="optimizer"):
        TrainConfig(optimizer="sgd").validate()
    with pytest.raises(ConfigError, match="schedule"):
        TrainConfig(schedule="step").validate()


def test_the_checkpoint_keeps_the_final_epoch_or_the_best(dataset, tmp_path, monkeypatch):
    """keep="final" (the default) saves the last epoch's weights and its validation scores;
    keep="best" the epoch with the best validation IoU, even when a later one is worse."""
    from core.training import loop
    from core.training.validate import ValidationScores

    ious = iter([0.2, 0.9, 0.4])  # epoch 2 is the best by validation

    def fake_validate(*_args, **_kwargs):
        return ValidationScores(0.1, next(ious), 0.5, 0.5)

    for keep, epoch in (("final", 3), ("best", 2)):
        ious = iter([0.2, 0.9, 0.4])
        monkeypatch.setattr(loop, "validate", fake_validate)
        weights = {}
        result = train(
            dataset,
            tmp_path / keep,
            _config(epochs=3, keep=keep, tune_threshold=False),
            on_weights=lambda e, state, weights=weights: weights.__setitem__(e, state),
        )
        assert result.best_epoch == epoch
        assert result.val_iou == [0.2, 0.9, 0.4][epoch - 1]
        saved = load_checkpoint(result.model_path).model.state_dict()
        assert all(torch.equal(saved[k], weights[epoch][k].float()) for k in saved)
        assert not all(torch.equal(saved[k], weights[epoch % 3 + 1][k].float()) for k in saved)


def test_validation_holds_out_two_images_from_eight_on():
    from core.dataset import Sample
    from core.training.data import MIN_SAMPLES_FOR_TWO_VAL, split_validation

    def samples(n):
        return [
            Sample(f"i{i}.png", "train", Path(f"/d/i{i}.png"), Path(f"/l/{i}.png"))
            for i in range(n)
        ]

    assert len(split_validation(samples(MIN_SAMPLES_FOR_TWO_VAL - 1), 0.1, 0)[1]) == 1
    train_part, val = split_validation(samples(10), 0.1, 0)
    assert len(val) == 2 and len(train_part) == 8
    assert len(split_validation(samples(40), 0.1, 0)[1]) == 4  # the share beyond that
