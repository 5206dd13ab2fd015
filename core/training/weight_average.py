"""An exponential moving average of the weights, warmed up, for ``TrainConfig.ema_decay``.

The average is kept by PyTorch's :class:`torch.optim.swa_utils.AveragedModel` over parameters
and buffers alike (so the batch-norm statistics are averaged with the weights they belong to, as
timm's ``ModelEmaV2`` does). The decay is warmed up: after ``n`` updates it is
``min(decay, (1 + n) / (10 + n))``, so the average of a short run is not held back by the
random weights of its first steps (without it, a decay of 0.995 over the 400 batches of a
5-minute CPU run still weighed the first steps a seventh, and the model scored 0.005 IoU;
docs/model-quality.md).
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel


def warmed_decay(decay: float, updates: int) -> float:
    """The decay used for the ``updates``-th update (0-based): ``decay``, warmed up."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


class WeightAverage:
    """The moving average of ``model``'s weights; :attr:`model` is the averaged copy."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"the average's decay must be between 0 and 1, got {decay}")
        self.decay = decay
        self.updates = 0

        def average(averaged: torch.Tensor, current: torch.Tensor, count) -> torch.Tensor:
            if not averaged.is_floating_point():  # batch norm's num_batches_tracked
                return current
            return torch.lerp(averaged, current, 1.0 - warmed_decay(self.decay, self.updates))

        self._averaged = AveragedModel(model, avg_fn=average, use_buffers=True)

    @property
    def model(self) -> torch.nn.Module:
        return self._averaged.module

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Fold ``model``'s current weights into the average (the first call copies them)."""
        self._averaged.update_parameters(model)
        self.updates += 1
