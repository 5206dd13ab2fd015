"""Output pictures and exports: the original's side-by-side composite, masks as shown (torch-free).

An export writes, for each image, what is shown: the probability map made a mask with the
threshold and dilation of the display (``core.postprocess.to_mask``). :func:`export_outputs`
writes the masks (``<stem>.png``, 0/255) or the composites (``<stem>_composite.png``: input |
label | prediction) of many images, carrying on past an image that cannot be read or written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError, RooftopError
from core.io import (
    ensure_folder,
    read_image,
    read_mask,
    remove_stale_temp_files,
    write_image,
    write_mask,
)
from core.postprocess import to_mask
from core.progress import Progress, ProgressCallback, StopCheck, Stopped, check_stop, report

MARGIN = 10
#: What :func:`export_outputs` can write.
EXPORT_KINDS = ("masks", "composites")


def _as_rgb(mask: np.ndarray) -> np.ndarray:
    grey = np.where(mask, np.uint8(255), np.uint8(0))
    return np.repeat(grey[..., None], 3, axis=2)


def composite(
    image: np.ndarray, label: np.ndarray | None, prediction: np.ndarray, margin: int = MARGIN
) -> np.ndarray:
    """The original's picture: input | label (when known) | prediction, on a white background."""
    panels = [image] + ([_as_rgb(label)] if label is not None else []) + [_as_rgb(prediction)]
    h = max(p.shape[0] for p in panels)
    w = sum(p.shape[1] for p in panels) + margin * (len(panels) + 1)
    canvas = np.full((h + 2 * margin, w, 3), 255, np.uint8)
    x = margin
    for panel in panels:
        canvas[margin : margin + panel.shape[0], x : x + panel.shape[1]] = panel
        x += panel.shape[1] + margin
    return canvas


def mask_path(out_dir: str | Path, name: str) -> Path:
    """Where the mask of the image ``name`` goes: ``out_dir/<stem>.png``."""
    return Path(out_dir) / f"{Path(name).stem}.png"


def composite_path(out_dir: str | Path, name: str) -> Path:
    """Where the composite of the image ``name`` goes: ``out_dir/<stem>_composite.png``."""
    return Path(out_dir) / f"{Path(name).stem}_composite.png"


def export_mask(
    out_dir: str | Path, name: str, prob: np.ndarray, threshold: float = 0.5, dilation: int = 0
) -> Path:
    """Write ``out_dir/<name>.png`` from a probability map, exactly as shown (threshold, dilation)."""
    folder = ensure_folder(out_dir)
    return write_mask(mask_path(folder, name), to_mask(prob, threshold, dilation))


@dataclass(frozen=True, eq=False)
class ExportItem:
    """One image to export: its name (the output's stem), its files, and what is already known.

    ``prob`` None: it is predicted first (:func:`export_outputs`'s ``predict``). ``image`` and
    ``label`` None: read from ``image_path`` and ``label_path`` when a composite needs them (a
    missing label file leaves the label panel out). ``tag`` is the caller's own (the window keeps
    the result key of the image there).
    """

    name: str
    image_path: Path
    label_path: Path | None = None
    prob: np.ndarray | None = None
    image: np.ndarray | None = None
    label: np.ndarray | None = None
    tag: Any = None
    #: Its ground resolution when its dataset's manifest gives it (``Sample``'s), for a
    #: prediction at the model's (:func:`core.ground_resolution.sample_resolution`).
    ground_resolution_cm: float | None = None


@dataclass
class ExportResult:
    """The files written, one message per image that could not be exported, and whether the
    export was stopped before its end."""

    written: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stopped: bool = False


#: ``predict(item, image) -> prob``: the probability map of an item that has none.
Predict = Callable[[ExportItem, np.ndarray], np.ndarray]


def export_outputs(
    out_dir: str | Path,
    what: str,
    items: Sequence[ExportItem],
    threshold: float,
    dilation: int,
    predict: Predict | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> ExportResult:
    """Write the ``what`` ("masks" or "composites") of ``items`` into ``out_dir`` at
    ``threshold`` and ``dilation``.

    Leftover temporary files of an earlier export of the same targets killed midway are removed
    first (other files in the folder are the user's and are left alone). An image that cannot be
    read, predicted or written is reported in ``ExportResult.errors`` and the export goes on.
    ``on_progress`` receives ``Progress(done, total, item=name)`` after each image. A stop
    (``should_stop``, or Stopped raised by ``predict``) ends the export between images and returns
    what was written, with ``stopped`` set. ``out_dir`` that cannot be made raises ImageWriteError.
    """
    if what not in EXPORT_KINDS:
        raise ConfigError(f"export masks or composites, not {what!r}")
    folder = ensure_folder(out_dir)
    target = mask_path if what == "masks" else composite_path
    remove_stale_temp_files(folder, targets=[target(folder, item.name).name for item in items])
    result = ExportResult()
    for index, item in enumerate(items):
        try:
            check_stop(should_stop, "export")
            prob, image, label = item.prob, item.image, item.label
            if prob is None or (what == "composites" and image is None):
                image = read_image(item.image_path)
            if prob is None:
                if predict is None:
                    raise RooftopError("has no prediction to export", item.image_path)
                prob = predict(item, image)
            if what == "masks":
                result.written.append(export_mask(folder, item.name, prob, threshold, dilation))
            else:
                if label is None and item.label_path and Path(item.label_path).exists():
                    label = read_mask(item.label_path)
                picture = composite(image, label, to_mask(prob, threshold, dilation))
                result.written.append(write_image(composite_path(folder, item.name), picture))
        except Stopped:
            result.stopped = True
            break
        except RooftopError as exc:
            result.errors.append(str(exc))
        report(on_progress, Progress(index + 1, len(items), item.name))
    return result


__all__ = [
    "EXPORT_KINDS",
    "ExportItem",
    "ExportResult",
    "composite",
    "composite_path",
    "export_mask",
    "export_outputs",
    "mask_path",
]
