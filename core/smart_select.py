"""Smart select: one click on a roof proposes its outline from the image itself.

Colour-tolerant region growing: the pixels connected to the click (4-neighbours) whose colour,
lightly smoothed, is within ``tolerance`` of the colour around the click; with a probability map
the model's opinion moves the boundary (a pixel the model calls roof is accepted further from
the seed colour, one it calls ground sooner refused). The region's holes are filled and its
edge smoothed by a small opening. A region larger than ``max_fraction`` of the image (the click
leaked into the ground) is refused. Torch-free and Qt-free (scipy's ndimage).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

_FOUR = ndimage.generate_binary_structure(2, 1)
_SQUARE = ndimage.generate_binary_structure(2, 2)

#: Default colour tolerance (RGB units, after smoothing).
TOLERANCE = 30.0


def _smoothed(image: np.ndarray, box: tuple[slice, slice]) -> np.ndarray:
    patch = np.asarray(image[box], dtype=np.float32)
    return ndimage.uniform_filter(patch, size=(3, 3, 1), mode="nearest")


def smart_select(
    image: np.ndarray,
    x: float,
    y: float,
    prob: np.ndarray | None = None,
    tolerance: float = TOLERANCE,
    prob_weight: float = 0.8,
    max_fraction: float = 0.25,
    reach: int = 160,
) -> np.ndarray | None:
    """The proposed roof ``(H, W) bool`` under the click ``(x, y)`` (column, row; pixel centres
    at integers), or None (outside the image, or the region leaked past ``max_fraction`` of the
    image). Only a ``2 * reach`` px window around the click is looked at, so a click costs the
    same on a 20 000 px orthophoto as on a patch."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] < 3:
        raise ValueError(f"an image must be (H, W, 3), got {image.shape}")
    height, width = image.shape[:2]
    col, row = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
    if not (0 <= row < height and 0 <= col < width):
        return None
    box = (
        slice(max(0, row - reach), min(height, row + reach + 1)),
        slice(max(0, col - reach), min(width, col + reach + 1)),
    )
    r, c = row - box[0].start, col - box[1].start
    colours = _smoothed(image[..., :3], box)
    seed = np.median(colours[max(0, r - 2) : r + 3, max(0, c - 2) : c + 3].reshape(-1, 3), axis=0)
    distance = np.sqrt(((colours - seed) ** 2).sum(axis=2)) / float(tolerance)
    if prob is not None:
        p = np.asarray(prob, dtype=np.float32)[box]
        distance -= prob_weight * (2.0 * p - 1.0)
    candidate = distance <= 1.0
    candidate[r, c] = True
    labels, _ = ndimage.label(candidate, structure=_FOUR)
    region = labels == labels[r, c]
    grown = labels == labels[r, c]
    region = ndimage.binary_opening(grown, structure=_SQUARE)
    if region[r, c]:  # the opening may cut thin bridges: keep the click's part
        parts, _ = ndimage.label(region, structure=_FOUR)
        region = parts == parts[r, c]
    else:  # a thin region around the click: keep it as grown
        region = grown
    # the smoothing blurs the edge: take back the ring whose own colour is the roof's
    raw = np.asarray(image[box][..., :3], dtype=np.float32)
    ring = ndimage.binary_dilation(region, structure=_SQUARE) & ~region
    region |= ring & (np.sqrt(((raw - seed) ** 2).sum(axis=2)) <= tolerance)
    region = ndimage.binary_fill_holes(region)
    if region.sum() > max_fraction * height * width:
        return None
    touches = region[0].any() or region[-1].any() or region[:, 0].any() or region[:, -1].any()
    edge = (
        (box[0].start > 0 and region[0].any())
        or (box[0].stop < height and region[-1].any())
        or (box[1].start > 0 and region[:, 0].any())
        or (box[1].stop < width and region[:, -1].any())
    )
    if touches and edge:  # it ran out of the window: it leaked into the ground
        return None
    out = np.zeros((height, width), bool)
    out[box] = region
    return out


__all__ = ["TOLERANCE", "smart_select"]
