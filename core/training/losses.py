"""Training losses: binary cross-entropy, soft Dice and their sum, averaged over pixels.

With ``known`` (a ``(N, 1, H, W)`` map of labelled pixels, for strokes: :mod:`core.scribbles`)
only the labelled pixels count: unlabelled ones change neither the loss nor its gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.errors import ConfigError


def dice_loss(
    logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0, known: torch.Tensor | None = None
) -> torch.Tensor:
    """Soft Dice loss over the whole batch (1 - Dice of probabilities), over ``known`` pixels."""
    prob = torch.sigmoid(logits)
    if known is not None:
        prob, target = prob * known, target * known
    inter = (prob * target).sum()
    return 1.0 - (2.0 * inter + eps) / (prob.sum() + target.sum() + eps)


def bce_loss(
    logits: torch.Tensor, target: torch.Tensor, known: torch.Tensor | None = None
) -> torch.Tensor:
    """Binary cross-entropy averaged over the (``known``) pixels."""
    if known is None:
        return F.binary_cross_entropy_with_logits(logits, target)
    total = F.binary_cross_entropy_with_logits(logits, target, weight=known, reduction="sum")
    return total / known.sum().clamp(min=1.0)


def compute_loss(
    name: str, logits: torch.Tensor, target: torch.Tensor, known: torch.Tensor | None = None
) -> torch.Tensor:
    logits = logits.float()
    if known is not None:
        known = known.float()
    if name == "bce":
        return bce_loss(logits, target, known)
    if name == "dice":
        return dice_loss(logits, target, known=known)
    if name == "bce+dice":
        return bce_loss(logits, target, known) + dice_loss(logits, target, known=known)
    raise ConfigError(f"unknown loss {name!r}")
