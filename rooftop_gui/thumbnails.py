"""Browser thumbnails: each image's small picture made in one background thread, newest
request first (what is on screen now), and cached (LRU), with the reason for any image that
cannot be read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QPixmap

from rooftop_gui.workers import TaskRunner

#: The thumbnails' side in px.
THUMB = 40


#: Pillow modes of 8-bit samples, thumbnailed by Pillow directly (fast: JPEG draft mode).
_EIGHT_BIT_MODES = frozenset(
    {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
)


def _make_thumbnail(path: Path, size: int):
    """A QImage thumbnail of ``path`` (run in the loader thread; QImage is thread-safe).

    8-bit images go through Pillow's thumbnail; anything else (16-bit, float, TIFFs only tifffile
    reads) through ``core.io.read_image``, so the thumbnail shows the same documented conversion
    as the canvas (Pillow's ``convert("RGB")`` clips 16-bit values to white).
    """
    import numpy as np
    import qimage2ndarray
    from PIL import Image, UnidentifiedImageError

    from core.io import MAX_PIXELS, read_image

    rgb = None
    try:
        with Image.open(path) as im:
            width, height = im.size  # from the header: refuse a bomb before decoding
            if width * height > MAX_PIXELS:
                raise ValueError(
                    f"image is {width} x {height} pixels, more than the "
                    f"{MAX_PIXELS:,} we decode (a decompression-bomb guard)"
                )
            if im.mode in _EIGHT_BIT_MODES:
                im.draft("RGB", (size * 2, size * 2))
                im.thumbnail((size, size))
                rgb = np.asarray(im.convert("RGB"))
    except UnidentifiedImageError:
        pass  # core.io says why (empty, not an image), or reads it (a float TIFF)
    if rgb is None:
        with Image.fromarray(read_image(path)) as im:
            im.thumbnail((size, size))
            rgb = np.asarray(im)
    return qimage2ndarray.array2qimage(rgb)


class ThumbnailLoader(QObject):
    """Makes thumbnails in a background thread; newest request first; results cached (LRU)."""

    ready = Signal(object)  # the path whose thumbnail (or error) is now available

    def __init__(
        self,
        runner: TaskRunner,
        size: int = THUMB,
        cache_size: int = 6000,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self._size = size
        self._cache: OrderedDict[Path, QPixmap] = OrderedDict()
        self._errors: dict[Path, str] = {}
        self._queue: deque[Path] = deque(maxlen=400)
        self._queued: set[Path] = set()
        self._lock = threading.Lock()
        self._task = None
        self._cache_size = cache_size
        self._closed = False

    def pixmap(self, path: Path) -> QPixmap | None:
        pix = self._cache.get(path)
        if pix is not None:
            self._cache.move_to_end(path)
        return pix

    def error(self, path: Path) -> str | None:
        return self._errors.get(path)

    def request(self, path: Path) -> None:
        if self._closed or path in self._cache or path in self._errors:
            return
        with self._lock:
            if path in self._queued:
                try:
                    self._queue.remove(path)
                except ValueError:
                    pass
            self._queue.append(path)
            self._queued = set(self._queue)
        if self._task is None:
            self._task = self._runner.start(
                self._work, on_progress=self._on_result, on_done=self._on_done, name="thumbnails"
            )

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._queued.clear()
        self._cache.clear()
        self._errors.clear()

    def shutdown(self) -> None:
        """Stop making thumbnails for good (window closing); the running task ends soon."""
        self._closed = True
        with self._lock:
            self._queue.clear()
            self._queued.clear()
        if self._task is not None:
            self._task.request_stop()

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def _work(self, on_progress, should_stop) -> None:
        while not should_stop():
            with self._lock:
                if not self._queue:
                    return
                path = self._queue.pop()  # newest first: what is on screen now
                self._queued.discard(path)
            try:
                on_progress((path, _make_thumbnail(path, self._size), None))
            except Exception as exc:  # noqa: BLE001 - any unreadable file gets an error mark
                on_progress((path, None, f"{path.name}: {exc}"))

    def _on_result(self, event) -> None:
        path, image, error = event
        if image is not None:
            self._cache[path] = QPixmap.fromImage(image)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._errors[path] = error
        self.ready.emit(path)

    def _on_done(self) -> None:
        self._task = None
        with self._lock:
            more = bool(self._queue)
        if more and not self._closed:
            self._task = self._runner.start(
                self._work, on_progress=self._on_result, on_done=self._on_done, name="thumbnails"
            )
