"""Showing errors to the user: dialogs naming the file and the cause, and the crash hook."""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
from types import TracebackType

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from core.errors import RooftopError

log = logging.getLogger("rooftop_gui")


def describe(exc: BaseException) -> str:
    """One user-facing sentence: a RooftopError's own message, else the type and message."""
    if isinstance(exc, RooftopError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "Not enough memory for this operation."
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def format_details(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def show_error(parent: QWidget | None, title: str, exc: BaseException | str) -> str:
    """A modal error dialog; returns the text shown (for the status bar)."""
    text = exc if isinstance(exc, str) else describe(exc)
    if not isinstance(exc, str | RooftopError):
        log.error("%s: %s", title, format_details(exc))
    QMessageBox.critical(parent, title, text)
    return text


class _CrashRelay(QObject):
    """Brings exceptions from any thread to the GUI thread, where the dialog is shown."""

    crashed = Signal(str, str)


_relay: _CrashRelay | None = None
_showing = False


def _show_crash(message: str, details: str) -> None:
    global _showing
    if _showing:  # an error while a crash dialog is open: log only, never stack dialogs
        return
    _showing = True
    try:
        box = QMessageBox(
            QMessageBox.Icon.Critical,
            "Unexpected error",
            f"Something went wrong, but Rooftop Studio is still running.\n\n{message}",
            QMessageBox.StandardButton.Ok,
            QApplication.activeWindow(),
        )
        box.setDetailedText(details)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.exec()
    finally:
        _showing = False


def handle_exception(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    """sys.excepthook: log, then show a dialog (unless ROOFTOP_NO_CRASH_DIALOG=1)."""
    if issubclass(exc_type, KeyboardInterrupt):
        QApplication.quit()
        return
    details = "".join(traceback.format_exception(exc_type, exc, tb))
    log.error("Uncaught exception:\n%s", details)
    sys.stderr.write(details)
    if os.environ.get("ROOFTOP_NO_CRASH_DIALOG") == "1" or QApplication.instance() is None:
        return
    message = describe(exc)
    if _relay is not None and QThread.currentThread() is not QApplication.instance().thread():
        _relay.crashed.emit(message, details)  # queued to the GUI thread
    else:
        QTimer.singleShot(0, lambda: _show_crash(message, details))


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None:
        handle_exception(args.exc_type, args.exc_value, args.exc_traceback)


def install_exception_hooks() -> None:
    """Route uncaught exceptions (GUI thread and Python threads) to :func:`handle_exception`."""
    global _relay
    if _relay is None:
        _relay = _CrashRelay()
        _relay.crashed.connect(_show_crash, Qt.ConnectionType.QueuedConnection)
    sys.excepthook = handle_exception
    threading.excepthook = _thread_hook
