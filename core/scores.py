"""Scores of predictions against labels: one image's confusion, a predicted split's bookkeeping.

Torch-free and Qt-free. The window keeps a :class:`SplitScores` per predicted split and re-scores
it from cached probability maps when the threshold or dilation changes (:func:`score_all`); a
script can do the same. The split's metrics are summed over its pixels (``Confusion`` added up),
as ``core.evaluate.evaluate`` computes them.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from core.errors import ImageReadError
from core.io import read_mask
from core.metrics import Confusion
from core.postprocess import to_mask
from core.progress import StopCheck, check_stop

K = TypeVar("K", bound=Hashable)


def label_confusion(
    prob: np.ndarray, label_path: str | Path | None, threshold: float, dilation: int
) -> Confusion | None:
    """The confusion of ``prob`` made a mask (``to_mask(prob, threshold, dilation)``) against the
    label at ``label_path``; None when there is no label there. A label that cannot be read or
    is not the size of ``prob`` is an ImageReadError naming it."""
    if label_path is None or not Path(label_path).exists():
        return None
    truth = read_mask(label_path)
    if truth.shape != prob.shape:
        raise ImageReadError(
            f"label is {truth.shape[1]} x {truth.shape[0]} but the prediction is "
            f"{prob.shape[1]} x {prob.shape[0]}",
            label_path,
        )
    return Confusion.from_masks(to_mask(prob, threshold, dilation), truth)


def score_all(
    jobs: Iterable[tuple[K, np.ndarray, str | Path | None]],
    threshold: float,
    dilation: int,
    should_stop: StopCheck | None = None,
) -> dict[K, Confusion]:
    """:func:`label_confusion` of every ``(key, prob, label_path)``, by key; images without a
    label are left out. Raises Stopped ("scoring stopped") between images when asked to."""
    out: dict[K, Confusion] = {}
    for key, prob, label_path in jobs:
        check_stop(should_stop, "scoring")
        conf = label_confusion(prob, label_path, threshold, dilation)
        if conf is not None:
            out[key] = conf
    return out


@dataclass
class SplitScores:
    """Per-image confusions of one predicted split, and the display settings they were made at.

    ``per_image`` is keyed by ``(split, image name)``; ``errors`` are the messages of the images
    that could not be predicted or scored.
    """

    split: str
    model: Path
    dataset: Path | None
    threshold: float
    dilation: int
    per_image: dict[tuple[str, str], Confusion] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def total(self) -> Confusion:
        """The confusions summed over the split's scored images."""
        total = Confusion()
        for conf in self.per_image.values():
            total = total + conf
        return total


__all__ = ["SplitScores", "label_confusion", "score_all"]
