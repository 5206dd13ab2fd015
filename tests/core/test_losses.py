"""The Lovasz hinge: on predictions with unit margins it is exactly the Jaccard loss of the
mistakes, it is zero for confident right answers, and it reaches the gradient to the pixels.
The focal loss: cross-entropy at gamma 0, the easy pixels discounted otherwise."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def _iou(prediction: np.ndarray, truth: np.ndarray) -> float:
    union = np.count_nonzero(prediction | truth)
    return np.count_nonzero(prediction & truth) / union if union else 1.0


def test_lovasz_hinge_is_the_jaccard_loss_of_the_mistakes():
    """Logits of +-1 on the right side (hinge error 0) and 0 on the pixels got wrong (error 1):
    the loss is then 1 - IoU of the prediction that gets those pixels wrong, image by image."""
    from core.training.losses import lovasz_hinge_loss

    rng = np.random.default_rng(0)
    truth = rng.random((3, 1, 12, 12)) > 0.6
    wrong = rng.random((3, 1, 12, 12)) > 0.8
    sign = np.where(truth, 1.0, -1.0)
    logits = np.where(wrong, 0.0, sign)
    loss = lovasz_hinge_loss(torch.tensor(logits), torch.tensor(truth, dtype=torch.float64))
    expected = np.mean([1.0 - _iou(truth[i] ^ wrong[i], truth[i]) for i in range(3)])
    assert float(loss) == pytest.approx(expected, abs=1e-9)
    right = lovasz_hinge_loss(torch.tensor(sign * 3.0), torch.tensor(truth, dtype=torch.float64))
    assert float(right) == 0.0


def test_lovasz_hinge_pushes_the_worst_pixels_the_right_way():
    from core.training.losses import compute_loss

    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 1, 16, 16, generator=gen, requires_grad=True)
    target = (torch.rand(2, 1, 16, 16, generator=gen) > 0.5).float()
    compute_loss("bce+lovasz", logits, target).backward()
    # a step against the gradient raises roof logits and lowers background ones on average
    step = -logits.grad
    assert float(step[target > 0].mean()) > 0 > float(step[target == 0].mean())


def test_focal_loss_is_cross_entropy_that_discounts_the_easy_pixels():
    from core.training.losses import bce_loss, focal_loss

    logits = torch.tensor([[[[4.0, -4.0, 0.2, -0.3]]]])
    target = torch.tensor([[[[1.0, 0.0, 0.0, 1.0]]]])  # two easy pixels, two wrong ones
    assert focal_loss(logits, target, gamma=0.0).item() == pytest.approx(
        bce_loss(logits, target).item(), rel=1e-6
    )
    ce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_true = torch.exp(-ce)
    expected = ((1 - p_true) ** 2 * ce).mean()
    assert focal_loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)
    # the easy pixels (p_true 0.98) weigh almost nothing next to the wrong ones
    per_pixel = (1 - p_true) ** 2 * ce
    assert per_pixel[..., :2].sum() < 1e-3 * per_pixel[..., 2:].sum()
    known = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]]]])
    assert focal_loss(logits, target, known).item() == pytest.approx(
        per_pixel[..., :2].mean().item(), rel=1e-5
    )
