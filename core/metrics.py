"""Segmentation metrics from a confusion count, summed over whole splits (not averaged per image)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def _ratio(num: int, den: int, empty: float) -> float:
    return float(num) / float(den) if den else empty


@dataclass(frozen=True)
class Confusion:
    """Pixel counts of true/false positives/negatives. Add them up to sum over many images."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @classmethod
    def from_masks(cls, prediction: np.ndarray, truth: np.ndarray) -> Confusion:
        prediction = np.asarray(prediction, dtype=bool)
        truth = np.asarray(truth, dtype=bool)
        if prediction.shape != truth.shape:
            raise ValueError(
                f"prediction {prediction.shape} and truth {truth.shape} differ in shape"
            )
        tp = int(np.count_nonzero(prediction & truth))
        pred_pos = int(np.count_nonzero(prediction))
        true_pos = int(np.count_nonzero(truth))
        fp = pred_pos - tp
        fn = true_pos - tp
        tn = prediction.size - tp - fp - fn
        return cls(tp, fp, fn, tn)

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        )

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    # An empty denominator means "nothing to get wrong": a prediction of no roof where there is no
    # roof scores 1, as is usual for IoU/F1 on empty masks.
    @property
    def iou(self) -> float:
        return _ratio(self.tp, self.tp + self.fp + self.fn, 1.0)

    @property
    def f1(self) -> float:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn, 1.0)

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp, 1.0 if self.fn == 0 else 0.0)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn, 1.0 if self.fp == 0 else 0.0)

    @property
    def accuracy(self) -> float:
        return _ratio(self.tp + self.tn, self.total, 1.0)

    def scores(self) -> dict[str, float]:
        """The five ratio metrics, keyed as in ``rooftop evaluate --json``."""
        return {
            "iou": self.iou,
            "f1": self.f1,
            "precision": self.precision,
            "recall": self.recall,
            "accuracy": self.accuracy,
        }

    def as_dict(self) -> dict[str, float | int]:
        return {**self.scores(), **asdict(self)}
