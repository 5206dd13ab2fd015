"""Turning a probability map into a mask: the original's max-pool "dilation" and the threshold.

Torch-free on purpose: the GUI redraws with these functions on every slider move, and export and
``rooftop predict`` call the very same ones, so what the user sees is what gets exported.
"""

from __future__ import annotations

import numpy as np

from core.errors import ConfigError


def check_kernel(kernel: int) -> int:
    """Validate a dilation kernel size (0 or 1 means off)."""
    if int(kernel) != kernel or kernel < 0 or kernel > 255:
        raise ConfigError(f"dilation kernel must be a whole number from 0 to 255, got {kernel}")
    return int(kernel)


def check_threshold(threshold: float) -> float:
    """Validate a probability threshold (strictly between 0 and 1)."""
    threshold = float(threshold)
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"threshold must be between 0 and 1 (exclusive), got {threshold}")
    return threshold


def dilate(prob: np.ndarray, kernel: int) -> np.ndarray:
    """The original's dilation: a max-pool with a ``kernel`` x ``kernel`` window, stride 1.

    The output has the input's size (same padding; borders are padded with the nearest value, so
    they are never darkened). ``kernel`` 0 or 1 returns the input unchanged. Even kernels follow
    PyTorch's ``max_pool2d(k, stride=1, padding=k // 2)`` cropped to the input size: the window
    reaches one pixel further up/left than down/right.
    """
    kernel = check_kernel(kernel)
    if kernel <= 1:
        return prob
    # Checked against F.max_pool2d(k, stride=1, padding=k // 2) in tests/core/test_postprocess.py.
    return max_filter(prob, kernel)


def to_mask(prob: np.ndarray, threshold: float = 0.5, dilation: int = 0) -> np.ndarray:
    """Boolean roof mask: dilate (optional) then keep pixels with probability >= ``threshold``."""
    threshold = check_threshold(threshold)
    # Thresholding and max commute (dilate(p) >= t  ==  dilate(p >= t)), and the max filter is
    # much cheaper on a bool mask than on floats, so threshold first.
    return max_filter(prob >= threshold, check_kernel(dilation))


def max_filter(array: np.ndarray, kernel: int) -> np.ndarray:
    """Exactly ``scipy.ndimage.maximum_filter(array, kernel, mode="nearest")`` on a 2-D array
    (the original's max-pool, stride 1, same size; PyTorch's window placement for even kernels),
    computed by separable doubling on numpy slices: about 4 ms for a 2048 x 2048 uint8 mask
    against about 60 ms for scipy on floats, which keeps the GUI's dilation toggle instant."""
    if kernel <= 1:
        return array
    before, after = kernel // 2, kernel - kernel // 2 - 1  # PyTorch/scipy window placement
    out = array
    for axis in (0, 1):
        n = out.shape[axis]
        pad = [(0, 0), (0, 0)]
        pad[axis] = (before, after)
        cur = np.pad(out, pad, mode="edge")
        width = 1
        while width * 2 <= kernel:  # cur[i] = max(padded[i : i + width])
            m = cur.shape[axis]
            cur = np.maximum(_take(cur, axis, 0, m - width), _take(cur, axis, width, m))
            width *= 2
        out = np.maximum(
            _take(cur, axis, 0, n), _take(cur, axis, kernel - width, kernel - width + n)
        )
    return np.ascontiguousarray(out)


def _take(array: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    return array[start:stop] if axis == 0 else array[:, start:stop]
