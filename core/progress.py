"""The one progress event and the one stop exception of every long core function.

Every long function of the core (dataset generation, training, evaluation, prediction, export)
takes two plain callbacks: ``on_progress(event)`` and ``should_stop() -> bool``. Counted work
reports :class:`Progress`; training also reports its own events (``core.training.config``:
``TrainingStarted``, ``BatchProgress``, ``EpochResult``). When ``should_stop()`` returns True the
function raises :class:`Stopped` (training saves the model it has first and returns instead, when
it has trained at least one batch).

No torch and no Qt: the window, the command line and scripts all use these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` units of work are finished; ``item`` names the one just finished (a
    file name) or the phase (``"loading model"``), ``unit`` what is counted."""

    done: int
    total: int
    item: str = ""
    unit: str = "images"

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


class Stopped(Exception):  # noqa: N818 (it is a request, not an error)
    """Raised inside a long operation when its ``should_stop`` callback returns True."""


#: ``on_progress``: receives a :class:`Progress` (or a training event).
ProgressCallback = Callable[[Any], None]
#: ``should_stop``: polled between units of work.
StopCheck = Callable[[], bool]


def check_stop(should_stop: StopCheck | None, what: str) -> None:
    """Raise :class:`Stopped` ("<what> stopped") when ``should_stop`` says so."""
    if should_stop is not None and should_stop():
        raise Stopped(f"{what} stopped")


def report(on_progress: ProgressCallback | None, event: Any) -> None:
    """Send ``event`` to ``on_progress`` when there is one."""
    if on_progress is not None:
        on_progress(event)
