"""The main window: composes the panels (browser, canvas, layers, prediction, training).

The default layout fits a 1366 x 768 screen and uses a 1920 x 1080 one: the Dataset browser with
the Layers below it on the left, the canvas in the middle, and the Prediction and Training panels
as tabs (on top, where they are seen) on the right. Every panel sits in a scroll area, so none of
them forces a minimum height on the window: a panel taller than its dock scrolls.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFrame,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QStyle,
    QTabWidget,
    QWidget,
)

from core.errors import RooftopError
from rooftop_gui import settings as cfg
from rooftop_gui.annotation import AnnotationController
from rooftop_gui.browser import DatasetBrowser
from rooftop_gui.canvas import ImageCanvas
from rooftop_gui.dialogs import ShortcutsDialog, show_about
from rooftop_gui.errors import describe
from rooftop_gui.layers_panel import LayersPanel
from rooftop_gui.prediction_panel import PredictionPanel
from rooftop_gui.resources import icon
from rooftop_gui.training_panel import TrainingPanel
from rooftop_gui.window_opening import OpeningMixin
from rooftop_gui.workers import TaskRunner, default_runner

log = logging.getLogger(__name__)
APP_TITLE = "Rooftop Studio"
#: Version of the saved dock layout: a layout saved by another version is not restored (version
#: 2 moved the Layers panel to the left and put every panel in a scroll area).
LAYOUT_VERSION = 2
WORST_FIRST_KEY = "W"
#: The window's size on a first start, at most (and at most 92 % of the screen).
FIRST_SIZE = (1600, 1000)
#: A window less high than this starts with the training settings folded.
SHORT_WINDOW = 900


class MainWindow(OpeningMixin, QMainWindow):
    dataset_opened = Signal(object)  # Path
    sample_shown = Signal(object)  # Sample | None

    def __init__(self, settings: QSettings | None = None, runner: TaskRunner | None = None) -> None:
        super().__init__()
        self.setObjectName("mainWindow")
        self.settings = settings or cfg.make_settings()
        self.runner = runner or default_runner()
        self.dataset = None
        self.dataset_path: Path | None = None
        self.setWindowTitle(APP_TITLE)
        self.setWindowIcon(icon("app"))
        self.setDockNestingEnabled(True)

        self.canvas = ImageCanvas(self)
        self.setCentralWidget(self.canvas)
        self.browser = DatasetBrowser(self.runner, self)
        self.layers = LayersPanel(self.canvas, self.settings, self)
        self.prediction = PredictionPanel(
            self.canvas, self.browser, self.runner, self.settings, self
        )
        self.training = TrainingPanel(self.settings, self, runner=self.runner)
        self.training.model_activated.connect(lambda p: self.prediction.set_model(Path(p)))
        self.training.training_running.connect(self._training_running)
        self.browser_dock = self._dock(
            "Dataset", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea, scroll=False
        )  # its list scrolls by itself
        self.layers_dock = self._dock("Layers", self.layers, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.splitDockWidget(self.browser_dock, self.layers_dock, Qt.Orientation.Vertical)
        self.prediction_dock = self._dock(
            "Prediction", self.prediction, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.training_dock = self._dock(
            "Training", self.training, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.tabifyDockWidget(self.prediction_dock, self.training_dock)
        for area in (Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea):
            self.setTabPosition(area, QTabWidget.TabPosition.North)
        self.prediction_dock.raise_()
        for dock in self.docks():
            dock.dockLocationChanged.connect(self._update_dock_titles)
            dock.topLevelChanged.connect(self._update_dock_titles)
        self._update_dock_titles()

        self._make_status_bar()
        self._make_actions()
        self.annotation = AnnotationController(self.canvas, self.settings, self)
        from rooftop_gui.active_learning import ActiveLearning

        self.active = ActiveLearning(self)  # live preview, label next, jump to doubt (issue 16)
        self.annotation.toolbar.addSeparator()
        self.annotation.toolbar.addActions(self.active.actions_list())
        self._make_menus_and_toolbar()
        self._reverting_selection = False

        self.browser.current_changed.connect(self._current_changed)
        self.annotation.dirty_changed.connect(self.setWindowModified)
        self.annotation.label_saved.connect(self._label_saved)
        self.annotation.strokes_saved.connect(self._strokes_saved)
        self.active.status_message.connect(lambda m: self.statusBar().showMessage(m, 8000))
        self.annotation.status_message.connect(lambda m: self.statusBar().showMessage(m, 8000))
        self.annotation.tool_changed.connect(self._tool_changed)
        self.canvas.cursor_moved.connect(self._cursor_moved)
        self.canvas.layers_changed.connect(self._raster_info_changed)
        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f} %"))
        self.layers.state_changed.connect(self.prediction.display_changed)
        self.prediction.status_message.connect(lambda m: self.statusBar().showMessage(m, 8000))
        self.prediction.model_changed.connect(lambda _p: self._update_title())
        self.prediction.model_changed.connect(self._use_model_threshold)
        self._restore_layout()

    # ----------------------------------------------------------------- construction
    def _dock(
        self, title: str, widget: QWidget, area: Qt.DockWidgetArea, scroll: bool = True
    ) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        if scroll:
            # Taller than the dock: the panel scrolls (it never forces the window's height);
            # the area is as wide as the panel needs, so it does not scroll sideways.
            area_widget = QScrollArea()
            area_widget.setObjectName(f"scroll_{title.lower()}")
            area_widget.setWidgetResizable(True)
            area_widget.setFrameShape(QFrame.Shape.NoFrame)
            area_widget.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            area_widget.setWidget(widget)
            bar = area_widget.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
            area_widget.setMinimumWidth(widget.minimumSizeHint().width() + bar + 2)
            dock.setWidget(area_widget)
        else:
            dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(area, dock)
        return dock

    def docks(self) -> tuple[QDockWidget, ...]:
        return (self.browser_dock, self.layers_dock, self.prediction_dock, self.training_dock)

    def _update_dock_titles(self, *_args: Any) -> None:
        """A docked panel in a tab group shows its tab only: its title bar would repeat the tab's
        name (it comes back when the panel is floated or docked on its own)."""
        for dock in self.docks():
            tabbed = not dock.isFloating() and bool(self.tabifiedDockWidgets(dock))
            if tabbed and dock.titleBarWidget() is None:
                dock.setTitleBarWidget(QWidget(dock))
            elif not tabbed and dock.titleBarWidget() is not None:
                dock.setTitleBarWidget(None)

    def _make_status_bar(self) -> None:
        bar = self.statusBar()
        self.pixel_label, self.size_label, self.zoom_label = QLabel(), QLabel(), QLabel()
        self.training_label = QLabel()
        self.map_label = QLabel()  # an orthophoto's map coordinates and CRS under the pointer
        self.map_label.setObjectName("statusField")
        self.map_label.setVisible(False)
        self.map_label.ensurePolished()
        self.map_label.setMinimumWidth(
            self.map_label.fontMetrics().horizontalAdvance(
                "5 000 000.00  5 000 000.00   WGS 84 / UTM zone 33N"
            )
            + 16
        )
        bar.addPermanentWidget(self.map_label)
        for label, width in (
            (self.training_label, 0),
            (self.pixel_label, 300),
            (self.size_label, 110),
            (self.zoom_label, 60),
        ):
            label.setObjectName("statusField")
            if width:
                label.setMinimumWidth(width)
            bar.addPermanentWidget(label)
        # The pixel read-out changes on every mouse move; at a fixed size its setText repaints
        # the label alone instead of laying out the status bar and the window again.
        self.pixel_label.ensurePolished()
        widest = "x 00000  y 00000   RGB 000 000 000   p 0.00   roof"
        self.pixel_label.setFixedSize(
            max(300, self.pixel_label.fontMetrics().horizontalAdvance(widest) + 16),
            self.pixel_label.sizeHint().height(),
        )
        bar.showMessage("Ready", 3000)

    def _action(
        self,
        text: str,
        slot,
        keys: str | list[str] = "",
        icon_name: str = "",
        group: str = "General",
    ) -> QAction:
        action = QAction(icon(icon_name) if icon_name else icon("blank"), text, self)
        if keys:
            action.setShortcuts(
                [QKeySequence(k) for k in ([keys] if isinstance(keys, str) else keys)]
            )
            action.setToolTip(
                f"{text.replace('&', '').rstrip('…')} ({action.shortcut().toString()})"
            )
        action.setProperty("shortcutGroup", group)
        action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)
        return action

    def _make_actions(self) -> None:
        a = self._action
        self.open_action = a("&Open dataset folder…", self.choose_dataset, "Ctrl+O", "open", "File")
        self.open_images_action = a("Open &images…", self.choose_images, "Ctrl+I", "image", "File")
        self.open_image_action = a(
            "Make a dataset from a large &image…",
            self.choose_large_image,
            "Ctrl+Shift+O",
            "image",
            "File",
        )
        self.open_ortho_action = a(
            "Open &orthophoto…", self.choose_orthophoto, "Ctrl+Alt+O", "image", "File"
        )
        self.quit_action = a("&Quit", self.close, "Ctrl+Q", "", "File")
        self.next_action = a(
            "&Next image", self.browser.select_next, ["PgDown", "Ctrl+Right"], "next", "Browse"
        )
        self.previous_action = a(
            "&Previous image",
            self.browser.select_previous,
            ["PgUp", "Ctrl+Left"],
            "previous",
            "Browse",
        )
        # W, not Ctrl+W: that is "close" elsewhere, so it stays unbound here
        self.worst_action = a(
            "Sort by IoU, &worst first",
            self.browser.sort_worst_first,
            WORST_FIRST_KEY,
            "sort",
            "Browse",
        )
        self.fit_action = a("&Fit to window", self.canvas.fit, "F", "fit", "View")
        self.zoom100_action = a("Zoom &100 %", self.canvas.zoom_100, "1", "zoom-100", "View")
        self.zoom_in_action = a("Zoom &in", self.canvas.zoom_in, ["+", "="], "zoom-in", "View")
        self.zoom_out_action = a("Zoom &out", self.canvas.zoom_out, "-", "zoom-out", "View")
        self.shortcuts_action = a("&Keyboard shortcuts", self.show_shortcuts, "F1", "", "Help")
        self.about_action = a("&About Rooftop Studio", lambda: show_about(self), "", "", "Help")
        for act in self.layers.actions_list():
            act.setProperty("shortcutGroup", "Layers")
            self.addAction(act)
        for act in self.prediction.actions_list():
            act.setProperty("shortcutGroup", "Prediction")
            self.addAction(act)

    def _make_menus_and_toolbar(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addActions(
            [
                self.open_action,
                self.open_images_action,
                self.open_ortho_action,
                self.open_image_action,
            ]
        )
        self.recent_menu = file_menu.addMenu("&Recent datasets")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        file_menu.addAction(self.prediction.load_model_action)
        file_menu.addActions(
            [self.prediction.export_masks_action, self.prediction.export_composites_action]
        )
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        view = menu.addMenu("&View")
        view.addActions(
            [self.fit_action, self.zoom100_action, self.zoom_in_action, self.zoom_out_action]
        )
        view.addSeparator()
        view.addActions(self.layers.actions_list())
        view.addSeparator()
        view.addActions([self.next_action, self.previous_action, self.worst_action])
        view.addActions(self.active.actions_list())
        view.addSeparator()
        panels = view.addMenu("&Panels")
        for dock in self.docks():
            panels.addAction(dock.toggleViewAction())
        edit = menu.addMenu("&Edit")
        edit.addActions([self.annotation.undo_action, self.annotation.redo_action])
        edit.addSeparator()
        edit.addAction(self.annotation.save_action)
        edit.addSeparator()
        edit.addActions(self.annotation.actions_list())
        edit.addAction(self.annotation.accept_all_action)
        edit.addSeparator()
        edit.addActions([self.annotation.smaller_action, self.annotation.bigger_action])
        menu.insertMenu(view.menuAction(), edit)
        predict = menu.addMenu("&Prediction")
        predict.addActions(self.prediction.actions_list())
        help_menu = menu.addMenu("&Help")
        help_menu.addActions([self.shortcuts_action, self.about_action])

        bar = self.addToolBar("Main")
        bar.setObjectName("toolbar_main")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        bar.addActions([self.open_action, self.open_images_action])
        bar.addSeparator()
        bar.addActions([self.previous_action, self.next_action])
        bar.addSeparator()
        bar.addActions(
            [self.fit_action, self.zoom100_action, self.zoom_in_action, self.zoom_out_action]
        )
        bar.addSeparator()
        bar.addActions(self.layers.actions_list())
        bar.addSeparator()
        bar.addActions(
            [
                self.prediction.predict_image_action,
                self.prediction.predict_split_action,
                self.prediction.export_masks_action,
            ]
        )
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.annotation.toolbar)

    # ----------------------------------------------------------------- samples
    def _current_changed(self, sample: Any) -> None:
        """The browser selection moved: ask about unsaved edits first (Cancel moves it back)."""
        if self._reverting_selection:
            return
        editing = self.annotation.sample
        same = (
            sample is not None
            and editing is not None
            and (sample.split, sample.name) == (editing.split, editing.name)
            and self.annotation.label_path_of(sample) == self.annotation.label_path
        )
        if self.annotation.has_unsaved():
            if same or sample is None:
                # the same image again (the list was re-sorted), or the filter hid it: keep the
                # edits on the canvas; choosing another image asks
                return
            if not self.annotation.resolve_unsaved():
                # Cancel: back to the edited image once the list is done moving (the move may
                # be a row removal by the filter, still in progress now)
                QTimer.singleShot(0, lambda: self._revert_selection(editing))
                return
        self.show_sample(sample)

    def _revert_selection(self, editing: Any) -> None:
        """Select the image being edited again, without undoing what the user typed in the
        filter: when it hides that image, the list keeps no current row."""
        current = self.browser.current_sample()
        if editing is None or (
            current is not None and (current.split, current.name) == (editing.split, editing.name)
        ):
            return
        self._reverting_selection = True
        try:
            self.browser.select(editing.split, editing.name, reveal=False)
        finally:
            self._reverting_selection = False

    def _tool_changed(self, tool: str) -> None:
        if tool != "pan" and not self.layers.label_action.isChecked():
            self.layers.label_action.setChecked(True)  # never paint on a hidden label

    def _label_saved(self, sample: Any, path: Path) -> None:
        updated = self.browser.set_label_saved(sample, Path(path))
        if updated is not sample and self.annotation.sample is sample:
            self.annotation.sample = updated
        self.prediction.label_saved(updated, Path(path))  # its IoU was against the old label

    def _strokes_saved(self, sample: Any, path: Path) -> None:
        updated = self.browser.set_strokes_saved(sample, Path(path))
        if updated is not sample and self.annotation.sample is sample:
            self.annotation.sample = updated

    def show_sample(self, sample: Any) -> None:
        """Read the sample's image and label and show them (errors: dialog, app goes on)."""
        from core.io import read_image, read_mask

        self.sample_shown.emit(sample)
        if self.canvas.raster() is not None:  # back from an orthophoto to the dataset
            self.canvas.set_image(None)  # (closes the orthophoto)
            self.prediction.raster_changed()
        if sample is None:
            self.canvas.set_image(None)
            self.annotation.set_sample(None)
            self.prediction.set_current(None)
            self.size_label.setText("")
            return
        try:
            image = read_image(sample.image_path)
        except RooftopError as exc:
            self.canvas.set_image(None)
            self.annotation.set_sample(None)
            self.canvas.set_message(f"Cannot show this image:\n{exc}")
            self.prediction.set_current(None)
            self.size_label.setText("")
            self.statusBar().showMessage(str(exc), 15000)
            QMessageBox.warning(self, "Cannot read image", str(exc))
            return
        keep = self.canvas.image() is not None and self.canvas.image().shape == image.shape
        self.canvas.set_image(image, keep_view=keep)
        label_path = self.annotation.label_path_of(sample)
        mask, label_error = None, None
        if label_path.is_file():
            try:
                mask = read_mask(label_path)
                if mask.shape != image.shape[:2]:
                    raise ValueError(
                        f"{label_path}: the label is {mask.shape[1]} x "
                        f"{mask.shape[0]} but the image is {image.shape[1]} x "
                        f"{image.shape[0]}"
                    )
            except (RooftopError, ValueError) as exc:
                mask, label_error = None, describe(exc)
        # the name first: what the annotation says next (restored edits, a recovered copy that
        # does not fit) and a label that cannot be shown must not be hidden by it at once
        if label_error is not None:
            self.statusBar().showMessage(f"Label not shown: {label_error}", 15000)
        else:
            self.statusBar().showMessage(f"{sample.split}/{sample.name}", 4000)
        self.annotation.set_sample(sample, image.shape[:2], mask, label_error)
        self.prediction.set_current(sample)
        self.size_label.setText(f"{image.shape[1]} × {image.shape[0]}")
        self.setWindowFilePath(str(sample.image_path))

    def current_sample(self) -> Any:
        return self.browser.current_sample()

    # ----------------------------------------------------------------- status
    def _show_map_position(self, info: dict) -> None:
        """An orthophoto's map coordinates and CRS under the pointer (pixels without a CRS)."""
        if self.canvas.raster() is None:
            self.map_label.setVisible(False)
            return
        self.map_label.setVisible(True)
        if "map" in info:
            mx, my = info["map"]
            self.map_label.setText(
                f"{mx:,.2f}  {my:,.2f}   {info.get('crs') or 'no CRS'}".replace(",", " ")
            )
        else:
            self.map_label.setText("pixel coordinates (no CRS)")

    def _cursor_moved(self, x: int, y: int) -> None:
        if x < 0:
            self.pixel_label.setText("")
            if self.canvas.raster() is not None:
                self.map_label.setText("")
            return
        info = self.canvas.pixel_info(x, y)
        text = f"x {x}  y {y}"
        self._show_map_position(info)
        if "rgb" in info:
            text += "   RGB {} {} {}".format(*info["rgb"])
        if "probability" in info:
            text += f"   p {info['probability']:.2f}"
        if "label" in info:
            text += "   roof" if info["label"] else "   —"
        self.pixel_label.setText(text)

    def _training_running(self, running: bool) -> None:
        self.training_label.setText("● training" if running else "")
        self.training_label.setProperty("active", running)

    def _update_title(self) -> None:
        """``demo[*] — Rooftop Studio``: the dataset, Qt's modified marker, the app name once.

        The title ends with the app name, so Qt does not append its application display name
        again (it does on X11 when a title does not end with it)."""
        name = self.dataset_path.name if self.dataset_path else ""
        if self.dataset_path is not None and self.dataset_path == cfg.demo_dir() / "dataset":
            name = "demo"
        self.setWindowTitle(f"{name}[*] — {APP_TITLE}" if name else APP_TITLE)

    def show_shortcuts(self) -> None:
        ShortcutsDialog(self).exec()

    # ----------------------------------------------------------------- layout and close
    def _restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if isinstance(geometry, QByteArray | bytes):
            self.restoreGeometry(geometry)
        else:
            self.resize(*self.first_size())
        if not isinstance(state, QByteArray | bytes) or not self.restoreState(
            state, LAYOUT_VERSION
        ):
            self.default_layout()
        self._update_dock_titles()

    def first_size(self) -> tuple[int, int]:
        """The window's size on a first start: :data:`FIRST_SIZE`, within 92 % of the screen."""
        screen = QGuiApplication.primaryScreen()
        if screen is None:
            return FIRST_SIZE
        free = screen.availableGeometry()
        return (
            min(FIRST_SIZE[0], int(free.width() * 0.92)),
            min(FIRST_SIZE[1], int(free.height() * 0.92)),
        )

    def default_layout(self) -> None:
        """Dock sizes for the window's width: side columns of about a quarter each."""
        width, height = self.width(), self.height()
        left = max(300, min(420, width // 4))
        right = max(
            self.training_dock.minimumSizeHint().width(),
            self.prediction_dock.minimumSizeHint().width(),
            min(520, width // 3),
        )
        self.resizeDocks(
            [self.browser_dock, self.prediction_dock], [left, right], Qt.Orientation.Horizontal
        )
        layers = self.layers.sizeHint().height() + 30
        self.resizeDocks(
            [self.browser_dock, self.layers_dock],
            [max(200, height - layers), layers],
            Qt.Orientation.Vertical,
        )
        if height < SHORT_WINDOW and not self.settings.contains("training/folded"):
            # a short screen (1366 x 768): the training settings fold to one line at first, so
            # the curves, the log and the models fit under the Train button without scrolling
            self.training.form.set_folded(True)

    def save_layout(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState(LAYOUT_VERSION))
        self.settings.sync()

    def _use_model_threshold(self, path: Path | None) -> None:
        """A newly chosen model brings its own threshold (tuned on validation when trained)."""
        if path is None:
            return
        from core.checkpoint import read_metadata  # torch-free header read

        try:
            threshold = float(read_metadata(path).get("threshold", 0.5))
        except (RooftopError, TypeError, ValueError):
            return
        self.layers.set_threshold(threshold)
        self.statusBar().showMessage(f"Threshold {threshold:.2f}: the model's own", 5000)

    def training_is_running(self) -> bool:
        return self.training.is_training()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if not self.annotation.resolve_unsaved():  # Cancel: keep the edits, keep the window
            event.ignore()
            return
        if self.training_is_running():
            answer = QMessageBox.question(
                self,
                "Training is running",
                "A model is training. Stop it (the model so far is saved) and quit?",
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.save_layout()
        self.annotation.shutdown()
        self.browser.thumbnails.shutdown()
        self.prediction.shutdown()
        self.training.shutdown()
        if not self.runner.stop_all(30_000):
            log.warning("background tasks still running at exit")
        event.accept()
        super().closeEvent(event)
