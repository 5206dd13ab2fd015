"""Shared test set-up: no display, isolated settings and data folders, small seeds."""

from __future__ import annotations

import os

# Qt must never need a display in tests; set before any Qt import.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("ROOFTOP_NO_CRASH_DIALOG", "1")

import pytest  # noqa: E402


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
