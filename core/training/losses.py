"""Training losses: binary cross-entropy, focal, soft Dice, the Lovasz hinge, and sums of them.

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


#: The focal loss's exponent (Lin et al. 2017's gamma): how much the well-classified pixels
#: are discounted (0: plain cross-entropy).
FOCAL_GAMMA = 2.0


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    known: torch.Tensor | None = None,
    gamma: float = FOCAL_GAMMA,
) -> torch.Tensor:
    """The focal loss (Lin et al., ICCV 2017) without class weighting: each pixel's
    cross-entropy times ``(1 - p_t) ** gamma``, ``p_t`` the probability given to its true class,
    so the pixels already classified well weigh little and the hard ones (roof edges, shadows)
    drive the gradient; averaged over the (``known``) pixels."""
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    weighted = (1.0 - torch.exp(-ce)) ** gamma * ce
    if known is None:
        return weighted.mean()
    return (weighted * known).sum() / known.sum().clamp(min=1.0)


def lovasz_hinge_loss(
    logits: torch.Tensor, target: torch.Tensor, known: torch.Tensor | None = None
) -> torch.Tensor:
    """The Lovasz hinge (Berman et al., CVPR 2018): a convex surrogate of 1 - IoU of the roof
    class, per image of the batch and averaged. Each pixel's hinge error ``1 - logit * sign``
    is weighted by how much it would raise the image's Jaccard loss, taken in decreasing order
    of error (the Lovasz extension's gradient); only ``known`` pixels count."""
    losses = []
    for i in range(logits.shape[0]):
        scores, truth = logits[i].reshape(-1), target[i].reshape(-1)
        if known is not None:
            keep = known[i].reshape(-1) > 0
            scores, truth = scores[keep], truth[keep]
        if truth.numel() == 0:
            losses.append(logits[i].sum() * 0.0)
            continue
        errors = 1.0 - scores * (2.0 * truth - 1.0)
        errors, order = torch.sort(errors, descending=True)
        truth = truth[order]
        roof = truth.sum()
        intersection = roof - truth.cumsum(0)
        union = roof + (1.0 - truth).cumsum(0)
        jaccard = 1.0 - intersection / union
        weights = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
        losses.append(torch.dot(F.relu(errors), weights))
    return torch.stack(losses).mean()


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
    if name == "focal+dice":
        return focal_loss(logits, target, known) + dice_loss(logits, target, known=known)
    if name == "bce+lovasz":
        return bce_loss(logits, target, known) + lovasz_hinge_loss(logits, target, known)
    raise ConfigError(f"unknown loss {name!r}")


def colour_affinity_loss(
    logits: torch.Tensor,
    image: torch.Tensor,
    weight: torch.Tensor,
    radius: int = 2,
    sigma_rgb: float = 0.1,
    sigma_xy: float = 2.0,
    factor: int = 2,
) -> torch.Tensor:
    """A regulariser of the pixels strokes leave unlabelled: neighbouring pixels of similar colour
    should get the same class (the relaxed Potts term of CRF losses for scribble supervision,
    Tang et al. 2018, in a local window as in Obukhov et al.'s gated CRF loss).

    For each pixel ``i`` (of the batch ``logits`` and ``image``, ``(N, 3, H, W)`` in [0, 1],
    averaged over ``factor`` x ``factor`` blocks first): the expected disagreement with its
    neighbours ``j`` within ``radius``, ``sum_j w_ij (p_i (1 - p_j) + p_j (1 - p_i)) / sum_j w_ij``
    with ``w_ij = exp(-|rgb_i - rgb_j|^2 / 2 sigma_rgb^2 - |i - j|^2 / 2 sigma_xy^2)``; averaged
    over the pixels with ``weight`` ``(N, 1, H, W)`` (1 for the unlabelled ones). Edges of colour
    cost nothing to cut, so the roof edges the strokes never reach follow the image's own edges.
    """
    prob = torch.sigmoid(logits.float())
    image, weight = image.float(), weight.float()
    if factor > 1:
        prob, image, weight = (F.avg_pool2d(t, factor) for t in (prob, image, weight))
    n, _, h, w = prob.shape
    k = 2 * radius + 1
    near_prob = F.unfold(prob, k, padding=radius).view(n, k * k, h, w)
    near_rgb = F.unfold(image, k, padding=radius).view(n, image.shape[1], k * k, h, w)
    colour = ((near_rgb - image[:, :, None]) ** 2).sum(1)
    offsets = torch.arange(-radius, radius + 1, dtype=prob.dtype, device=prob.device)
    distance = (offsets[:, None] ** 2 + offsets[None, :] ** 2).reshape(1, k * k, 1, 1)
    inside = F.unfold(torch.ones(1, 1, h, w, device=prob.device), k, padding=radius)
    affinity = (
        torch.exp(-colour / (2 * sigma_rgb**2) - distance / (2 * sigma_xy**2))
        * inside.view(1, k * k, h, w)  # neighbours outside the crop do not count
    )
    affinity[:, (k * k) // 2] = 0.0  # nor the pixel itself
    disagreement = prob * (1 - near_prob) + (1 - prob) * near_prob
    per_pixel = (affinity * disagreement).sum(1, keepdim=True) / affinity.sum(
        1, keepdim=True
    ).clamp(min=1e-6)
    return (per_pixel * weight).sum() / weight.sum().clamp(min=1.0)
