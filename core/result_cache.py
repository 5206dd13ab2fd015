"""Results that belong to one file of one dataset: which prediction is whose.

A probability map is only valid for the exact image it was computed from, by the exact model file
that computed it. Two datasets can both have ``test/00009.png``, a dataset can be regenerated in
place, a label or a model can be overwritten: so a cached result is keyed by the dataset's root and
the *identity* of the image and model files (resolved path, size, modification time), never by a
split and file name alone. A key made after a file changed no longer matches, and the stale entry
is dropped when its successor is stored.

No Qt and no torch: the window's prediction panel keeps its cache here, and so can a script.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class FileIdentity:
    """A file as it is now: its resolved path, size in bytes and modification time (ns)."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | Path) -> FileIdentity | None:
        """The identity of ``path`` now, or None when it cannot be read (gone, no permission)."""
        try:
            resolved = Path(path).resolve()
            info = os.stat(resolved)
        except OSError:
            return None
        return cls(str(resolved), int(info.st_size), int(info.st_mtime_ns))


@dataclass(frozen=True)
class ResultKey:
    """Whose result: the dataset's root (resolved; "" for a loose image), the model file, and the
    image file, each as it was when the result was made."""

    dataset: str
    model: FileIdentity
    image: FileIdentity

    @property
    def slot(self) -> tuple[str, str, str]:
        """The same place whatever the files' versions: an entry of an older version of these
        files is stale once a result for the same slot is stored."""
        return (self.dataset, self.model.path, self.image.path)


def result_key(
    dataset_root: str | Path | None, model_path: str | Path | None, image_path: str | Path
) -> ResultKey | None:
    """The key of ``image_path``'s result by ``model_path`` in the dataset at ``dataset_root``,
    for the files as they are now; None without a model or when a file cannot be read."""
    if model_path is None:
        return None
    model = FileIdentity.of(model_path)
    image = FileIdentity.of(image_path)
    if model is None or image is None:
        return None
    root = str(Path(dataset_root).resolve()) if dataset_root is not None else ""
    return ResultKey(root, model, image)


class ProbabilityCache:
    """LRU of probability maps keyed by :class:`ResultKey`, bounded in bytes.

    Storing a result drops any older result of the same slot (same dataset, model path and image
    path, but another version of a file), so what changed on disk is never shown again.
    """

    def __init__(self, max_bytes: int = 768 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[ResultKey, np.ndarray] = OrderedDict()
        self._by_slot: dict[tuple[str, str, str], ResultKey] = {}
        self._bytes = 0

    def get(self, key: ResultKey | None) -> np.ndarray | None:
        if key is None:
            return None
        prob = self._items.get(key)
        if prob is not None:
            self._items.move_to_end(key)
        return prob

    def put(self, key: ResultKey | None, prob: np.ndarray) -> None:
        if key is None:
            return
        older = self._by_slot.get(key.slot)
        if older is not None:
            self._drop(older)
        self._items[key] = prob
        self._by_slot[key.slot] = key
        self._bytes += prob.nbytes
        while self._bytes > self.max_bytes and len(self._items) > 1:
            self._drop(next(iter(self._items)))

    def _drop(self, key: ResultKey) -> None:
        prob = self._items.pop(key, None)
        if prob is not None:
            self._bytes -= prob.nbytes
        if self._by_slot.get(key.slot) == key:
            del self._by_slot[key.slot]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()
        self._by_slot.clear()
        self._bytes = 0
