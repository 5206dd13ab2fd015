"""Entry point: ``rooftop-studio [DATASET]`` / ``python main.py [DATASET]``.

Imports nothing heavy: torch is loaded by the first worker that needs it, after the window shows.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from rooftop_gui import platform_check
from rooftop_gui.errors import install_exception_hooks
from rooftop_gui.resources import icon, stylesheet
from rooftop_gui.settings import APP_NAME, ORG_NAME


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="rooftop-studio",
        description="Rooftop Studio: browse a roof dataset, train a model, see and export its "
        "predictions. With no DATASET it opens the last one, or the demo.",
    )
    parser.add_argument(
        "dataset",
        nargs="?",
        type=Path,
        help="dataset folder (train/ and test/, each with data/ and label/), or "
        "an orthophoto (a GeoTIFF, COG, JPEG 2000 or VRT of any size: shown "
        "by tiles), or an image file",
    )
    return parser.parse_known_args(argv)


_GUI_THREAD_GC = None


def collect_garbage_in_gui_thread() -> None:
    """Run Python's cyclic garbage collector only in the GUI thread, on a timer.

    Left automatic, the collector runs in whichever thread happens to allocate past its
    threshold, such as the training thread. If it then frees a Qt object there, ``~QObject`` takes
    Qt's connection lock and waits for the GIL, while the GUI thread holds the GIL and waits for
    that lock: a deadlock, seen in the GUI tests. pyqtgraph's ``GarbageCollector`` (already a
    dependency, for the plot) turns automatic collection off and collects every second from a
    timer of the thread that calls this. Call it once, from the GUI thread, after the
    QApplication exists.
    """
    global _GUI_THREAD_GC
    if _GUI_THREAD_GC is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _GUI_THREAD_GC = GarbageCollector(interval=1.0)


def create_app(qt_args: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(
        [sys.argv[0] if sys.argv else "rooftop-studio", *(qt_args or [])]
    )
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(ORG_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setDesktopFileName("rooftop-studio")
    app.setWindowIcon(icon("app"))
    app.setStyle("Fusion")
    app.setStyleSheet(stylesheet())
    install_exception_hooks()
    collect_garbage_in_gui_thread()
    return app


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # GDAL reports every refused file at INFO through rasterio; the window shows it already
    logging.getLogger("rasterio").setLevel(logging.WARNING)
    args, qt_args = parse_args(sys.argv[1:] if argv is None else list(argv))
    if QApplication.instance() is None:  # Qt would abort on a missing library or display
        problem = platform_check.startup_problem(qt_args=qt_args)
        if problem:
            print(problem, file=sys.stderr)
            return 2
    QApplication.setHighDpiScaleFactorRoundingPolicy(
        Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
    )
    app = create_app(qt_args)
    from rooftop_gui.main_window import MainWindow

    window = MainWindow()
    window.show()
    window.open_initial(args.dataset)
    return app.exec()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
