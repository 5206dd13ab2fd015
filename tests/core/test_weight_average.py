"""The moving average of the weights (``--ema``): warmed-up decay, the average itself, and a run
that validates and saves the average instead of the last weights."""

from __future__ import annotations

import pytest
import torch

from core.checkpoint import load_checkpoint, read_metadata
from core.errors import ConfigError
from core.training.config import TrainConfig
from core.training.loop import train
from core.training.weight_average import WeightAverage, warmed_decay
from tests.factories import bright_squares, tiny_train_config, write_dataset


def test_the_decay_is_warmed_up_then_capped():
    assert warmed_decay(0.999, 0) == pytest.approx(0.1)
    assert warmed_decay(0.999, 90) == pytest.approx(0.91)
    assert warmed_decay(0.999, 100_000) == 0.999
    decays = [warmed_decay(0.99, n) for n in range(2000)]
    assert decays == sorted(decays) and max(decays) == 0.99


def test_the_average_folds_in_weights_and_batch_norm_statistics():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1, bias=False), torch.nn.BatchNorm2d(1))
    average = WeightAverage(model, decay=0.5)
    conv, norm = model[0], model[1]
    with torch.no_grad():
        conv.weight.fill_(1.0)
        norm.running_mean.fill_(2.0)
    average.update(model)  # the first update copies
    assert average.model[0].weight.item() == 1.0
    assert average.model[1].running_mean.item() == 2.0
    with torch.no_grad():
        conv.weight.fill_(3.0)
        norm.running_mean.fill_(4.0)
        norm.num_batches_tracked.fill_(7)
    average.update(model)  # decay min(0.5, 2/11): 2/11 of the old, 9/11 of the new
    assert average.model[0].weight.item() == pytest.approx(1.0 * 2 / 11 + 3.0 * 9 / 11)
    assert average.model[1].running_mean.item() == pytest.approx(2.0 * 2 / 11 + 4.0 * 9 / 11)
    assert average.model[1].num_batches_tracked.item() == 7  # counted, not averaged
    assert conv.weight.item() == 3.0  # the model itself is untouched


def test_a_decay_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(torch.nn.Linear(1, 1), decay=1.0)
    with pytest.raises(ConfigError, match="--ema"):
        TrainConfig(ema_decay=1.5).validate()


def test_a_run_with_ema_validates_and_saves_the_average(tmp_path):
    dataset = write_dataset(tmp_path / "ds", n_train=8, n_test=2, draw=bright_squares)
    config = dict(epochs=12, photometric=False)
    plain = train(dataset, tmp_path / "plain", tiny_train_config(**config))
    weights = {}
    averaged = train(
        dataset,
        tmp_path / "ema",
        tiny_train_config(**config, ema_decay=0.9),
        on_weights=lambda epoch, state: weights.__setitem__(epoch, state),
    )
    assert read_metadata(averaged.model_path)["config"]["ema_decay"] == 0.9
    saved = load_checkpoint(averaged.model_path).model.state_dict()
    plain_saved = load_checkpoint(plain.model_path).model.state_dict()
    # the same seed and batches, so only the average makes the saved weights differ
    assert not all(torch.equal(saved[k], plain_saved[k]) for k in saved)
    # what the live preview showed after the last epoch is what was saved
    assert all(torch.equal(saved[k], weights[12][k].float()) for k in saved)
    # and the average learnt the trivial problem as the weights did
    assert plain.val_iou > 0.8 and averaged.val_iou > 0.8
