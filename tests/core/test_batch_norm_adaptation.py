"""Batch-norm statistics re-estimated on the images to predict (core.batch_norm_adaptation)."""

import numpy as np
import pytest
import torch
from torch import nn

from core.batch_norm_adaptation import adapt_batch_norm, batch_norm_layers
from core.models import build_model
from core.predict import predict_probabilities


def _normaliser() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm2d(3))
    model.eval()
    return model


def _batches(model: nn.Module, offset: float) -> None:
    model.eval()  # as prediction does: the layers still collect
    generator = torch.Generator().manual_seed(1)
    for _ in range(4):
        model(torch.randn(2, 3, 16, 16, generator=generator) * 2.0 + offset)


def test_the_statistics_become_the_images_and_the_model_given_is_unchanged():
    model = _normaliser()
    adapted = adapt_batch_norm(model, lambda m: _batches(m, 5.0))
    layer = batch_norm_layers(adapted)[0]
    assert torch.allclose(layer.running_mean, torch.full((3,), 5.0), atol=0.2)
    assert torch.allclose(layer.running_var, torch.full((3,), 4.0), rtol=0.15)
    assert not adapted.training and not layer.training
    assert layer.momentum == pytest.approx(0.1)  # restored for later training
    original = batch_norm_layers(model)[0]
    assert torch.equal(original.running_mean, torch.zeros(3))
    assert torch.equal(original.running_var, torch.ones(3))
    # in eval mode the adapted copy now centres such images
    x = torch.randn(4, 3, 16, 16) * 2.0 + 5.0
    assert adapted(x).mean().abs() < 0.1
    assert model(x).mean() > 4.0


def test_a_weight_blends_the_images_statistics_with_the_training_ones():
    model = _normaliser()
    full = batch_norm_layers(adapt_batch_norm(model, lambda m: _batches(m, 5.0)))[0]
    half = batch_norm_layers(adapt_batch_norm(model, lambda m: _batches(m, 5.0), weight=0.5))[0]
    none = batch_norm_layers(adapt_batch_norm(model, lambda m: _batches(m, 5.0), weight=0.0))[0]
    assert torch.allclose(half.running_mean, full.running_mean / 2)
    assert torch.allclose(half.running_var, (full.running_var + 1.0) / 2)
    assert torch.equal(none.running_mean, torch.zeros(3))


def test_prediction_through_the_adapted_copy_of_a_real_model():
    torch.manual_seed(0)
    model = build_model("liteunet", width=4, depth=2).eval()
    image = np.random.default_rng(0).integers(0, 80, (64, 64, 3), dtype=np.uint8)  # dark
    before = [layer.running_mean.clone() for layer in batch_norm_layers(model)]
    adapted = adapt_batch_norm(model, lambda m: predict_probabilities(m, image, device="cpu"))
    after = batch_norm_layers(adapted)
    assert all(int(layer.num_batches_tracked) == 1 for layer in after)
    assert not torch.allclose(after[0].running_mean, before[0])
    unchanged = zip(before, batch_norm_layers(model), strict=True)
    assert all(torch.equal(a, b.running_mean) for a, b in unchanged)
    prob = predict_probabilities(adapted, image, device="cpu")
    assert prob.shape == (64, 64) and np.isfinite(prob).all()
    assert not np.allclose(prob, predict_probabilities(model, image, device="cpu"))


def test_bad_uses_say_what_is_wrong():
    model = _normaliser()
    with pytest.raises(ValueError, match="weight must be in"):
        adapt_batch_norm(model, lambda m: _batches(m, 0.0), weight=1.5)
    with pytest.raises(ValueError, match="no forward pass"):
        adapt_batch_norm(model, lambda m: None)
    plain = nn.Sequential(nn.Conv2d(3, 1, 1))
    copy = adapt_batch_norm(plain, lambda m: None)
    assert copy is not plain and torch.equal(copy[0].weight, plain[0].weight)
