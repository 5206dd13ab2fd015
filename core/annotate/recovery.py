"""Recovery copies of unsaved edits: :func:`save_recovery` / :func:`load_recovery` (one ``.npz``
file holding the mask and the label path it belongs to), and finding the copies in a recovery
folder that belong to the images of a dataset (:func:`find_recovery`).

The folder is the caller's: the GUI keeps its copies in ``<data dir>/recovery``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io as _io
import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.annotate.regions import _check_mask
from core.dataset import label_path_for
from core.errors import ImageReadError, ImageWriteError
from core.io import atomic_output
from core.scribbles import scribble_path_for

log = logging.getLogger(__name__)

_RECOVERY_FORMAT = "rooftop-recovery"
_RECOVERY_VERSION = 1


@dataclass(frozen=True)
class RecoveryCopy:
    """What :func:`load_recovery` reads back: the mask, the label file it belongs to, metadata."""

    mask: np.ndarray
    label_path: Path | None
    metadata: dict
    #: "label" (``mask`` is bool) or "strokes" (``mask`` is uint8 stroke codes, ``label_path``
    #: the stroke file).
    kind: str = "label"


def save_recovery(
    path: str | Path,
    mask: np.ndarray,
    label_path: str | Path | None = None,
    metadata: dict | None = None,
) -> Path:
    """Write ``mask`` and the label path it belongs to into one ``.npz`` file, atomically.

    ``metadata`` (JSON-serialisable) is stored alongside and returned by :func:`load_recovery`.
    A uint8 array is stroke codes (:mod:`core.scribbles`), ``label_path`` then its stroke file.
    """
    strokes = isinstance(mask, np.ndarray) and mask.dtype == np.uint8 and mask.ndim == 2
    if not strokes:
        _check_mask(mask)
    path = Path(path)
    meta = {
        "format": _RECOVERY_FORMAT,
        "version": _RECOVERY_VERSION,
        "label_path": str(label_path) if label_path is not None else None,
        "shape": list(mask.shape),
        "kind": "strokes" if strokes else "label",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "metadata": dict(metadata or {}),
    }
    try:
        meta_json = json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"recovery metadata must be JSON-serialisable: {exc}") from exc
    buffer = _io.BytesIO()
    if strokes:
        np.savez_compressed(buffer, codes=mask, meta=np.array(meta_json))
    else:
        np.savez_compressed(buffer, mask=np.packbits(mask, axis=None), meta=np.array(meta_json))
    try:
        with atomic_output(path) as tmp:
            tmp.write_bytes(buffer.getvalue())
    except ImageWriteError:
        raise
    except Exception as exc:
        raise ImageWriteError(f"cannot write the recovery copy ({exc})", path) from exc
    return path


def load_recovery(path: str | Path) -> RecoveryCopy:
    """Read a file written by :func:`save_recovery`; ImageReadError naming it if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError("recovery file not found", path)
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"][()]))
            kind = meta.get("kind", "label")
            bits = data["codes"] if kind == "strokes" else data["mask"]
        if meta.get("format") != _RECOVERY_FORMAT:
            raise ValueError("not a Rooftop recovery file")
        if int(meta.get("version", 0)) > _RECOVERY_VERSION:
            raise ValueError(f"written by a newer version (format {meta.get('version')})")
        height, width = (int(v) for v in meta["shape"])
        if kind == "strokes":
            if bits.shape != (height, width) or bits.dtype != np.uint8:
                raise ValueError("stroke data does not match its shape")
            mask = np.array(bits)
        else:
            if height < 0 or width < 0 or bits.size * 8 < height * width:
                raise ValueError("mask data is truncated")
            mask = np.unpackbits(bits, count=height * width).astype(bool).reshape(height, width)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise ImageReadError(f"not a readable recovery copy ({exc})", path) from exc
    label = meta.get("label_path")
    return RecoveryCopy(
        mask, Path(label) if label else None, dict(meta.get("metadata") or {}), kind
    )


# ------------------------------------------------------------------------- finding the copies


def label_path_of(root: str | Path | None, sample: Any) -> Path:
    """Where ``sample``'s label lives, or will be created (:func:`core.dataset.label_path_for`).

    ``sample`` is a :class:`core.dataset.Sample` (or anything with its ``name``, ``split``,
    ``image_path`` and ``label_path``); without a ``root`` the dataset is the folder three levels
    above the image (``<root>/<split>/data/<name>``).
    """
    existing = getattr(sample, "label_path", None)
    if existing is not None:
        return Path(existing)
    if root is not None:
        return Path(label_path_for(root, sample.split, sample.name))
    base = Path(sample.image_path).parent.parent.parent
    return base / sample.split / "label" / f"{Path(sample.name).stem}.png"


def stroke_path_of(root: str | Path | None, sample: Any) -> Path:
    """Where ``sample``'s strokes live, or will be created (:func:`core.scribbles.scribble_path_for`)."""
    existing = getattr(sample, "scribble_path", None)
    if existing is not None:
        return Path(existing)
    base = Path(root) if root is not None else Path(sample.image_path).parent.parent.parent
    return scribble_path_for(base, sample.split, sample.name)


def label_key(path: str | Path) -> str:
    """The resolved path as a string: two spellings of one label file get the same key."""
    return str(Path(path).resolve())


def recovery_path_for(folder: str | Path, label_path: str | Path) -> Path:
    """The recovery copy of ``label_path`` in ``folder``: ``<stem>-<hash of the full path>.npz``."""
    digest = hashlib.sha1(label_key(label_path).encode("utf-8")).hexdigest()[:16]
    return Path(folder) / f"{Path(label_path).stem}-{digest}.npz"


@dataclass
class RecoveryEntry:
    """A recovery copy on disk that belongs to an image of the open dataset."""

    file: Path
    label_path: Path
    sample: Any
    created: str = ""
    kind: str = "label"  # or "strokes": label_path is then the stroke file

    def describe(self) -> str:
        when = f"   (last copy {self.created})" if self.created else ""
        what = "  (strokes)" if self.kind == "strokes" else ""
        return f"{self.sample.split}/{self.sample.name}{what}{when}"


def find_recovery(
    folder: str | Path, root: str | Path | None, samples: list[Any]
) -> list[RecoveryEntry]:
    """The readable recovery copies in ``folder`` whose label path belongs to one of ``samples``
    (of the dataset at ``root``); unreadable copies are logged and skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    by_label = {label_key(label_path_of(root, s)): s for s in samples}
    by_label.update((label_key(stroke_path_of(root, s)), s) for s in samples)
    found: list[RecoveryEntry] = []
    for file in sorted(folder.glob("*.npz")):
        try:
            copy = load_recovery(file)
        except ImageReadError as exc:
            log.warning("skipping unreadable recovery copy: %s", exc)
            continue
        if copy.label_path is None:
            continue
        sample = by_label.get(label_key(copy.label_path))
        if sample is not None:
            try:
                created = _dt.datetime.fromtimestamp(file.stat().st_mtime).strftime(
                    "%Y-%m-%d %H:%M"
                )
            except OSError:
                created = ""
            found.append(RecoveryEntry(file, Path(copy.label_path), sample, created, copy.kind))
    return found
