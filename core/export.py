"""Output pictures: the original's side-by-side composite and coloured overlays (torch-free)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.io import ensure_folder, write_mask
from core.postprocess import to_mask

MARGIN = 10
ROOF_COLOUR = (255, 64, 32)


def _as_rgb(mask: np.ndarray) -> np.ndarray:
    grey = np.where(mask, np.uint8(255), np.uint8(0))
    return np.repeat(grey[..., None], 3, axis=2)


def composite(image: np.ndarray, label: np.ndarray | None, prediction: np.ndarray,
              margin: int = MARGIN) -> np.ndarray:
    """The original's picture: input | label (when known) | prediction, on a white background."""
    panels = [image] + ([_as_rgb(label)] if label is not None else []) + [_as_rgb(prediction)]
    h = max(p.shape[0] for p in panels)
    w = sum(p.shape[1] for p in panels) + margin * (len(panels) + 1)
    canvas = np.full((h + 2 * margin, w, 3), 255, np.uint8)
    x = margin
    for panel in panels:
        canvas[margin:margin + panel.shape[0], x:x + panel.shape[1]] = panel
        x += panel.shape[1] + margin
    return canvas


def overlay(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = ROOF_COLOUR,
            opacity: float = 0.45) -> np.ndarray:
    """The image with ``mask`` tinted in ``colour``."""
    out = image.astype(np.float32)
    out[mask] = out[mask] * (1 - opacity) + np.asarray(colour, np.float32) * opacity
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def export_mask(out_dir: str | Path, name: str, prob: np.ndarray, threshold: float = 0.5,
                dilation: int = 0) -> Path:
    """Write ``out_dir/<name>.png`` from a probability map, exactly as shown (threshold, dilation)."""
    folder = ensure_folder(out_dir)
    return write_mask(folder / f"{Path(name).stem}.png", to_mask(prob, threshold, dilation))
