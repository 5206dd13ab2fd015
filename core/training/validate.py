"""Validation: loss and IoU of held-out training images, and the threshold tuned on them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core.device import autocast
from core.training.config import THRESHOLDS
from core.training.data import ImageCache, to_input_tensor
from core.training.losses import compute_loss

_BINS = 200  # probability histogram resolution for threshold tuning (thresholds on bin edges)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Reflect-pad an ``(N, C, H, W)`` tensor on the bottom/right to multiples of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


@dataclass(frozen=True)
class ValidationScores:
    loss: float
    iou: float  # at threshold 0.5
    tuned_iou: float  # at ``threshold``
    threshold: float  # robust_threshold of THRESHOLDS


def _iou_by_threshold(pos: np.ndarray, neg: np.ndarray) -> dict[float, float]:
    """IoU at each of :data:`THRESHOLDS` from probability histograms of roof / background pixels."""
    pos_above = np.cumsum(pos[::-1])[::-1]  # roof pixels with p >= bin edge
    neg_above = np.cumsum(neg[::-1])[::-1]
    total_pos = pos.sum()
    scores = {}
    for t in (0.5, *THRESHOLDS):
        k = int(round(t * _BINS))
        tp, fp = float(pos_above[k]), float(neg_above[k])
        fn = float(total_pos) - tp
        scores[t] = tp / (tp + fp + fn) if tp + fp + fn else 1.0
    return scores


def _centre_crop(
    image: np.ndarray, mask: np.ndarray, side: int | None, known: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The centre ``side`` crop (of the labelled pixels' bounding box, for strokes)."""
    if side is None:
        return image, mask, known
    h, w = mask.shape
    cy, cx = h // 2, w // 2
    if known is not None:
        rows, cols = np.flatnonzero(known.any(axis=1)), np.flatnonzero(known.any(axis=0))
        cy, cx = (rows[0] + rows[-1]) // 2, (cols[0] + cols[-1]) // 2
    y = min(max(0, cy - side // 2), max(0, h - side))
    x = min(max(0, cx - side // 2), max(0, w - side))
    crop = (slice(y, y + side), slice(x, x + side))
    return image[crop], mask[crop], known[crop] if known is not None else None


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    cache: ImageCache,
    device: torch.device,
    loss_name: str,
    should_stop: Callable[[], bool] | None = None,
    max_side: int | None = None,
    amp_dtype: torch.dtype | None = None,
) -> ValidationScores | None:
    """Mean loss and IoU (summed over pixels) of the validation images, each whole or its centre
    ``max_side`` crop: at threshold 0.5 and at the best of :data:`THRESHOLDS`. A partly labelled
    image (strokes) counts its labelled pixels only."""
    if len(cache) == 0:
        return None
    was_training = model.training
    model.eval()
    total_loss, done = 0.0, 0
    pos = np.zeros(_BINS + 1, np.int64)
    neg = np.zeros(_BINS + 1, np.int64)
    multiple = getattr(model, "size_multiple", 1)
    try:
        for index in range(len(cache)):
            if should_stop is not None and index and should_stop():
                break
            image, mask, known = _centre_crop(*cache.get(index), max_side, cache.known(index))
            x, h, w = pad_to_multiple(to_input_tensor(image[None], device), multiple)
            with autocast(device, amp_dtype):
                logits = model(x)[..., :h, :w].float()
            target = torch.from_numpy(mask[None, None].astype(np.float32)).to(device)
            weight = None if known is None else torch.from_numpy(known[None, None]).to(device)
            total_loss += float(compute_loss(loss_name, logits, target, weight))
            bins = (torch.sigmoid(logits[0, 0]) * _BINS).long().clamp_(0, _BINS).cpu().numpy()
            roof, ground = (mask, ~mask) if known is None else (mask & known, ~mask & known)
            pos += np.bincount(bins[roof], minlength=_BINS + 1)
            neg += np.bincount(bins[ground], minlength=_BINS + 1)
            done += 1
    finally:
        model.train(was_training)
    scores = _iou_by_threshold(pos, neg)
    best = robust_threshold(scores)
    return ValidationScores(total_loss / done, scores[0.5], scores[best], best)


#: A validation pass costs about this share of a training step's time per pixel: a forward pass
#: alone is about a third of forward, backward and optimizer step; a half keeps a margin.
FORWARD_SHARE = 0.5


def validation_pixels(cache: ImageCache, max_side: int | None) -> int:
    """Pixels one :func:`validate` pass scores: each image whole or its centre ``max_side`` crop."""
    total = 0
    for index in range(len(cache)):
        h, w = cache.get(index)[1].shape
        total += (h if max_side is None else min(h, max_side)) * (
            w if max_side is None else min(w, max_side)
        )
    return total


class ValidationReserve:
    """The seconds a time budget keeps for the run's final validation: the last validation's
    time, or before any has been timed a guess from the training speed and the validation's
    pixels (a forward pass at :data:`FORWARD_SHARE` of a training step's time per pixel); at
    most a quarter of the budget. Without it a first epoch as long as the budget overran it by a
    whole validation."""

    def __init__(self, cache: ImageCache | None, max_side: int | None, budget: float, now: float):
        self._cache, self._max_side, self._cap = cache, max_side, budget / 4
        self._started, self._pixels_trained = now, 0
        self._val_pixels: int | None = None
        self._timed: float | None = None

    def trained(self, pixels: int) -> None:
        self._pixels_trained += pixels

    def timed(self, seconds: float) -> None:
        self._timed = seconds

    def seconds(self, now: float) -> float:
        if self._timed is not None:
            return min(self._timed, self._cap)
        if not self._cache or self._pixels_trained <= 0:
            return 0.0
        if self._val_pixels is None:
            self._val_pixels = validation_pixels(self._cache, self._max_side)
        per_pixel = (now - self._started) / self._pixels_trained
        return min(self._cap, FORWARD_SHARE * self._val_pixels * per_pixel)


def robust_threshold(scores: dict[float, float]) -> float:
    """The threshold of :data:`THRESHOLDS` whose IoU, averaged with its neighbours' (0.05 either
    side), is the highest; ties go to the one nearest 0.5. A sharp peak of a few validation
    pixels does not pull the threshold to it: a broad maximum is what holds on new images."""

    def smoothed(i: int) -> float:
        near = THRESHOLDS[max(0, i - 1) : i + 2]
        return sum(scores[t] for t in near) / len(near)

    best = max(
        range(len(THRESHOLDS)),
        key=lambda i: (round(smoothed(i), 9), -abs(THRESHOLDS[i] - 0.5)),
    )
    return THRESHOLDS[best]


def score_fields(scores: ValidationScores | None, tuned: bool) -> dict[str, float | None]:
    """An :class:`EpochResult`'s validation fields (all None for an epoch not validated)."""
    tuned = tuned and scores is not None
    return {
        "val_loss": scores.loss if scores else None,
        "val_iou": scores.iou if scores else None,
        "val_iou_tuned": scores.tuned_iou if tuned else None,
        "threshold": scores.threshold if tuned else None,
    }


def score_and_threshold(scores: ValidationScores, tuned: bool) -> tuple[float, float]:
    """The validation IoU a model is judged by, and the threshold it is kept with."""
    return (scores.tuned_iou, scores.threshold) if tuned else (scores.iou, 0.5)
