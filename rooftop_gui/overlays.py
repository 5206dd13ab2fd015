"""Colour tables and numpy helpers that turn masks and probability maps into overlay codes.

Overlays are drawn as 8-bit indexed images: a mask *is* its own index image (0 = transparent,
1 = colour), a probability map becomes 0..255 codes looked up in a heat-map table, and the error
map codes ``prediction + 2 * label`` (0 nothing, 1 false positive, 2 false negative, 3 true
positive). No RGBA array is ever built in Python, which keeps a 2048 x 2048 redraw to a few ms.
Qt-free: colours are ARGB ints, so this module is testable headless.

Colours are chosen to read at a glance on aerial images, brick-red roofs included, and for
colour-blind eyes: the label is drawn as its outline (:func:`outline_codes`, the inner
``OUTLINE_WIDTH`` pixels of its boundary) in yellow, so a sky-blue prediction fill under it
never mixes into an ambiguous purple; the error map uses blue / orange / pink (Okabe-Ito's
blue and orange, and a pink far from both), whose pairwise CIELAB distances stay above 45 also
under simulated deuteranopia and protanopia (Machado 2009; tests/gui/test_overlays.py checks).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from core.postprocess import max_filter  # noqa: F401  (the canvas's dilation is core's)

LABEL_COLOR = (255, 235, 0)  # yellow, drawn as an outline
PREDICTION_COLOR = (0, 190, 255)  # sky blue, filled
TP_COLOR = (25, 70, 255)  # blue: roof found
FP_COLOR = (240, 160, 0)  # orange: roof predicted where there is none
FN_COLOR = (255, 100, 210)  # pink: roof missed
#: Strokes (partial labels): roof in the label's yellow, filled; background in a violet that
#: stays apart from yellow, sky blue and the error colours, also for colour-blind eyes.
STROKE_ROOF_COLOR = LABEL_COLOR
STROKE_BACKGROUND_COLOR = (150, 70, 255)
#: Smart select's proposed outline (before Enter accepts it): white-green, filled lightly.
PROPOSAL_COLOR = (80, 255, 140)
#: The uncertainty layer: where the model doubts, a magenta fog (alpha rises with the doubt).
UNCERTAINTY_COLOR = (255, 40, 200)
#: Width in image pixels of the label's outline (the inner band of its boundary).
OUTLINE_WIDTH = 2

ERROR_NAMES = {1: "false positive", 2: "false negative", 3: "true positive"}

# Control points of an "inferno"-like ramp (dark purple -> red -> yellow).
_HEAT_POINTS = np.array(
    [
        (0.00, 0, 0, 4),
        (0.15, 40, 11, 84),
        (0.35, 120, 28, 109),
        (0.50, 188, 55, 84),
        (0.65, 237, 105, 37),
        (0.80, 251, 180, 26),
        (1.00, 252, 255, 164),
    ],
    dtype=np.float64,
)


def argb(r: int, g: int, b: int, a: int = 255) -> int:
    return ((a & 255) << 24) | ((r & 255) << 16) | ((g & 255) << 8) | (b & 255)


def mask_table(color: tuple[int, int, int]) -> list[int]:
    return [argb(0, 0, 0, 0), argb(*color)]


def error_table() -> list[int]:
    return [argb(0, 0, 0, 0), argb(*FP_COLOR), argb(*FN_COLOR), argb(*TP_COLOR)]


def stroke_table(alpha: int = 210) -> list[int]:
    """Stroke codes 0 (transparent), 1 (background), 2 (roof)."""
    return [
        argb(0, 0, 0, 0),
        argb(*STROKE_BACKGROUND_COLOR, alpha),
        argb(*STROKE_ROOF_COLOR, alpha),
    ]


def proposal_table() -> list[int]:
    return [argb(0, 0, 0, 0), argb(*PROPOSAL_COLOR, 150)]


def uncertainty_table() -> list[int]:
    """256 colours for uncertainty 0..1 (codes 0..255): transparent when the model is sure,
    rising to an opaque magenta on the threshold."""
    x = np.linspace(0.0, 1.0, 256)
    alpha = np.clip(x**1.5 * 240, 0, 240)
    return [argb(*UNCERTAINTY_COLOR, int(a)) for a in alpha]


def uncertainty_codes(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """The uncertainty (:func:`core.uncertainty.uncertainty`) of a probability map as 0..255."""
    from core.uncertainty import uncertainty

    return heat_codes(uncertainty(prob, min(max(threshold, 0.01), 0.99)))


def heat_table() -> list[int]:
    """256 colours for probabilities 0..1; alpha rises with probability so the image shows."""
    x = np.linspace(0.0, 1.0, 256)
    channels = [np.interp(x, _HEAT_POINTS[:, 0], _HEAT_POINTS[:, i]) for i in (1, 2, 3)]
    alpha = np.clip(x * 1.6, 0.0, 1.0) * 235 + 20 * (x > 0.02)
    return [
        argb(int(r), int(g), int(b), int(min(a, 255)))
        for r, g, b, a in zip(*channels, alpha, strict=True)
    ]


@lru_cache(maxsize=1)
def heat_table_cached() -> list[int]:
    return heat_table()


def heat_color(value: float) -> tuple[int, int, int]:
    """RGB of the heat map at ``value`` (for legends)."""
    return tuple(int(np.interp(value, _HEAT_POINTS[:, 0], _HEAT_POINTS[:, i])) for i in (1, 2, 3))


def heat_stops(count: int = 11) -> list[tuple[float, tuple[int, int, int]]]:
    """``count`` evenly spaced ``(value, rgb)`` stops of the heat map's colour ramp (legends)."""
    return [(float(v), heat_color(float(v))) for v in np.linspace(0.0, 1.0, count)]


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


def outline_region(
    codes: np.ndarray, x0: int, y0: int, x1: int, y1: int, width: int = OUTLINE_WIDTH
) -> np.ndarray:
    """The outline codes (1 on the boundary, else 0) of the mask ``codes`` in ``[y0:y1, x0:x1]``.

    A pixel is on the boundary when it is in the mask and a pixel within ``width`` (Chebyshev
    distance) is not, outside the image counting as not in the mask (a roof cut by the image
    edge is closed there). Only the window grown by ``width`` is read, so an edit's rectangle
    grown by ``width`` is all that a brush move needs to recompute.
    """
    height, full_width = codes.shape
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(full_width, x1), min(height, y1)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((max(0, y1 - y0), max(0, x1 - x0)), np.uint8)
    w = int(width)
    inside = np.asarray(codes[y0:y1, x0:x1]).astype(bool)
    if w <= 0:
        return inside.view(np.uint8)
    window = np.zeros((y1 - y0 + 2 * w, x1 - x0 + 2 * w), bool)  # zero outside the image
    sy0, sx0 = max(0, y0 - w), max(0, x0 - w)
    sy1, sx1 = min(height, y1 + w), min(full_width, x1 + w)
    window[sy0 - (y0 - w) : sy1 - (y0 - w), sx0 - (x0 - w) : sx1 - (x0 - w)] = codes[
        sy0:sy1, sx0:sx1
    ]
    k = 2 * w + 1
    rows = window[:, 0 : window.shape[1] - k + 1].copy()  # erosion by a k x k square, separably
    for i in range(1, k):
        rows &= window[:, i : window.shape[1] - k + 1 + i]
    eroded = rows[0 : rows.shape[0] - k + 1].copy()
    for i in range(1, k):
        eroded &= rows[i : rows.shape[0] - k + 1 + i]
    np.logical_not(eroded, out=eroded)
    eroded &= inside
    return eroded.view(np.uint8)


def outline_codes(codes: np.ndarray, width: int = OUTLINE_WIDTH) -> np.ndarray:
    """The outline codes of a whole mask (see :func:`outline_region`)."""
    return outline_region(codes, 0, 0, codes.shape[1], codes.shape[0], width)
