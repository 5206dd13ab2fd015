"""Batch-norm statistics re-estimated on the imagery being predicted (AdaBN).

A network trained with batch normalisation normalises each layer's features by the mean and
variance it saw in training. On a new sensor or town those statistics shift, and re-estimating
them on the new images, with the weights unchanged, is the cheapest known domain adaptation
(Li et al., "Revisiting Batch Normalization for Practical Domain Adaptation", 2016; Schneider et
al., "Improving robustness against common corruptions by covariate shift adaptation", 2020).

:func:`adapt_batch_norm` returns a copy of a model whose statistics are those of the passes
``run`` makes with it (for example :func:`core.predict.predict_probabilities` over the images to
predict, so that the copy sees them tiled, stretched and resampled as prediction does), blended
with the training statistics by ``weight``. The model given is not changed. Torch only, no Qt.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch.nn.modules.batchnorm import _BatchNorm


def batch_norm_layers(model: torch.nn.Module) -> list[_BatchNorm]:
    """The batch-norm layers of ``model`` that keep running statistics."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def adapt_batch_norm(
    model: torch.nn.Module,
    run: Callable[[torch.nn.Module], object],
    weight: float = 1.0,
) -> torch.nn.Module:
    """A copy of ``model`` in eval mode whose batch-norm running statistics are re-estimated on
    the forward passes that ``run(copy)`` makes: the plain average over those passes (each batch
    counts once), then ``weight`` x that + ``(1 - weight)`` x the training statistics.

    ``run`` may put the copy in eval mode (prediction does): the batch-norm layers still
    normalise each batch by its own statistics and add them up while it runs. A model without
    batch-norm layers comes back as an unchanged copy. Raises ValueError for a ``weight``
    outside [0, 1] or when ``run`` made no forward pass through them."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    adapted = copy.deepcopy(model)
    layers = batch_norm_layers(adapted)
    if not layers:
        return adapted.eval()
    trained = [(m.running_mean.clone(), m.running_var.clone(), m.momentum) for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
    hooks = [m.register_forward_pre_hook(_batch_statistics) for m in layers]
    hooks += [m.register_forward_hook(_back_to_eval) for m in layers]
    try:
        with torch.no_grad():
            run(adapted)
    finally:
        for hook in hooks:
            hook.remove()
    for m, (_, _, momentum) in zip(layers, trained, strict=True):
        m.momentum = momentum
    if min(int(m.num_batches_tracked) for m in layers) == 0:
        raise ValueError("adapting batch norm: the images made no forward pass through the model")
    for m, (mean, var, _) in zip(layers, trained, strict=True):
        m.running_mean.mul_(weight).add_(mean, alpha=1.0 - weight)
        m.running_var.mul_(weight).add_(var, alpha=1.0 - weight)
    return adapted.eval()


def _batch_statistics(module: _BatchNorm, _inputs: object) -> None:
    # normalise by this batch's statistics and add them to the running average
    module.training = True


def _back_to_eval(module: _BatchNorm, _inputs: object, _output: object) -> None:
    module.training = False
