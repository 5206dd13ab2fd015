"""Start-up: the launcher, the window title, no torch before it is needed, the crash hook."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox

from core.progress import Stopped
from rooftop_gui import app as app_module
from rooftop_gui import errors, workers

ROOT = Path(__file__).resolve().parents[2]


def test_window_opens_without_importing_torch(tiny_dataset, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from rooftop_gui.app import create_app
        from rooftop_gui.main_window import MainWindow
        app = create_app()
        window = MainWindow()
        window.show()
        window.open_initial({str(tiny_dataset)!r})
        app.processEvents()
        assert window.windowTitle().replace("[*]", "") == "tiny — Rooftop Studio", window.windowTitle()
        assert window.canvas.image() is not None
        heavy = [m for m in ("torch", "core.training.loop", "core.predict", "core.evaluate") if m in sys.modules]
        window.close()
        print("HEAVY", heavy)
    """)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout


def test_main_opens_the_dataset_given(qtbot, tiny_dataset, monkeypatch):
    monkeypatch.setattr(QApplication, "exec", lambda self: 0)
    before = set(QApplication.topLevelWidgets())  # windows of earlier tests may not be gone yet
    assert app_module.main([str(tiny_dataset)]) == 0
    (window,) = [
        w
        for w in QApplication.topLevelWidgets()
        if w.objectName() == "mainWindow" and w not in before
    ]
    qtbot.addWidget(window)
    assert window.windowTitle().replace("[*]", "") == "tiny — Rooftop Studio"
    assert QApplication.applicationName() == "Rooftop Studio"
    window.close()
    # closing asks the thumbnail thread to stop; it ends after the image it is decoding
    qtbot.waitUntil(lambda: not workers.live_threads(), timeout=10_000)


def test_main_py_is_a_thin_launcher():
    text = (ROOT / "main.py").read_text()
    assert "from rooftop_gui.app import main" in text


def test_crash_hook_logs_without_dialog_in_tests(monkeypatch, capsys, qapp):
    shown = []
    monkeypatch.setattr(QMessageBox, "exec", lambda self: shown.append(self.text()))
    try:
        raise RuntimeError("kaboom")
    except RuntimeError as exc:
        errors.handle_exception(type(exc), exc, exc.__traceback__)
    assert "kaboom" in capsys.readouterr().err
    assert not shown


def test_crash_hook_shows_a_dialog(monkeypatch, qtbot):
    monkeypatch.setenv("ROOFTOP_NO_CRASH_DIALOG", "0")
    shown = []
    monkeypatch.setattr(
        QMessageBox, "exec", lambda self: shown.append((self.text(), self.detailedText()))
    )
    errors.install_exception_hooks()
    try:
        raise ValueError("bad value in a slot")
    except ValueError as exc:
        errors.handle_exception(type(exc), exc, exc.__traceback__)
    qtbot.waitUntil(lambda: bool(shown))
    assert "bad value in a slot" in shown[0][0]
    assert "Traceback" in shown[0][1]


def test_first_start_makes_the_demo(qtbot, monkeypatch):
    pytest.importorskip("core.synthetic")
    generate = pytest.importorskip("core.generate")
    from rooftop_gui.main_window import MainWindow
    from rooftop_gui.settings import demo_dir, make_settings

    real = generate.generate_dataset

    def small(image, labels, out, config=None, **kwargs):
        config = generate.GenerateConfig(
            patches=(generate.PatchSpec(64, 0.5),), resize=None, rotations=(0,)
        )
        return real(image, labels, out, config, **kwargs)

    monkeypatch.setattr(generate, "generate_dataset", small)
    window = MainWindow(settings=make_settings())
    qtbot.addWidget(window)
    window.show()
    window.make_demo(size=256)
    qtbot.waitUntil(lambda: window.dataset is not None, timeout=30_000)
    assert window.dataset_path == demo_dir() / "dataset"
    assert window.windowTitle().replace("[*]", "") == "demo — Rooftop Studio"
    assert window.browser.model.rowCount() > 0
    window.close()


def test_closing_the_window_while_the_demo_is_made_stops_it_without_an_error(
    qtbot, monkeypatch, messages
):
    import threading

    generate = pytest.importorskip("core.generate")
    from rooftop_gui.main_window import MainWindow
    from rooftop_gui.settings import make_settings

    started = threading.Event()

    def slow(image, labels, out, config=None, on_progress=None, should_stop=None):
        started.set()
        while not should_stop():
            threading.Event().wait(0.01)
        raise Stopped("dataset generation stopped; nothing was written")

    monkeypatch.setattr(generate, "generate_dataset", slow)
    window = MainWindow(settings=make_settings())
    qtbot.addWidget(window)
    window.show()
    window.make_demo(size=128)
    qtbot.waitUntil(started.is_set, timeout=30_000)
    window.close()
    assert not window.isVisible()
    assert messages.calls == []


def test_cyclic_garbage_is_collected_only_in_the_gui_thread(qtbot):
    """A worker thread that allocates never runs the collector (it could free a Qt object there
    and deadlock); the GUI thread's timer collects the cycles instead."""
    import gc
    import threading

    assert not gc.isenabled()
    freed_in = []

    class Cycle:
        def __init__(self):
            self.me = self

        def __del__(self):
            freed_in.append(threading.get_ident())

    def worker():
        for _ in range(3):
            Cycle()
        junk = [[] for _ in range(50_000)]  # far past the collector's threshold
        del junk

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert freed_in == []  # nothing collected in the worker
    # the timer collects once enough new objects are alive (the collector's own threshold)
    alive = [[] for _ in range(5 * gc.get_threshold()[0])]
    qtbot.waitUntil(lambda: len(freed_in) == 3, timeout=5000)
    del alive
    assert set(freed_in) == {threading.get_ident()}
