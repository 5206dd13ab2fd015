"""What the model doubts: per-pixel uncertainty, a per-image score (the order it makes is
:mod:`core.label_next`'s), and the window of a given size where the model doubts most.
Torch-free and Qt-free.

The uncertainty of a probability ``p`` at the decision threshold ``t`` is how close ``p`` is to
``t``: ``1 - |p - t| / (t if p < t else 1 - t)``; at ``t = 0.5`` that is ``1 - |2p - 1|``: 1 on
the threshold, 0 at a confident 0 or 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def uncertainty(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """``(H, W) float32`` in [0, 1]: closeness of ``prob`` to ``threshold`` (see the module)."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    p = np.asarray(prob, dtype=np.float32)
    t = np.float32(threshold)
    out = np.where(p < t, p / t, (1.0 - p) / (1.0 - t)).astype(np.float32, copy=False)
    return np.clip(out, 0.0, 1.0, out=out)


def image_uncertainty(
    prob: np.ndarray, labelled: np.ndarray | None = None, threshold: float = 0.5
) -> float:
    """The mean uncertainty over the pixels not labelled yet (``labelled``: bool map of the
    painted pixels, None: none). 0.0 when every pixel is labelled."""
    u = uncertainty(prob, threshold)
    if labelled is None:
        return float(u.mean()) if u.size else 0.0
    labelled = np.asarray(labelled, dtype=bool)
    if labelled.shape != u.shape:
        raise ValueError(f"labelled pixels {labelled.shape} and probabilities {u.shape} differ")
    free = ~labelled
    count = int(np.count_nonzero(free))
    return float(u[free].sum(dtype=np.float64) / count) if count else 0.0


@dataclass(frozen=True)
class Window:
    """A ``width`` x ``height`` window at column ``x``, row ``y`` and its mean uncertainty."""

    x: int
    y: int
    width: int
    height: int
    mean: float

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y + self.height / 2


def most_uncertain_window(
    values: np.ndarray, size: int | tuple[int, int], labelled: np.ndarray | None = None
) -> Window:
    """The window of ``size`` (a side, or ``(height, width)``; clipped to the map) with the
    highest mean of ``values`` (an uncertainty map), pixels in ``labelled`` counting 0; the
    first such window in row-major order on ties. One integral image: O(H W)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"an uncertainty map must be a non-empty 2-D array, got {values.shape}")
    if labelled is not None:
        values = np.where(np.asarray(labelled, dtype=bool), 0.0, values)
    h, w = values.shape
    wh, ww = (size, size) if np.isscalar(size) else size
    wh, ww = max(1, min(int(wh), h)), max(1, min(int(ww), w))
    integral = np.zeros((h + 1, w + 1), np.float64)
    np.cumsum(np.cumsum(values, axis=0), axis=1, out=integral[1:, 1:])
    sums = integral[wh:, ww:] - integral[:-wh, ww:] - integral[wh:, :-ww] + integral[:-wh, :-ww]
    best = int(np.argmax(sums))
    y, x = divmod(best, sums.shape[1])
    return Window(int(x), int(y), ww, wh, float(sums[y, x] / (wh * ww)))


__all__ = [
    "Window",
    "image_uncertainty",
    "most_uncertain_window",
    "uncertainty",
]
