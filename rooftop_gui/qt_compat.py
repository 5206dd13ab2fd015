"""Work-arounds for bugs of the installed Qt binding, applied once when rooftop_gui is imported.

PySide6 6.12.0 on Python < 3.12: ``SignalInstance.emit()`` returns ``True`` without a new
reference, so every ``signal.emit(...)`` made from Python (ours, pyqtgraph's, pytest-qt's) drops
one reference to ``True``; after enough emits (a long training run reports thousands of progress
events) the interpreter aborts with "Fatal Python error: bool_dealloc". Python 3.12+ makes
``True`` immortal, so the bug is harmless there.

The guard below probes one emit and, only if the count drops, gives ``True`` and ``False`` a very
large reference count (2**40, as immortal objects have in 3.12+), so they can never be freed.
"""

from __future__ import annotations

import ctypes
import sys

_applied = False


def emit_leaks_true_reference() -> bool:
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(8):
        probe.ping.emit()
    return sys.getrefcount(True) < before


def guard_bool_refcounts() -> bool:
    """Apply the guard if this binding needs it; returns True when it was applied."""
    global _applied
    if _applied or sys.version_info >= (3, 12):
        return _applied
    if not emit_leaks_true_reference():
        return False
    for value in (True, False):
        ctypes.c_ssize_t.from_address(id(value)).value += 1 << 40
    _applied = True
    return True
