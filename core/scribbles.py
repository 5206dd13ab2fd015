"""Partial labels ("scribbles", strokes): a few painted pixels of roof and of background.

An image may have, beside or instead of its full label, ``DATASET/<split>/scribble/NAME.png``: a
single-channel PNG whose pixels are :data:`UNLABELLED` (0), :data:`BACKGROUND` (1) or
:data:`ROOF` (2), ilastik's convention. Training learns from the labelled pixels only. Qt-free
and torch-free.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import ImageReadError
from core.io import read_mask_codes, write_bytes_atomic

UNLABELLED, BACKGROUND, ROOF = 0, 1, 2
CODES = (UNLABELLED, BACKGROUND, ROOF)
FOLDER = "scribble"


def scribble_path_for(root: str | Path, split: str, image_name: str) -> Path:
    """Where the strokes of ``image_name`` live (``.png`` whatever the image's suffix)."""
    return Path(root) / split / FOLDER / (Path(image_name).stem + ".png")


def read_scribble(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """The stroke codes ``(H, W) uint8`` of ``path``; ImageReadError naming the file when it is
    not a one-channel image of codes 0, 1 and 2, or not ``shape`` (height, width) when given."""
    codes = read_mask_codes(path)
    bad = codes > ROOF
    if bad.any():
        values = ", ".join(str(v) for v in np.unique(codes[bad])[:5])
        raise ImageReadError(
            f"a stroke file holds 0 (unlabelled), 1 (background) and 2 (roof), "
            f"but this one has the value(s) {values}",
            path,
        )
    if shape is not None and codes.shape != tuple(shape):
        raise ImageReadError(
            f"strokes are {codes.shape[1]} x {codes.shape[0]} but the image is "
            f"{shape[1]} x {shape[0]}",
            path,
        )
    return codes


def write_scribble(path: str | Path, codes: np.ndarray) -> Path:
    """Write stroke codes atomically as a one-channel PNG."""
    import io

    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.dtype != np.uint8 or (codes > ROOF).any():
        raise ValueError(
            f"stroke codes must be a 2-D uint8 array of 0, 1 and 2, got {codes.dtype} {codes.shape}"
        )
    buffer = io.BytesIO()
    Image.fromarray(codes, mode="L").save(buffer, format="PNG", compress_level=6)
    return write_bytes_atomic(path, buffer.getvalue())


def target_and_known(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(roof, labelled)`` boolean maps of stroke codes."""
    return codes == ROOF, codes != UNLABELLED


#: The image area (px) the stroke counts of :func:`simulate_strokes` are given for: a 256 px square.
STROKE_COUNT_AREA = 256 * 256


def simulate_strokes(
    mask: np.ndarray,
    rng: np.random.Generator | int = 0,
    max_fraction: float = 0.02,
    roof_strokes: int = 12,
    background_strokes: int = 12,
    radius: float = 2.0,
    length: float = 24.0,
    margin: float = 3.0,
    per_area: float | None = STROKE_COUNT_AREA,
) -> np.ndarray:
    """Strokes a user might paint on an image whose true roof is ``mask`` (benchmarks, tests).

    ``roof_strokes`` straight strokes of ``radius`` inside roofs (one per roof, largest roofs
    first, then more on the largest) and ``background_strokes`` on the ground, for every
    ``per_area`` pixels of the image (a larger image gets proportionally more, at least one of
    each; ``None``: that many per image). Each is about ``length`` px long in a random direction
    from a random pixel at least ``margin`` px inside its class (so a stroke never crosses a roof
    edge: a user paints well inside), clipped to the class shrunk by ``margin - radius``. Roof
    and ground strokes take turns, so both get their share when the budget ends: at most
    ``max_fraction`` of the pixels end up labelled (strokes stop being added past it). Same
    ``rng`` seed, same strokes.
    """
    from scipy import ndimage

    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    mask = np.asarray(mask).astype(bool)
    height, width = mask.shape
    codes = np.zeros(mask.shape, np.uint8)
    budget = int(max_fraction * mask.size)
    yy, xx = np.mgrid[0:height, 0:width]
    scale = 1.0 if per_area is None else mask.size / per_area

    def stroke(inside: np.ndarray, start: tuple[int, int], code: int) -> None:
        angle = rng.uniform(0, np.pi)
        half = length / 2
        dy, dx = np.sin(angle) * half, np.cos(angle) * half
        y0, x0 = start
        box = (
            slice(max(0, int(y0 - half - radius - 1)), int(y0 + half + radius + 2)),
            slice(max(0, int(x0 - half - radius - 1)), int(x0 + half + radius + 2)),
        )
        py, px = yy[box] - y0, xx[box] - x0
        t = np.clip((py * dy + px * dx) / max(dy * dy + dx * dx, 1e-9), -1, 1)
        near = (py - t * dy) ** 2 + (px - t * dx) ** 2 <= radius * radius
        near &= inside[box] & (codes[box] == UNLABELLED)
        room = budget - int(np.count_nonzero(codes))
        if room <= 0:
            return
        if near.sum() > room:  # keep the budget: only the first pixels of this stroke
            flat = np.flatnonzero(near)[room:]
            near.flat[flat] = False
        codes[box][near] = code

    planned: list[list[tuple[np.ndarray, tuple[int, int], int]]] = []
    for value, per, code in ((True, roof_strokes, ROOF), (False, background_strokes, BACKGROUND)):
        count = max(1, round(per * scale)) if per > 0 else 0
        region = mask if value else ~mask
        depth = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
        inside = depth >= max(margin - radius, 1.0)
        seeds = depth >= margin
        if not seeds.any() or count == 0:
            planned.append([])
            continue
        if value:
            labels, n = ndimage.label(seeds)
            sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
            order = np.argsort(-sizes, kind="stable")
            starts = []
            for k in range(count):
                comp = int(order[k % max(n, 1)]) + 1
                points = np.flatnonzero(labels == comp)
                starts.append(divmod(int(points[rng.integers(len(points))]), width))
        else:
            points = np.flatnonzero(seeds)
            starts = [divmod(int(points[i]), width) for i in rng.integers(len(points), size=count)]
        planned.append([(inside, start, code) for start in starts])
    roofs, grounds = planned
    for k in range(max(len(roofs), len(grounds))):  # roof and ground take turns
        for strokes in (roofs, grounds):
            if k < len(strokes):
                stroke(*strokes[k])
    return codes


def merge_into_label(codes: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """A full label from a prediction with the strokes winning where they disagree with it."""
    if codes.shape != prediction.shape:
        raise ValueError(f"strokes {codes.shape} and prediction {prediction.shape} differ in size")
    label = prediction.astype(bool).copy()
    label[codes == ROOF] = True
    label[codes == BACKGROUND] = False
    return label
