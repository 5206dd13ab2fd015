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
        raise ImageReadError(f"a stroke file holds 0 (unlabelled), 1 (background) and 2 (roof), "
                             f"but this one has the value(s) {values}", path)
    if shape is not None and codes.shape != tuple(shape):
        raise ImageReadError(f"strokes are {codes.shape[1]} x {codes.shape[0]} but the image is "
                             f"{shape[1]} x {shape[0]}", path)
    return codes


def write_scribble(path: str | Path, codes: np.ndarray) -> Path:
    """Write stroke codes atomically as a one-channel PNG."""
    import io

    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.dtype != np.uint8 or (codes > ROOF).any():
        raise ValueError(f"stroke codes must be a 2-D uint8 array of 0, 1 and 2, got "
                         f"{codes.dtype} {codes.shape}")
    buffer = io.BytesIO()
    Image.fromarray(codes, mode="L").save(buffer, format="PNG", compress_level=6)
    return write_bytes_atomic(path, buffer.getvalue())


def target_and_known(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(roof, labelled)`` boolean maps of stroke codes."""
    return codes == ROOF, codes != UNLABELLED


def merge_into_label(codes: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """A full label from a prediction with the strokes winning where they disagree with it."""
    if codes.shape != prediction.shape:
        raise ValueError(f"strokes {codes.shape} and prediction {prediction.shape} differ in size")
    label = prediction.astype(bool).copy()
    label[codes == ROOF] = True
    label[codes == BACKGROUND] = False
    return label
