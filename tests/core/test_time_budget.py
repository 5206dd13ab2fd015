"""A time budget is how users ask for training (issue 13): ``max_minutes`` alone trains until the
budget is used, ``epochs`` alone that many, both: whichever ends first; the schedule anneals over
whichever limit applies."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.training.config import DEFAULT_EPOCHS, MIN_EPOCH_SAMPLES, EpochResult, TrainConfig
from tests.factories import FakeClock, write_dataset

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("budget") / "ds", n_train=4, n_test=1)


def _quick(**kw) -> TrainConfig:
    base = dict(
        arch="prescribed",
        batch_size=2,
        crop_size=64,
        samples_per_epoch=2,
        device="cpu",
        precision="fp32",
        val_fraction=0.25,
        seed=0,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_epoch_limit_follows_whichever_limit_is_given():
    assert TrainConfig().epoch_limit() == DEFAULT_EPOCHS
    assert TrainConfig(max_minutes=5).epoch_limit() is None  # only the budget stops it
    assert TrainConfig(epochs=7).epoch_limit() == 7
    assert TrainConfig(epochs=7, max_minutes=5).epoch_limit() == 7
    assert TrainConfig().epoch_samples(3) == MIN_EPOCH_SAMPLES
    assert TrainConfig().epoch_samples(500) == 500
    assert TrainConfig(samples_per_epoch=5).epoch_samples(500) == 5
    with pytest.raises(ConfigError):
        TrainConfig(epochs=0).validate()
    TrainConfig(epochs=None, max_minutes=1).validate()


def test_a_time_budget_alone_trains_past_the_default_epochs(dataset, tmp_path, monkeypatch):
    """With only ``max_minutes`` the run goes on until the budget is used: more epochs than
    ``DEFAULT_EPOCHS`` when they are quick, and the learning rate ends annealed."""
    from core.training import loop

    clock = FakeClock(step=0.04)
    monkeypatch.setattr(loop, "_now", clock.monotonic)
    events = []
    result = loop.train(
        dataset, tmp_path / "m", _quick(max_minutes=1, val_fraction=0), on_progress=events.append
    )
    epochs = [e for e in events if isinstance(e, EpochResult)]
    assert result.stopped == "time"
    assert len(epochs) > DEFAULT_EPOCHS
    assert all(e.epochs is None for e in epochs)  # no epoch count: the budget ends the run
    assert epochs[-1].lr < 0.05 * result_lr(result)  # annealed over the budget


def result_lr(result) -> float:
    from core.checkpoint import read_metadata

    return read_metadata(result.model_path)["config"]["lr"]


def test_epochs_end_the_run_first_when_they_are_fewer(dataset, tmp_path):
    from core.training.loop import train

    result = train(dataset, tmp_path / "m", _quick(epochs=2, max_minutes=60))
    assert result.stopped is None and len(result.history) == 2
    assert result.history[-1].epochs == 2


def test_the_budget_ends_the_run_first_when_it_is_shorter(dataset, tmp_path, monkeypatch):
    from core.training import loop

    clock = FakeClock(step=0.5)
    monkeypatch.setattr(loop, "_now", clock.monotonic)
    result = loop.train(dataset, tmp_path / "m", _quick(epochs=1000, max_minutes=0.2))
    assert result.stopped == "time" and len(result.history) < 1000


def test_the_final_validation_fits_in_the_budget(dataset, tmp_path, monkeypatch):
    """Each validation takes 5 s of a 30 s budget here: training stops when the last
    validation's time is all that is left, so the run, final validation included, ends within
    its budget (before, it overran by a whole validation)."""
    from core.training import loop

    clock = FakeClock(step=0.1)
    real_validate = loop.validate

    def slow_validate(*args, **kwargs):
        clock.now += 5.0
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(loop, "_now", clock.monotonic)
    monkeypatch.setattr(loop, "validate", slow_validate)
    # epochs of many batches, so that the budget ends one midway (then validated)
    result = loop.train(dataset, tmp_path / "m", _quick(max_minutes=0.5, samples_per_epoch=40))
    assert result.stopped == "time" and len(result.history) >= 2
    assert result.seconds <= 30.5 + 1e-6


def test_a_first_epoch_longer_than_the_budget_keeps_time_for_its_validation(tmp_path, monkeypatch):
    """Many images and a short budget: the first epoch is still running when the budget ends, and
    no validation has been timed yet. The time kept for it is guessed from the training speed
    and the validation's pixels (a forward pass costs 0.4 of a training step's time per pixel
    here), so the run ends within its budget instead of overrunning by a whole validation."""
    from core.training import loop
    from core.training.config import BatchProgress

    dataset = write_dataset(tmp_path / "big", n_train=4, n_test=1, size=256)
    clock = FakeClock(step=0.1)
    events = []
    real_validate = loop.validate

    def slow_validate(model, cache, *args, **kwargs):
        batch = [e for e in events if isinstance(e, BatchProgress)][-1]
        seconds_per_pixel = batch.elapsed_seconds / (batch.samples_seen * 64 * 64)
        pixels = sum(cache.get(i)[1].size for i in range(len(cache)))
        clock.now += 0.4 * pixels * seconds_per_pixel
        return real_validate(model, cache, *args, **kwargs)

    monkeypatch.setattr(loop, "_now", clock.monotonic)
    monkeypatch.setattr(loop, "validate", slow_validate)
    config = _quick(max_minutes=0.5, samples_per_epoch=2000, val_fraction=0.5)
    result = loop.train(dataset, tmp_path / "m", config, on_progress=events.append)
    assert result.stopped == "time" and len(result.history) == 1
    assert result.history[0].val_iou is not None
    assert result.seconds <= 30.5 + 1e-6


def test_with_a_budget_validation_keeps_to_its_share_of_the_time(dataset, tmp_path, monkeypatch):
    """Each validation takes 3 s: with a 2-minute budget the run validates its first and last
    epoch and otherwise only as often as keeps validation near VALIDATION_SHARE of the time,
    and the epochs in between report no validation scores."""
    from core.training import loop

    clock = FakeClock(step=0.1)
    real_validate = loop.validate
    calls = []

    def slow_validate(*args, **kwargs):
        calls.append(clock.now)
        clock.now += 3.0
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(loop, "_now", clock.monotonic)
    monkeypatch.setattr(loop, "validate", slow_validate)
    result = loop.train(dataset, tmp_path / "m", _quick(max_minutes=2))
    validated = [h for h in result.history if h.val_iou is not None]
    assert result.history[0].val_iou is not None and result.history[-1].val_iou is not None
    assert len(validated) == len(calls) < len(result.history)
    assert all(h.val_loss is None for h in result.history if h.val_iou is None)
    assert 3.0 * len(calls) <= 2 * loop.VALIDATION_SHARE * result.seconds
    # a run of epochs validates every one of them
    calls.clear()
    epochs = loop.train(dataset, tmp_path / "e", _quick(epochs=3))
    assert len(calls) == 3 and all(h.val_iou is not None for h in epochs.history)


def test_init_starts_a_new_run_from_a_models_weights(dataset, tmp_path):
    """``init_from`` (``rooftop train --init``): the first model's weights, its architecture,
    a fresh optimizer and history."""
    import torch

    from core.checkpoint import load_checkpoint, read_metadata
    from core.training.loop import train

    first = train(dataset, tmp_path / "m", _quick(epochs=1))
    start = load_checkpoint(first.model_path)
    second = train(
        dataset,
        tmp_path / "m",
        _quick(epochs=1, arch="liteunet", lr=1e-12, tune_threshold=False),
        init_from=first.model_path,
    )
    meta = read_metadata(second.model_path)
    assert meta["config"]["arch"] == "prescribed"  # the starting model's architecture
    assert meta["initialised_from"] == str(first.model_path)
    assert len(meta["history"]) == 1  # a new run, not a continuation
    after = load_checkpoint(second.model_path).model.state_dict()
    for name, tensor in start.model.state_dict().items():  # lr ~0: the weights barely moved
        assert torch.allclose(after[name].float(), tensor.float(), atol=1e-6), name


def test_init_and_resume_exclude_each_other(dataset, tmp_path):
    from core.training.loop import train

    with pytest.raises(ConfigError, match="exclude"):
        train(dataset, tmp_path / "m", _quick(epochs=1), resume_from="a", init_from="b")
