"""Prediction and export: the active model, predict image/split in the background, metrics, export.

Torch is imported only inside worker functions (``core.checkpoint.load_checkpoint``,
``core.predict``), never at module level, so the window opens without it.

Probability maps are cached in a size-bounded LRU keyed by the dataset's root and the identity of
the model and image files (``core.result_cache``: no result crosses datasets), so switching images
shows known predictions at once, threshold/dilation changes re-score a predicted split from the
cache, a saved label re-scores its image (:meth:`PredictionPanel.label_saved`), and exports write
what is shown (``core.export.export_outputs``: ``core.postprocess.to_mask`` with the threshold and
dilation of the layer panel).

Buildings (issue 15): after a prediction is shown (and when the threshold or dilation changes),
the shown mask is vectorised in the background (``core.vector.vectorize``: cheap for a 512 px
patch); the Buildings box shows their number and total roof area (m² when georeferenced, px²
otherwise) and the canvas draws their outlines (toggle "Building outlines"). "Export
buildings…" writes a GeoPackage or GeoJSON by the chosen suffix: the current image, the split
(one file per image, ``NAME.gpkg``, in a folder: patches have no CRS, each has its own pixel grid,
so in one file their polygons would lie on top of each other, and the core's building files have
fixed fields), the visible area of an orthophoto, or the whole orthophoto from its written mask
(``core.vector.mask_files.vectorize_mask_file``, strip by strip). On an orthophoto the
Orthophoto box (:mod:`rooftop_gui.orthophoto_panel`) predicts the visible area or the whole of it.

The loops are the core's, run in a worker: a split is predicted by ``core.predict.predict_samples``
and scored by ``core.scores`` (``label_confusion``, ``score_all``, ``SplitScores``), an export is
``core.export.export_outputs``. The worker reports typed events (:class:`SplitImageDone`,
``rooftop_gui.export_actions.PredictionMade``, ``core.progress.Progress``) to the GUI thread. Re-scoring and the
metrics table are :mod:`rooftop_gui.split_scores`; the Buildings box :mod:`rooftop_gui.buildings_box`;
the export of masks and composites :mod:`rooftop_gui.export_actions`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.errors import RooftopError
from core.metrics import Confusion
from core.progress import Stopped
from core.result_cache import ProbabilityCache, ResultKey, result_key
from core.scores import SplitScores
from rooftop_gui.browser import DatasetBrowser, Key, sample_key
from rooftop_gui.buildings_box import BuildingsMixin
from rooftop_gui.canvas import ImageCanvas
from rooftop_gui.errors import describe, show_error
from rooftop_gui.export_actions import ExportMixin
from rooftop_gui.orthophoto_panel import OrthophotoPanel
from rooftop_gui.resources import icon
from rooftop_gui.split_scores import METRICS, SplitScoresMixin
from rooftop_gui.workers import Task, TaskRunner


class ModelHolder:
    """Loads a checkpoint once (in a worker thread) and hands it to the next worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: Any = None

    def get(self, path: Path) -> Any:
        from core.checkpoint import load_checkpoint  # torch: only when first needed

        with self._lock:
            if self._loaded is None or Path(self._loaded.path) != Path(path):
                self._loaded = load_checkpoint(path, device="cpu")
            return self._loaded

    def clear(self) -> None:
        with self._lock:
            self._loaded = None


@dataclass(frozen=True)
class SplitImageDone:
    """One image of a split prediction is done: ``done`` of ``total``; its probability map and
    confusion against its label (None without a label), or the error that kept it from being
    predicted or scored. ``key`` is the result key of the image as it was before it was read."""

    done: int
    total: int
    sample: Any
    key: ResultKey | None
    prob: np.ndarray | None
    confusion: Confusion | None
    error: str | None


class PredictionPanel(SplitScoresMixin, BuildingsMixin, ExportMixin, QWidget):
    """Active model, Predict image / split, a metrics table and export buttons."""

    model_changed = Signal(object)  # Path | None
    status_message = Signal(str)
    busy_changed = Signal(bool)
    prediction_shown = Signal(object)  # Key of the image whose prediction is now on the canvas

    def __init__(
        self,
        canvas: ImageCanvas,
        browser: DatasetBrowser,
        runner: TaskRunner,
        settings: QSettings,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("predictionPanel")
        self.canvas = canvas
        self.browser = browser
        self.runner = runner
        self.settings = settings
        self.cache = ProbabilityCache()
        self.models = ModelHolder()
        self.model_path: Path | None = None
        self.scores: SplitScores | None = None
        self._task: Task | None = None
        self._rescore_task: Task | None = None
        self._closed = False
        self._current: Any = None  # the Sample on the canvas
        self._dataset_root: Path | None = None  # the dataset the browser shows
        # labels saved per image (split, name): a score computed from a label read before a
        # save is stale, and a background job compares these counts to know it
        self._label_saves: dict[Key, int] = {}
        self._rescore_timer = QTimer(self)
        self._rescore_timer.setSingleShot(True)
        self._rescore_timer.setInterval(250)
        self._rescore_timer.timeout.connect(self.rescore)

        # actions (also in the main window's menus)
        self.load_model_action = QAction(icon("model"), "Load &model…", self)
        self.load_model_action.setShortcut(QKeySequence("Ctrl+M"))
        self.load_model_action.setToolTip("Use a model file (.safetensors) for prediction")
        self.predict_image_action = QAction(icon("predict"), "Predict current &image", self)
        self.predict_image_action.setShortcut(QKeySequence("Ctrl+Return"))
        self.predict_split_action = QAction(icon("predict-split"), "Predict &split", self)
        self.predict_split_action.setShortcut(QKeySequence("Ctrl+Shift+Return"))
        self.stop_action = QAction(icon("stop"), "Stop prediction", self)
        self.stop_action.setShortcut(QKeySequence("Ctrl+."))
        self.export_masks_action = QAction(icon("export"), "Export &masks…", self)
        self.export_masks_action.setShortcut(QKeySequence("Ctrl+E"))
        self.export_composites_action = QAction(icon("composite"), "Export &composites…", self)
        self.export_composites_action.setShortcut(QKeySequence("Ctrl+Shift+E"))
        for act in self.actions_list():
            act.setStatusTip(act.text().replace("&", "").rstrip("…"))
            if act.shortcut().toString():
                act.setToolTip(f"{act.statusTip()} ({act.shortcut().toString()})")

        # widgets
        self.model_label = QLabel("No model: train one or load a model file")
        self.model_label.setWordWrap(True)
        self.model_label.setObjectName("modelLabel")
        load = QToolButton()
        load.setDefaultAction(self.load_model_action)
        load.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.split_box = QComboBox()
        self.split_box.addItem("Test split", "test")
        self.split_box.addItem("Train split", "train")
        self.predict_image_button = QPushButton(icon("predict"), "Predict image")
        self.predict_split_button = QPushButton(icon("predict-split"), "Predict split")
        self.stop_button = QPushButton(icon("stop"), "Stop")
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setVisible(False)
        self.metrics = QTableWidget(len(METRICS), 1)
        self.metrics.setHorizontalHeaderLabels(["not predicted yet"])
        self.metrics.setVerticalHeaderLabels([name for _k, name in METRICS])
        self.metrics.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.metrics.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.metrics.verticalHeader().setDefaultSectionSize(24)
        self.metrics.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.metrics.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.metrics.setFixedHeight(24 * len(METRICS) + 42)
        self.metrics.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.metrics.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.metrics_note = QLabel("Predict a split to see its metrics.")
        self.metrics_note.setObjectName("muted")
        self.metrics_note.setWordWrap(True)
        self.scope_box = QComboBox()
        self.scope_box.addItem("Current image", "image")
        self.scope_box.addItem("Whole split", "split")
        self.export_masks_button = QPushButton(icon("export"), "Masks…")
        self.export_composites_button = QPushButton(icon("composite"), "Composites…")
        self.orthophoto = OrthophotoPanel(canvas, self, runner, settings, self)
        self.orthophoto.setVisible(False)
        buildings_box = self._make_buildings_box(canvas, settings)
        model_box = QGroupBox("Model")
        mrow = QHBoxLayout(model_box)
        mrow.addWidget(self.model_label, 1)
        mrow.addWidget(load)
        predict_box = QGroupBox("Predict")
        grid = QGridLayout(predict_box)
        grid.addWidget(self.predict_image_button, 0, 0, 1, 2)
        grid.addWidget(self.split_box, 1, 0)
        grid.addWidget(self.predict_split_button, 1, 1)
        grid.addWidget(self.progress, 2, 0)
        grid.addWidget(self.stop_button, 2, 1)
        metrics_box = QGroupBox("Metrics (summed over the split)")
        mlay = QVBoxLayout(metrics_box)
        mlay.addWidget(self.metrics)
        mlay.addWidget(self.metrics_note)
        export_box = QGroupBox("Export (threshold and dilation as shown)")
        elay = QGridLayout(export_box)
        elay.addWidget(self.scope_box, 0, 0, 1, 2)
        elay.addWidget(self.export_masks_button, 1, 0)
        elay.addWidget(self.export_composites_button, 1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        for box in (
            model_box,
            self.orthophoto,
            predict_box,
            metrics_box,
            export_box,
            buildings_box,
        ):
            layout.addWidget(box)
        layout.addStretch(1)
        self.orthophoto.status_message.connect(self.status_message)
        self.orthophoto.window_predicted.connect(self._schedule_buildings)
        self.export_buildings_button.clicked.connect(self.choose_buildings_export)

        self.load_model_action.triggered.connect(self.choose_model)
        self.predict_image_action.triggered.connect(self.predict_current)
        self.predict_split_action.triggered.connect(lambda: self.predict_split())
        self.stop_action.triggered.connect(self.stop)
        self.export_masks_action.triggered.connect(lambda: self.choose_export("masks"))
        self.export_composites_action.triggered.connect(lambda: self.choose_export("composites"))
        self.predict_image_button.clicked.connect(self.predict_current)
        self.predict_split_button.clicked.connect(lambda: self.predict_split())
        self.stop_button.clicked.connect(self.stop)
        self.export_masks_button.clicked.connect(lambda: self.choose_export("masks"))
        self.export_composites_button.clicked.connect(lambda: self.choose_export("composites"))
        self.split_box.setCurrentIndex(
            max(0, self.split_box.findData(settings.value("prediction/split", "test")))
        )
        self.split_box.currentIndexChanged.connect(
            lambda _i: settings.setValue("prediction/split", self.split_box.currentData())
        )
        self._update_enabled()

    def actions_list(self) -> list[QAction]:
        return [
            self.load_model_action,
            self.predict_image_action,
            self.predict_split_action,
            self.stop_action,
            self.export_masks_action,
            self.export_composites_action,
        ]

    # ----------------------------------------------------------------- model
    def choose_model(self) -> None:
        start = str(self.model_path.parent) if self.model_path else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(
            self, "Load model", start, "Rooftop models (*.safetensors);;All files (*)"
        )
        if path:
            self.set_model(Path(path))

    def set_model(self, path: Path | None) -> bool:
        """Make ``path`` the active model (metadata checked without torch)."""
        if path is not None:
            from core.checkpoint import read_metadata

            try:
                meta = read_metadata(path)
            except RooftopError as exc:
                show_error(self, "Cannot use this model", exc)
                return False
            arch = meta.get("arch", "?")
            metrics = meta.get("metrics") or {}
            val_iou = metrics.get("val_iou") if isinstance(metrics, dict) else None
            text = f"<b>{Path(path).name}</b><br>{arch}"
            if isinstance(val_iou, int | float):
                text += f" · val IoU {val_iou:.3f}"
            self.model_label.setText(text)
            self.model_label.setToolTip(str(path))
        else:
            self.model_label.setText("No model: train one or load a model file")
        if path != self.model_path:
            self.model_path = Path(path) if path else None
            self.scores = None
            self.browser.clear_iou()
            self._show_metrics()
            self.show_cached(self._current)
            self.model_changed.emit(self.model_path)
        self._update_enabled()
        return True

    # ----------------------------------------------------------------- dataset
    def set_dataset(self, root: Path | None) -> None:
        """Another dataset is open: the split's scores and the IoU column were another dataset's
        (cached probability maps stay: their keys name their own dataset and files)."""
        self._dataset_root = Path(root) if root is not None else None
        self.scores = None
        self._label_saves.clear()
        self._current = None
        self.browser.clear_iou()
        self._show_metrics()
        self._update_enabled()

    # ----------------------------------------------------------------- current image
    def set_current(self, sample: Any) -> None:
        """The main window tells us which sample the canvas shows now."""
        self._current = sample
        self.show_cached(sample)
        self._update_enabled()

    def _key(self, sample: Any, model_path: Path | None = None) -> ResultKey | None:
        """Whose result ``sample``'s would be now: this dataset, the model (the active one unless
        given) and the image file as they are on disk."""
        return result_key(self._dataset_root, model_path or self.model_path, sample.image_path)

    def cached_probability(self, sample: Any) -> np.ndarray | None:
        """The active model's probability map of ``sample`` as its files are now, if cached."""
        return self.cache.get(self._key(sample)) if self.model_path else None

    def _is_current(self, key: ResultKey | None) -> bool:
        """Whether the canvas shows the image (of this dataset, by the active model) of ``key``."""
        return key is not None and self._current is not None and self._key(self._current) == key

    def show_cached(self, sample: Any) -> None:
        if sample is None or self.canvas.image() is None:
            return
        prob = self.cached_probability(sample)
        if prob is not None and prob.shape != self.canvas.image().shape[:2]:
            prob = None
        self.canvas.set_probability(prob)
        self._schedule_buildings()
        if prob is not None:
            self.prediction_shown.emit(sample_key(sample))

    def set_probability(self, key: ResultKey | None, prob: np.ndarray) -> None:
        """Store the probability map of ``key`` (and show it if its image is on the canvas)."""
        self.cache.put(key, prob)
        if self._is_current(key):
            self.show_cached(self._current)

    def predict_current(self) -> None:
        sample, image = self._current, self.canvas.image()
        if sample is None or image is None:
            self.status_message.emit("Select an image first.")
            return
        if not self._ready_to_run():
            return
        model_path, holder = self.model_path, self.models
        key = self._key(sample)
        image = image.copy()

        def work(on_progress, should_stop):
            from core.predict import image_resolution, predict_probabilities

            loaded = holder.get(model_path)
            return predict_probabilities(
                loaded.model,
                image,
                should_stop=should_stop,
                ground_resolution=image_resolution(sample, None, loaded.model),
            )

        def done(prob):
            self.cache.put(key, prob)
            label = self.canvas.label_array()
            if self._is_current(key):
                self.canvas.set_probability(prob)
                self._schedule_buildings()
                self.prediction_shown.emit(sample_key(sample))
                if label is not None:
                    conf = Confusion.from_masks(self.canvas.displayed_mask(), label)
                    self.browser.set_iou({sample_key(sample): conf.iou})
                    self.status_message.emit(f"Predicted {sample.name}: IoU {conf.iou:.3f}")
                else:
                    self.status_message.emit(f"Predicted {sample.name}")

        self._start(work, done, f"Predicting {sample.name}…", busy=True)

    # ----------------------------------------------------------------- split
    def predict_split(self, split: str | None = None) -> None:
        split = split or self.split_box.currentData()
        samples = self.browser.samples(split)
        if not samples:
            self.status_message.emit(f"The {split} split has no images.")
            return
        if not self._ready_to_run():
            return
        model_path, holder = self.model_path, self.models
        threshold, dilation = self.canvas.state.threshold, self.canvas.state.dilation
        scores = self.scores = SplitScores(
            split, model_path, self._dataset_root, threshold, dilation
        )
        self.browser.clear_iou()
        self._show_metrics()
        saves_at_start = dict(self._label_saves)
        keys = [self._key(s) for s in samples]  # the files as they are before they are read

        def work(on_progress, should_stop):
            from core import scores as core_scores
            from core.predict import predict_samples

            loaded = holder.get(model_path)  # the model is loaded once for the whole split
            predictions = predict_samples(loaded.model, samples, should_stop=should_stop)
            try:
                for i, (result, key) in enumerate(zip(predictions, keys, strict=True)):
                    prob, conf, error = result.prob, None, result.error
                    if prob is not None:
                        try:
                            conf = core_scores.label_confusion(
                                prob, result.sample.label_path, threshold, dilation
                            )
                        except RooftopError as exc:  # a label that cannot be read
                            prob, error = None, exc
                    # a corrupt image or label is reported and the split goes on
                    on_progress(
                        SplitImageDone(
                            i + 1,
                            len(samples),
                            result.sample,
                            key,
                            prob,
                            conf,
                            None if error is None else str(error),
                        )
                    )
            except Stopped:
                return "stopped"
            return "done"

        def progress(event: SplitImageDone):
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)
            self.progress.setFormat(f"{event.done} / {event.total}")
            if event.prob is not None:
                self.set_probability(event.key, event.prob)
            if self.scores is not scores:  # another dataset or model since: not its scores
                return
            if event.error:
                scores.errors.append(event.error)
            conf, key = event.confusion, sample_key(event.sample)
            if event.prob is not None and self._label_saves.get(key) != saves_at_start.get(key):
                # its label was saved while the split ran: maybe after the worker read it
                conf = self._score_saved_label(key, threshold, dilation)
            if conf is not None:
                scores.per_image[key] = conf
                self.browser.set_iou({key: conf.iou})
                self._show_metrics()

        def done(outcome):
            if self.scores is not scores:
                self.status_message.emit(
                    f"The {split} split of the previous dataset or model was "
                    "predicted; its scores are not shown here."
                )
                return
            self._show_metrics()
            scored = len(scores.per_image)
            message = f"Predicted the {split} split: {scored} image(s) scored"
            if outcome == "stopped":
                message = f"Stopped: {message}"
            if scores.errors:
                message += f"; {len(scores.errors)} could not be read"
                show_error(
                    self,
                    "Some images could not be predicted",
                    "\n".join(scores.errors[:10]) + ("\n…" if len(scores.errors) > 10 else ""),
                )
            self.status_message.emit(message)

        self._start(work, done, f"Predicting the {split} split…", busy=True, on_progress=progress)

    # ----------------------------------------------------------------- re-scoring
    # ----------------------------------------------------------------- export
    # ----------------------------------------------------------------- plumbing
    def _ready_to_run(self) -> bool:
        if self.model_path is None:
            show_error(
                self,
                "No model",
                "Train a model in the Training panel, pick one from its "
                "models list, or load a model file (Ctrl+M).",
            )
            return False
        if self._task is not None:
            self.status_message.emit("A prediction is already running.")
            return False
        return True

    def _start(self, work, done, message: str, busy: bool, on_progress=None) -> Task:
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.progress.setFormat("")
        self.status_message.emit(message)

        def failed(exc):
            if isinstance(exc, Stopped):
                self.status_message.emit("Stopped.")
                return
            show_error(self, "Prediction failed", exc)
            self.status_message.emit(describe(exc))

        def finished():
            self._task = None
            self.progress.setVisible(False)
            self._update_enabled()
            self.busy_changed.emit(False)

        def progress(event):
            if on_progress is not None:
                on_progress(event)

        self._task = self.runner.start(
            work,
            on_progress=progress,
            on_finished=done,
            on_failed=failed,
            on_done=finished,
            name="prediction",
        )
        self._update_enabled()
        self.busy_changed.emit(True)
        return self._task

    def shutdown(self) -> None:
        """The window is closing: no re-scoring starts any more (its debounce timer could fire
        after the window has gone, and its callbacks touch the window's widgets), and the running
        prediction or re-scoring is asked to stop."""
        self._closed = True
        self._rescore_timer.stop()
        self._buildings_timer.stop()
        self.orthophoto.shutdown()
        for task in (self._task, self._rescore_task, self._buildings_task):
            if task is not None:
                task.request_stop()

    def stop(self) -> None:
        if self._task is not None:
            self._task.request_stop()
            self.status_message.emit("Stopping…")

    def is_busy(self) -> bool:
        return self._task is not None

    def wait(self, timeout_ms: int = 60_000) -> bool:
        """Wait for the running prediction/export (tests)."""
        task = self._task
        return True if task is None else task.wait(timeout_ms)

    def _update_enabled(self) -> None:
        busy = self._task is not None or self.orthophoto.is_busy()
        has_model = self.model_path is not None
        has_image = self._current is not None and self.canvas.image() is not None
        for widget in (self.predict_image_button, self.predict_image_action):
            widget.setEnabled(has_model and has_image and not busy)
        for widget in (self.predict_split_button, self.predict_split_action):
            widget.setEnabled(has_model and not busy and self.browser.dataset is not None)
        self.export_buildings_button.setEnabled(not busy)
        self.orthophoto.update_enabled()
        for widget in (self.stop_button, self.stop_action):
            widget.setEnabled(busy)
        for widget in (
            self.export_masks_button,
            self.export_masks_action,
            self.export_composites_button,
            self.export_composites_action,
        ):
            widget.setEnabled(not busy)
