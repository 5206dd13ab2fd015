"""What the ``rooftop`` commands print: lines, progress bars, exit codes, help formatting."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.progress import Progress

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def launch_rank() -> int | None:
    """This process's rank under torchrun (``RANK`` with ``WORLD_SIZE`` > 1), else None
    (``core.training.distributed.launch_env`` without importing torch)."""
    try:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            return int(os.environ.get("RANK", "0"))
    except ValueError:
        pass
    return None


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


class Reporter:
    """Progress for people: a live line on a terminal, plain lines otherwise (e.g. in logs)."""

    def __init__(self, stream=None, quiet: bool = False, bars: bool = True, prefix: str = ""):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        #: put before the lines of :meth:`problem` (``[rank 1] `` under torchrun)
        self.prefix = prefix
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        #: progress bars (:class:`ProgressBar`): only on a terminal, and not with --json
        self.bars = bars and self.live and not quiet
        self._last_len = 0
        self._last_time = 0.0

    def line(self, text: str) -> None:
        if self.quiet:
            return
        self._clear()
        print(text, file=self.stream, flush=True)

    def problem(self, text: str) -> None:
        """An error or why the command ended: printed even when quiet."""
        self._clear()
        print(self.prefix + text, file=self.stream, flush=True)

    def status(self, text: str) -> None:
        """A transient line (only on a terminal, at most ten times a second)."""
        if self.quiet or not self.live:
            return
        now = time.monotonic()
        if now - self._last_time < 0.1:
            return
        self._last_time = now
        pad = max(0, self._last_len - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._last_len = len(text)

    def _clear(self) -> None:
        if self.live and self._last_len:
            self.stream.write("\r" + " " * self._last_len + "\r")
            self._last_len = 0


class ProgressBar:
    """``core.progress.Progress`` events shown as a tqdm bar on the reporter's stream (counts,
    rate and ETA); nothing at all unless the reporter shows bars. The bar is cleared when done.

        with ProgressBar(out, "predicting", "files") as bar:
            predict_files(..., on_progress=bar)
    """

    def __init__(self, out: Reporter, desc: str, unit: str):
        self.out, self.desc, self.unit = out, desc, unit
        self._bar: Any = None
        self._kind: tuple[str, int] | None = None  # the unit and total the bar counts

    def __call__(self, event: Any) -> None:
        if not isinstance(event, Progress) or not self.out.bars:
            return
        kind = (event.unit, event.total)
        if self._bar is not None and kind != self._kind:
            # another count (the pixels of one orthophoto among the files): a bar of its own
            self._bar.close()
            self._bar = None
        if self._bar is None:
            from tqdm import tqdm

            pixels = event.unit == "pixels"  # megapixels, with their rate and ETA
            self._bar = tqdm(
                total=event.total,
                desc=self.desc,
                unit="px" if pixels else (event.unit or self.unit),
                unit_scale=pixels,
                file=self.out.stream,
                leave=False,
                dynamic_ncols=True,
            )
            self._kind = kind
        if event.item:
            self._bar.set_postfix_str(Path(event.item).name, refresh=False)
        self._bar.update(event.done - self._bar.n)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def text_bar(done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / max(total, 1))
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


class StopOnInterrupt:
    """First Ctrl+C asks the training loop to stop after the current batch (and save);
    a second one interrupts at once."""

    def __init__(self, out: Reporter):
        self.out = out
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> Callable[[], bool]:
        def handler(signum, frame):  # noqa: ARG001
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True
            self.out.line(
                "interrupted: finishing this batch and saving the model "
                "(press Ctrl+C again to abort without saving)"
            )

        try:
            self._previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not in the main thread
            self._previous = None
        return lambda: self.requested

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def format_area(total: float, unit: str | None) -> str:
    """``"1,234.5 m²"``, or ``"1,234 px²"`` for areas in pixels (an image without a CRS)."""
    return f"{total:,.1f} m²" if unit == "m" else f"{total:,.0f} px²"
