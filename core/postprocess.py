"""Turning a probability map into a mask: the original's max-pool "dilation" and the threshold.

Torch-free on purpose: the GUI redraws with these functions on every slider move, and export and
``rooftop predict`` call the very same ones, so what the user sees is what gets exported.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

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
    # scipy's default origin places even windows exactly like PyTorch's padding=k // 2 (checked
    # against F.max_pool2d in tests/core/test_postprocess.py); "nearest" equals PyTorch's -inf pad.
    return ndimage.maximum_filter(prob, size=kernel, mode="nearest")


def to_mask(prob: np.ndarray, threshold: float = 0.5, dilation: int = 0) -> np.ndarray:
    """Boolean roof mask: dilate (optional) then keep pixels with probability >= ``threshold``."""
    threshold = check_threshold(threshold)
    return dilate(prob, dilation) >= threshold
