"""Shared test set-up: no display, isolated settings and data folders, small seeds; the
fixtures every folder uses (datasets from tests/factories.py, recorded message boxes, no QThread
left running)."""

from __future__ import annotations

import os
from pathlib import Path

# Qt must never need a display in tests; set before any Qt import.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("ROOFTOP_NO_CRASH_DIALOG", "1")

import pytest  # noqa: E402

from tests.factories import write_dataset  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Point the app's data/config folders at a temp dir so tests never touch the user's."""
    home = tmp_path_factory.mktemp("userdirs")
    monkeypatch.setenv("ROOFTOP_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("ROOFTOP_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "xdg-data"))
    yield


@pytest.fixture(autouse=True)
def _garbage_collected_in_the_gui_thread(request):
    """Qt tests run with the collector policy of the app (rooftop_gui.app.create_app): cyclic
    garbage is collected only in the GUI thread, never in a worker thread."""
    if "qapp" in request.fixturenames or "qtbot" in request.fixturenames:
        request.getfixturevalue("qapp")
        from rooftop_gui.app import collect_garbage_in_gui_thread

        collect_garbage_in_gui_thread()
    yield


@pytest.fixture(autouse=True)
def _no_thread_left_running(request):
    """Fail a Qt test if one of our QThreads is still running when it ends."""
    yield
    if "qapp" not in request.fixturenames and "qtbot" not in request.fixturenames:
        return
    from rooftop_gui import workers

    leftover = workers.live_threads()
    if leftover:
        workers.stop_all(10_000)
        pytest.fail(f"QThread(s) left running after the test: {leftover}")


# ----------------------------------------------------------------------------- data


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """A 6 train + 3 test dataset of 64 x 64 images with square roofs, made in milliseconds
    (train 00000-00005, test 00006-00008; :func:`tests.factories.write_dataset`)."""
    return write_dataset(tmp_path / "tiny")


@pytest.fixture
def make_dataset(tmp_path):
    """Factory: ``make_dataset(name, n_train=..., n_test=..., size=..., seed=...)`` writes
    ``tmp_path/name`` with :func:`tests.factories.write_dataset`."""

    def make(name: str = "ds", **kwargs) -> Path:
        return write_dataset(tmp_path / name, **kwargs)

    return make


# ----------------------------------------------------------------------------- dialogs


class MessageRecorder:
    """Replaces QMessageBox's static functions: records calls instead of opening a modal box."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def texts(self) -> list[str]:
        return [f"{title}: {text}" for _kind, title, text in self.calls]


@pytest.fixture
def messages(monkeypatch) -> MessageRecorder:
    """QMessageBox.critical / warning / information answer Ok and question answers Yes, without
    a modal box; the calls are recorded as ``(kind, title, text)``."""
    from PySide6.QtWidgets import QMessageBox

    recorder = MessageRecorder()

    def make(kind, answer):
        def fake(parent, title, text, *args, **kwargs):
            recorder.calls.append((kind, title, text))
            return answer

        return staticmethod(fake)

    monkeypatch.setattr(QMessageBox, "critical", make("critical", QMessageBox.StandardButton.Ok))
    monkeypatch.setattr(QMessageBox, "warning", make("warning", QMessageBox.StandardButton.Ok))
    monkeypatch.setattr(
        QMessageBox, "information", make("information", QMessageBox.StandardButton.Ok)
    )
    monkeypatch.setattr(QMessageBox, "question", make("question", QMessageBox.StandardButton.Yes))
    return recorder
