"""Colour tables and numpy helpers that turn masks and probability maps into overlay codes.

Overlays are drawn as 8-bit indexed images: a mask *is* its own index image (0 = transparent,
1 = colour), a probability map becomes 0..255 codes looked up in a heat-map table, and the error
map codes ``prediction + 2 * label`` (0 nothing, 1 false positive, 2 false negative, 3 true
positive). No RGBA array is ever built in Python, which keeps a 2048 x 2048 redraw to a few ms.
Qt-free: colours are ARGB ints, so this module is testable headless.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from core.postprocess import max_filter  # noqa: F401  (the canvas's dilation is core's)

LABEL_COLOR = (0, 200, 255)        # cyan
PREDICTION_COLOR = (255, 60, 200)  # magenta
TP_COLOR = (60, 210, 90)           # green: roof found
FP_COLOR = (240, 60, 50)           # red: roof predicted where there is none
FN_COLOR = (255, 200, 0)           # amber: roof missed

ERROR_NAMES = {1: "false positive", 2: "false negative", 3: "true positive"}

# Control points of an "inferno"-like ramp (dark purple -> red -> yellow).
_HEAT_POINTS = np.array([
    (0.00, 0, 0, 4), (0.15, 40, 11, 84), (0.35, 120, 28, 109), (0.50, 188, 55, 84),
    (0.65, 237, 105, 37), (0.80, 251, 180, 26), (1.00, 252, 255, 164)], dtype=np.float64)


def argb(r: int, g: int, b: int, a: int = 255) -> int:
    return ((a & 255) << 24) | ((r & 255) << 16) | ((g & 255) << 8) | (b & 255)


def mask_table(color: tuple[int, int, int]) -> list[int]:
    return [argb(0, 0, 0, 0), argb(*color)]


def error_table() -> list[int]:
    return [argb(0, 0, 0, 0), argb(*FP_COLOR), argb(*FN_COLOR), argb(*TP_COLOR)]


def heat_table() -> list[int]:
    """256 colours for probabilities 0..1; alpha rises with probability so the image shows."""
    x = np.linspace(0.0, 1.0, 256)
    channels = [np.interp(x, _HEAT_POINTS[:, 0], _HEAT_POINTS[:, i]) for i in (1, 2, 3)]
    alpha = np.clip(x * 1.6, 0.0, 1.0) * 235 + 20 * (x > 0.02)
    return [argb(int(r), int(g), int(b), int(min(a, 255)))
            for r, g, b, a in zip(*channels, alpha, strict=True)]


@lru_cache(maxsize=1)
def heat_table_cached() -> list[int]:
    return heat_table()


def heat_color(value: float) -> tuple[int, int, int]:
    """RGB of the heat map at ``value`` (for legends)."""
    return tuple(int(np.interp(value, _HEAT_POINTS[:, 0], _HEAT_POINTS[:, i])) for i in (1, 2, 3))


def mask_codes(mask: np.ndarray) -> np.ndarray:
    """A bool mask as uint8 codes 0/1 (a view, no copy, when already contiguous bool)."""
    mask = np.ascontiguousarray(mask, dtype=bool)
    return mask.view(np.uint8)


def heat_codes(prob: np.ndarray) -> np.ndarray:
    """A probability map in [0, 1] as uint8 codes 0..255."""
    out = np.empty(prob.shape, np.uint8)
    np.multiply(prob, 255.0, out=out, casting="unsafe")  # truncation: 1.0 -> 255, 0.999 -> 254
    return out


def error_codes(prediction: np.ndarray, label: np.ndarray) -> np.ndarray:
    """``prediction + 2 * label`` as uint8: 0 none, 1 FP, 2 FN, 3 TP."""
    codes = mask_codes(label) * np.uint8(2)
    codes += mask_codes(prediction)
    return codes
