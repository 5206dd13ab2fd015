"""Training losses: binary cross-entropy, soft Dice and their sum, averaged over pixels."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.errors import ConfigError


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
