"""Training panel: hyper-parameters, Start/Stop, progress with ETA, live curves, a log, the models.

Training runs ``core.training.loop.train`` in a QThread through :class:`rooftop_gui.workers.TaskRunner`,
so the user keeps browsing, zooming and painting meanwhile. Neither torch nor ``core.training.loop`` nor
``core.models`` is imported at module level (the window must appear before torch loads): the
worker function :func:`run_training` imports them, and the architecture names and help texts are
repeated here (a test checks they match ``core.models``).

Stop asks the worker to stop; ``train`` checks between batches, finishes (validates) the partial
epoch and saves the model it has, so a stopped run still yields ``model_vN``.

The models list reads checkpoint headers with :func:`core.checkpoint.list_models` (torch-free).
Picking a model (double click or "Use for prediction") emits :attr:`TrainingPanel.model_activated`;
so does the end of a training run, with the model it saved.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QDoubleValidator, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.checkpoint import ModelInfo, list_models, read_metadata, remove_stale_model_temp_files
from core.errors import RooftopError
from core.progress import Stopped
from rooftop_gui import settings as cfg
from rooftop_gui.errors import describe, format_details
from rooftop_gui.plot import TrainingPlot
from rooftop_gui.resources import icon
from rooftop_gui.workers import Task, TaskRunner, default_runner

log = logging.getLogger(__name__)

#: (name, tooltip) of the architectures of ``core.models`` (repeated: importing it loads torch;
#: a test checks the names).
ARCHITECTURES = (
    ("liteunet", "U-Net working at half resolution with a full-resolution refinement (about 2.0 M "
                 "weights); the default: best IoU within minutes on a CPU"),
    ("unet", "U-Net with batch norm and skip connections (about 2.0 M weights); slower on a CPU"),
    ("resunet", "U-Net with a residual encoder (about 2.0 M weights)"),
    ("prescribed", "the original exercise's PixelClassifier, exactly (22.6 k weights; weak)"),
)
#: ``core.training.config.LOSSES`` (repeated for the same reason).
LOSSES = (
    ("bce+dice", "binary cross-entropy plus soft Dice: robust when roofs are a small fraction"),
    ("bce", "binary cross-entropy per pixel (the original exercise's loss)"),
    ("dice", "soft Dice over the batch: optimises overlap directly"),
)
DEVICES = (
    ("auto", "a CUDA GPU when PyTorch sees one, else the CPU"),
    ("cpu", "the CPU (one core is left free for the window)"),
    ("cuda", "the first CUDA GPU (an error if there is none)"),
)
PRECISIONS = (
    ("auto", "bfloat16 mixed precision where the GPU or CPU computes it natively "
             "(about 1.6x faster on such a CPU), else float32"),
    ("fp32", "float32 throughout (bit-for-bit reproducible)"),
    ("bf16", "bfloat16 mixed precision everywhere (slow on CPUs without native bfloat16)"),
)
LR_PRESETS = ("1e-2", "3e-3", "2e-3", "1e-3", "3e-4", "1e-4", "3e-5", "1e-5")

#: GUI defaults, sized for a laptop CPU.
DEFAULTS: dict[str, Any] = {
    "arch": "liteunet", "epochs": 20, "batch_size": 8, "lr": 2e-3, "loss": "bce+dice",
    "crop_size": 256, "samples_per_epoch": 256, "device": "auto", "precision": "auto",
    "time_limit": False, "max_minutes": 30.0,
}
SETTINGS_PREFIX = "training/"
PROGRESS_INTERVAL_MS = 50    # the progress bar is repainted at most 20 times a second
WORKER_EMIT_INTERVAL = 0.03  # and the worker sends at most ~33 batch events a second
LOG_MAX_LINES = 2000

COLUMNS = ("Model", "Date", "Arch", "Val IoU", "Epochs")
PATH_ROLE = Qt.ItemDataRole.UserRole


# --------------------------------------------------------------------------------------------
# Dialog helpers (module level, so that tests can replace them)
# --------------------------------------------------------------------------------------------

def show_error(parent: QWidget | None, title: str, text: str) -> None:
    QMessageBox.critical(parent, title, text)


def show_info(parent: QWidget | None, title: str, text: str) -> None:
    QMessageBox.information(parent, title, text)


def confirm(parent: QWidget | None, title: str, text: str) -> bool:
    answer = QMessageBox.question(parent, title, text,
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


# --------------------------------------------------------------------------------------------
# The worker side (runs in the training thread)
# --------------------------------------------------------------------------------------------

def run_training(dataset_dir: Path, models_dir: Path, config: dict[str, Any],
                 on_progress: Callable[[Any], None], should_stop: Callable[[], bool]) -> Any:
    """Train in the calling (worker) thread: ``core.training.loop.train`` with ``TrainConfig(**config)``."""
    import torch

    from core.training.config import TrainConfig
    from core.training.loop import train

    # Leave one core to the GUI thread, so that browsing, zooming and painting stay fluid while
    # the model trains (set here, in the worker thread, where torch's intra-op pool is used).
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    return train(dataset_dir, models_dir, TrainConfig(**config), on_progress=on_progress,
                 should_stop=should_stop)


def throttle_batches(on_progress: Callable[[Any], None],
                     interval: float = WORKER_EMIT_INTERVAL) -> Callable[[Any], None]:
    """Pass every event except batch events closer than ``interval`` s to the previous one
    (the last batch of an epoch always passes), so a fast model cannot flood the GUI thread."""
    last = [0.0]

    def report(event: Any) -> None:
        if type(event).__name__ == "BatchProgress" and event.batch < event.batches:
            now = time.monotonic()
            if now - last[0] < interval:
                return
            last[0] = now
        on_progress(event)

    return report


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------

def format_duration(seconds: float | None) -> str:
    """``m:ss`` (or ``h:mm:ss``); ``--:--`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "--:--"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_created(created: str) -> str:
    """A checkpoint's ISO (UTC) creation time as a short local date and time."""
    try:
        stamp = datetime.fromisoformat(created)
    except (TypeError, ValueError):
        return created or "?"
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone()
    return stamp.strftime("%Y-%m-%d %H:%M")


def choice_box(choices: tuple[tuple[str, str], ...], tooltip: str) -> QComboBox:
    """A combo box of ``(name, help)`` choices: each item's data is its name, its tooltip the help."""
    box = QComboBox()
    for name, help_text in choices:
        box.addItem(name, name)
        box.setItemData(box.count() - 1, help_text, Qt.ItemDataRole.ToolTipRole)
    box.setToolTip(tooltip)
    return box


def precision_label(precision: str) -> str:
    """How the log names the arithmetic a run uses."""
    return "bfloat16 mixed precision" if precision == "bf16" else "float32"


def format_lr(value: float) -> str:
    text = f"{value:.0e}"
    mantissa, _, exponent = text.partition("e")
    return f"{mantissa}e{int(exponent)}" if float(text) == value else f"{value:g}"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


# --------------------------------------------------------------------------------------------
# The panel
# --------------------------------------------------------------------------------------------

class TrainingPanel(QWidget):
    """Train models on the open dataset in the background and pick the model used to predict."""

    model_activated = Signal(object)   # Path of the checkpoint to use for prediction
    training_running = Signal(bool)

    def __init__(self, settings: QSettings, parent: QWidget | None = None,
                 runner: TaskRunner | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trainingPanel")
        self.settings = settings
        self.runner = runner or default_runner()
        self._dataset: Path | None = None
        self._models_dir: Path | None = None
        self._active: Path | None = None
        self._task: Task | None = None
        self._run: dict[str, Any] = {}
        self._pending_batch: Any = None
        self._last_result: Any = None
        self._shutting_down = False
        self._loading_settings = False

        self._build_widgets()
        self._build_layout()
        self._load_settings()
        self._connect()
        self._progress_timer = QTimer(self)
        self._progress_timer.setInterval(PROGRESS_INTERVAL_MS)
        self._progress_timer.timeout.connect(self._show_pending_batch)
        self.set_dataset(None)

    # ----------------------------------------------------------------- construction
    def _build_widgets(self) -> None:
        self.dataset_label = QLabel()
        self.dataset_label.setObjectName("muted")
        self.dataset_label.setWordWrap(True)
        self.models_dir_edit = QLineEdit()
        self.models_dir_edit.setReadOnly(True)
        self.models_dir_edit.setPlaceholderText("open a dataset first")
        self.models_dir_button = QToolButton()
        self.models_dir_button.setText("…")
        self.models_dir_button.setToolTip("Choose the folder where models are saved and listed")

        self.arch_box = choice_box(ARCHITECTURES, "Network architecture")
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 10_000)
        self.epochs_spin.setToolTip("Number of epochs (passes of 'samples per epoch' crops)")
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 1024)
        self.batch_spin.setToolTip("Crops per training step")
        self.lr_box = QComboBox()
        self.lr_box.setEditable(True)
        self.lr_box.addItems(LR_PRESETS)
        validator = QDoubleValidator(1e-8, 9.99, 10, self.lr_box)
        validator.setNotation(QDoubleValidator.Notation.ScientificNotation)
        self.lr_box.setValidator(validator)
        self.lr_box.setToolTip("Peak learning rate (AdamW: a short warm-up, then a cosine decay), "
                               "e.g. 2e-3")
        self.loss_box = choice_box(LOSSES, "Loss function")
        self.crop_spin = QSpinBox()
        self.crop_spin.setRange(64, 2048)
        self.crop_spin.setSingleStep(32)
        self.crop_spin.setSuffix(" px")
        self.crop_spin.setToolTip("Side of the random square crops trained on (smaller images "
                                  "lower it automatically)")
        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(0, 1_000_000)
        self.samples_spin.setSingleStep(64)
        self.samples_spin.setSpecialValueText("all")
        self.samples_spin.setToolTip("Random crops per epoch (0, 'all': one crop of every training image)")
        self.device_box = choice_box(DEVICES, "Where to train")
        self.precision_box = choice_box(PRECISIONS, "Arithmetic of the network: auto uses bfloat16 "
                                                    "where the hardware has it; weights stay float32")
        self.time_check = QCheckBox("Time limit")
        self.time_check.setToolTip("Stop (and save) after this many minutes")
        self.time_spin = QDoubleSpinBox()
        self.time_spin.setRange(0.1, 9_999)
        self.time_spin.setDecimals(1)
        self.time_spin.setSuffix(" min")

        self.start_button = QPushButton(icon("predict"), "Start training")
        self.start_button.setObjectName("primary")
        self.start_button.setToolTip("Train a new model on the train split of the open dataset")
        self.stop_button = QPushButton(icon("stop"), "Stop")
        self.stop_button.setToolTip("Stop after the current batch; the model so far is saved")
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFormat("Ready")
        self.progress.setValue(0)
        self.progress_label = QLabel("")
        self.progress_label.setObjectName("muted")

        self.plot = TrainingPlot(self)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(LOG_MAX_LINES)
        self.log_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.log_view.setPlaceholderText("Training log")
        font = QFont("monospace")
        font.setStyleHint(QFont.StyleHint.Monospace)
        font.setPointSizeF(max(7.0, self.font().pointSizeF() * 0.9))
        self.log_view.setFont(font)

        self.models_tree = QTreeWidget()
        self.models_tree.setHeaderLabels(list(COLUMNS))
        self.models_tree.setRootIsDecorated(False)
        self.models_tree.setUniformRowHeights(True)
        self.models_tree.setAlternatingRowColors(True)
        self.models_tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.models_tree.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.models_tree.setToolTip("Double click a model to use it for prediction")
        header = self.models_tree.header()
        header.setStretchLastSection(False)
        for column in range(len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.use_button = QPushButton(icon("check"), "Use for prediction")
        self.delete_button = QPushButton("Delete…")
        self.refresh_button = QToolButton()
        self.refresh_button.setText("⟳")
        self.refresh_button.setToolTip("Read the models folder again")

    def _build_layout(self) -> None:
        folder_row = QHBoxLayout()
        folder_row.addWidget(QLabel("Models"))
        folder_row.addWidget(self.models_dir_edit, 1)
        folder_row.addWidget(self.models_dir_button)

        params = QGroupBox("Training")
        grid = QGridLayout(params)
        grid.setHorizontalSpacing(6)
        grid.addWidget(self.dataset_label, 0, 0, 1, 4)
        grid.addLayout(folder_row, 1, 0, 1, 4)
        grid.addWidget(QLabel("Architecture"), 2, 0)
        grid.addWidget(self.arch_box, 2, 1, 1, 3)
        grid.addWidget(QLabel("Epochs"), 3, 0)
        grid.addWidget(self.epochs_spin, 3, 1)
        grid.addWidget(QLabel("Batch"), 3, 2)
        grid.addWidget(self.batch_spin, 3, 3)
        grid.addWidget(QLabel("Learning rate"), 4, 0)
        grid.addWidget(self.lr_box, 4, 1)
        grid.addWidget(QLabel("Loss"), 4, 2)
        grid.addWidget(self.loss_box, 4, 3)
        grid.addWidget(QLabel("Crop"), 5, 0)
        grid.addWidget(self.crop_spin, 5, 1)
        grid.addWidget(QLabel("Samples/epoch"), 5, 2)
        grid.addWidget(self.samples_spin, 5, 3)
        grid.addWidget(QLabel("Device"), 6, 0)
        grid.addWidget(self.device_box, 6, 1)
        grid.addWidget(QLabel("Precision"), 6, 2)
        grid.addWidget(self.precision_box, 6, 3)
        grid.addWidget(self.time_check, 7, 2)
        grid.addWidget(self.time_spin, 7, 3)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        # Let the editors shrink below their range-based size hints, so the dock can be narrow.
        for editor in (self.arch_box, self.epochs_spin, self.batch_spin, self.lr_box,
                       self.loss_box, self.crop_spin, self.samples_spin, self.device_box,
                       self.precision_box, self.time_spin):
            editor.setMinimumWidth(72)
        self.loss_box.setMinimumWidth(88)
        self.time_spin.setMinimumWidth(88)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button, 1)
        buttons.addWidget(self.stop_button)
        grid.addLayout(buttons, 8, 0, 1, 4)
        grid.addWidget(self.progress, 9, 0, 1, 4)
        grid.addWidget(self.progress_label, 10, 0, 1, 4)
        params.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)

        models_box = QGroupBox("Models")
        mlay = QVBoxLayout(models_box)
        mlay.addWidget(self.models_tree, 1)
        mrow = QHBoxLayout()
        mrow.addWidget(self.use_button, 1)
        mrow.addWidget(self.delete_button)
        mrow.addWidget(self.refresh_button)
        mlay.addLayout(mrow)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.plot)
        self.splitter.addWidget(self.log_view)
        self.splitter.addWidget(models_box)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 2)
        self.log_view.setMinimumHeight(60)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(params)
        layout.addWidget(self.splitter, 1)

    def _connect(self) -> None:
        self.start_button.clicked.connect(self.start_training)
        self.stop_button.clicked.connect(self.stop_training)
        self.models_dir_button.clicked.connect(self.choose_models_dir)
        self.use_button.clicked.connect(self.activate_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.refresh_button.clicked.connect(self.refresh_models)
        self.models_tree.itemDoubleClicked.connect(lambda _item, _col: self.activate_selected())
        self.models_tree.currentItemChanged.connect(self._current_model_changed)
        self.time_check.toggled.connect(self.time_spin.setEnabled)
        for box in (self.arch_box, self.loss_box, self.device_box, self.precision_box):
            box.currentIndexChanged.connect(self._save_settings)
        for spin in (self.epochs_spin, self.batch_spin, self.crop_spin, self.samples_spin,
                     self.time_spin):
            spin.valueChanged.connect(self._save_settings)
        self.lr_box.currentTextChanged.connect(self._save_settings)
        self.time_check.toggled.connect(self._save_settings)

    # ----------------------------------------------------------------- settings
    def _key(self, name: str) -> str:
        return SETTINGS_PREFIX + name

    def _load_settings(self) -> None:
        s, d = self.settings, DEFAULTS
        self._loading_settings = True
        try:
            self._select_data(self.arch_box, str(s.value(self._key("arch"), d["arch"])), d["arch"])
            self.epochs_spin.setValue(cfg.get_int(s, self._key("epochs"), d["epochs"]))
            self.batch_spin.setValue(cfg.get_int(s, self._key("batch_size"), d["batch_size"]))
            lr = cfg.get_float(s, self._key("lr"), d["lr"])
            self.lr_box.setCurrentText(format_lr(lr if 0 < lr < 10 else d["lr"]))
            self._select_data(self.loss_box, str(s.value(self._key("loss"), d["loss"])), d["loss"])
            self.crop_spin.setValue(cfg.get_int(s, self._key("crop_size"), d["crop_size"]))
            self.samples_spin.setValue(
                cfg.get_int(s, self._key("samples_per_epoch"), d["samples_per_epoch"]))
            self._select_data(self.device_box, str(s.value(self._key("device"), d["device"])),
                              d["device"])
            self._select_data(self.precision_box,
                              str(s.value(self._key("precision"), d["precision"])), d["precision"])
            self.time_check.setChecked(cfg.get_bool(s, self._key("time_limit"), d["time_limit"]))
            self.time_spin.setValue(cfg.get_float(s, self._key("max_minutes"), d["max_minutes"]))
            self.time_spin.setEnabled(self.time_check.isChecked())
        finally:
            self._loading_settings = False

    @staticmethod
    def _select_data(box: QComboBox, value: str, default: str) -> None:
        index = box.findData(value)
        box.setCurrentIndex(index if index >= 0 else max(0, box.findData(default)))

    def _save_settings(self, *_args: Any) -> None:
        if self._loading_settings:
            return
        s = self.settings
        s.setValue(self._key("arch"), self.arch_box.currentData())
        s.setValue(self._key("epochs"), self.epochs_spin.value())
        s.setValue(self._key("batch_size"), self.batch_spin.value())
        try:
            s.setValue(self._key("lr"), self._learning_rate())
        except ValueError:
            pass  # half-typed; saved once it parses
        s.setValue(self._key("loss"), self.loss_box.currentData())
        s.setValue(self._key("crop_size"), self.crop_spin.value())
        s.setValue(self._key("samples_per_epoch"), self.samples_spin.value())
        s.setValue(self._key("device"), self.device_box.currentData())
        s.setValue(self._key("precision"), self.precision_box.currentData())
        s.setValue(self._key("time_limit"), self.time_check.isChecked())
        s.setValue(self._key("max_minutes"), self.time_spin.value())

    def _per_dataset(self, name: str) -> dict[str, str]:
        raw = self.settings.value(self._key(name), "")
        try:
            value = json.loads(raw) if raw else {}
        except (TypeError, ValueError):
            value = {}
        return value if isinstance(value, dict) else {}

    def _remember(self, name: str, value: Path | None, dataset: Path | None = None) -> None:
        dataset = dataset or self._dataset
        if dataset is None:
            return
        mapping = self._per_dataset(name)
        key = str(dataset)
        if value is None:
            mapping.pop(key, None)
        else:
            mapping[key] = str(value)
        self.settings.setValue(self._key(name), json.dumps(mapping))

    # ----------------------------------------------------------------- public API
    def set_dataset(self, path: Path | None) -> None:
        """Train on ``path`` from now on; list the models of its models folder."""
        self._dataset = Path(path).resolve() if path is not None else None
        if self._dataset is None:
            self.dataset_label.setText("No dataset open.")
            self._models_dir = None
            self.models_dir_edit.clear()
        else:
            self.dataset_label.setText(f"Dataset: {self._dataset.name}")
            self.dataset_label.setToolTip(str(self._dataset))
            remembered = self._per_dataset("models_dirs").get(str(self._dataset))
            self._set_models_dir(Path(remembered) if remembered else self.default_models_dir())
        self._active = None
        active = self._per_dataset("active_models").get(str(self._dataset)) if self._dataset else None
        self.refresh_models()
        if active and Path(active).is_file():
            self._set_active(Path(active))
        self._update_enabled()

    def dataset(self) -> Path | None:
        return self._dataset

    def default_models_dir(self) -> Path | None:
        return self._dataset / "models" if self._dataset is not None else None

    def models_dir(self) -> Path | None:
        return self._models_dir

    def set_models_dir(self, path: Path) -> None:
        """Save and list models in ``path`` (remembered for the open dataset)."""
        path = Path(path)
        self._set_models_dir(path)
        self._remember("models_dirs", None if path == self.default_models_dir() else path)
        remove_stale_model_temp_files(path)  # leftovers of checkpoint writes killed midway
        self.refresh_models()

    def _set_models_dir(self, path: Path) -> None:
        self._models_dir = path
        self.models_dir_edit.setText(str(path))
        self.models_dir_edit.setToolTip(str(path))
        self.models_dir_edit.setCursorPosition(0)

    def choose_models_dir(self) -> None:
        if self._dataset is None:
            return
        start = self._models_dir if self._models_dir and self._models_dir.is_dir() else self._dataset
        chosen = QFileDialog.getExistingDirectory(self, "Models folder", str(start))
        if chosen:
            self.set_models_dir(Path(chosen))

    def is_training(self) -> bool:
        return self._task is not None

    #: The main window asks ``is_running()``; same thing.
    is_running = is_training

    def active_model(self) -> Path | None:
        return self._active

    def last_result(self) -> Any:
        """The ``TrainResult`` of the last run that finished (None before, or after a failure)."""
        return self._last_result

    def config(self) -> dict[str, Any]:
        """The ``TrainConfig`` fields chosen in the panel (ValueError for a bad learning rate)."""
        samples = self.samples_spin.value()
        return {
            "arch": self.arch_box.currentData(),
            "epochs": self.epochs_spin.value(),
            "batch_size": self.batch_spin.value(),
            "lr": self._learning_rate(),
            "loss": self.loss_box.currentData(),
            "device": self.device_box.currentData(),
            "precision": self.precision_box.currentData(),
            "crop_size": self.crop_spin.value(),
            "samples_per_epoch": samples if samples > 0 else None,
            "max_minutes": self.time_spin.value() if self.time_check.isChecked() else None,
        }

    def _learning_rate(self) -> float:
        text = self.lr_box.currentText().strip().replace(",", ".")
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"the learning rate {text!r} is not a number (e.g. 1e-3)") from None
        if not 0 < value < 10:
            raise ValueError(f"the learning rate must be positive and below 10, got {text}")
        return value

    # ----------------------------------------------------------------- training
    def start_training(self) -> bool:
        """Start a run with the panel's settings; False if it could not start."""
        if self._task is not None:
            return False
        if self._dataset is None or self._models_dir is None:
            show_info(self, "No dataset", "Open a dataset first: training uses its train split.")
            return False
        try:
            config = self.config()
        except ValueError as exc:
            show_error(self, "Cannot start training", str(exc).capitalize())
            return False
        self._save_settings()
        dataset, models_dir = self._dataset, self._models_dir
        self._run = {"dataset": dataset, "models_dir": models_dir, "config": config,
                     "clock": time.monotonic(), "t0": None, "first_epoch": None,
                     "epochs": config["epochs"], "batches": None, "epoch": 0}
        self._pending_batch = None
        self._last_result = None
        self.plot.reset("this run")
        limit = f", time limit {config['max_minutes']:g} min" if config["max_minutes"] else ""
        samples = (f"{config['samples_per_epoch']} samples/epoch" if config["samples_per_epoch"]
                   else "one crop per image and epoch")
        self._log(f"Start: {config['arch']}, {config['epochs']} epochs, batch "
                  f"{config['batch_size']}, lr {format_lr(config['lr'])}, {config['loss']}, crop "
                  f"{config['crop_size']}, {samples}, device {config['device']}"
                  f"{limit}; dataset {dataset}")
        self.progress.setRange(0, 0)  # busy until the first batch: torch loads, images decode
        self.progress.setFormat("Loading…")
        self.progress_label.setText("Loading PyTorch and the images…")

        def work(on_progress: Callable[[Any], None], should_stop: Callable[[], bool]) -> Any:
            return run_training(dataset, models_dir, config, throttle_batches(on_progress),
                                should_stop)

        self._task = self.runner.start(work, on_progress=self._on_progress,
                                       on_finished=self._on_finished, on_failed=self._on_failed,
                                       on_done=self._on_done, name="training")
        self._progress_timer.start()
        self._update_enabled()
        self.training_running.emit(True)
        return True

    def stop_training(self) -> None:
        """Ask the run to stop after the current batch (it still saves its model)."""
        if self._task is None or self._task.stop_requested:
            return
        self._task.request_stop()
        self._log("Stop requested: finishing the current batch and saving the model…")
        self.stop_button.setText("Stopping…")
        self._update_enabled()

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Stop a run and wait for its thread (window closing); True if nothing is left running."""
        task = self._task
        if task is None:
            return True
        self._shutting_down = True
        try:
            self.stop_training()
            return task.wait(timeout_ms)
        finally:
            self._shutting_down = False

    # ----------------------------------------------------------------- events (GUI thread)
    def _on_progress(self, event: Any) -> None:
        kind = type(event).__name__
        if kind == "BatchProgress":
            self._pending_batch = event
        elif kind == "EpochResult":
            self._show_pending_batch()
            self._on_epoch(event)
        elif kind == "TrainingStarted":
            self._run["t0"] = time.monotonic()
            self._run["model_path"] = Path(event.model_path)
            self._log(f"Training on {event.train_images} images ({event.val_images} for "
                      f"validation) on {event.device} ({precision_label(event.precision)}), "
                      f"crop {event.crop_size} px, "
                      f"{event.parameters:,} weights → {Path(event.model_path).name}")
            self.progress_label.setText("First batch…")

    def _show_pending_batch(self) -> None:
        event, self._pending_batch = self._pending_batch, None
        if event is None:
            return
        run = self._run
        if run.get("first_epoch") is None:
            # ``epochs`` counts a resumed model's earlier epochs too; this run trains the last ones.
            run["first_epoch"] = max(1, min(event.epoch, event.epochs - run["epochs"] + 1))
            run["t0"] = run.get("t0") or time.monotonic()
        run["batches"], run["epoch"] = event.batches, event.epoch
        first = run["first_epoch"]
        total = max(1, (event.epochs - first + 1) * event.batches)
        done = min(total, (event.epoch - first) * event.batches + event.batch)
        elapsed = time.monotonic() - run["t0"]
        eta = elapsed / done * (total - done) if done else None
        limit = run["config"].get("max_minutes")
        if limit and eta is not None:
            eta = min(eta, max(0.0, run["clock"] + limit * 60 - time.monotonic()))
        if self.progress.maximum() != total:
            self.progress.setRange(0, total)
        self.progress.setValue(done)
        text = (f"epoch {event.epoch}/{event.epochs} · batch {event.batch}/{event.batches} · "
                f"ETA {format_duration(eta)} · loss {event.loss:.4f}")
        self.progress.setFormat(f"{100 * done // total}%")
        self.progress_label.setText(text)

    def _on_epoch(self, result: Any) -> None:
        self.plot.add_epoch(result)
        partial = "" if getattr(result, "complete", True) else " (partial)"
        self._log(f"Epoch {result.epoch}/{result.epochs}{partial}: train loss "
                  f"{result.train_loss:.4f} · val loss {_fmt(result.val_loss, 4)} · val IoU "
                  f"{_fmt(result.val_iou)} · {result.seconds:.1f} s · ETA "
                  f"{format_duration(result.eta_seconds)}")

    def _on_finished(self, result: Any) -> None:
        self._last_result = result
        path = Path(result.model_path)
        why = {None: "finished", "user": "stopped by you", "time": "time limit reached"}.get(
            result.stopped, str(result.stopped))
        self._log(f"Done ({why}) in {format_duration(result.seconds)}: saved {path} "
                  f"(best epoch {result.best_epoch}, val IoU {_fmt(result.val_iou)})")
        self.plot.getPlotItem().setTitle(path.name, color="#8b919b", size="9pt")
        self.refresh_models()
        dataset = self._run.get("dataset")
        if dataset is not None and dataset != self._dataset:
            # another dataset was opened meanwhile: the model is its own dataset's active model
            # (offered when that dataset is opened again), never forced on the open one
            self._remember("active_models", path, dataset)
            self._log(f"{path.name} was trained on {dataset.name}, not the open dataset: open "
                      f"{dataset.name} again to use it")
            return
        self._set_active(path, dataset=dataset)

    def _on_failed(self, error: BaseException) -> None:
        text = describe(error)
        if isinstance(error, Stopped):
            self._log("Stopped before the first batch finished: no model saved.")
            return
        self._log(f"Error: {text}")
        if not isinstance(error, RooftopError):
            log.error("training failed:\n%s", format_details(error))
        if not self._shutting_down:
            show_error(self, "Training failed", text)

    def _on_done(self) -> None:
        self._task = None
        self._progress_timer.stop()
        self._pending_batch = None
        self.progress.setRange(0, 100)
        result = self._last_result
        if result is not None:
            self.progress.setValue(100)
            self.progress.setFormat(f"Saved {Path(result.model_path).name}")
        else:
            self.progress.setValue(0)
            self.progress.setFormat("Ready")
        self.progress_label.setText("")
        self.stop_button.setText("Stop")
        self._update_enabled()
        self.training_running.emit(False)

    def _update_enabled(self) -> None:
        running = self._task is not None
        for widget in (self.arch_box, self.epochs_spin, self.batch_spin, self.lr_box,
                       self.loss_box, self.crop_spin, self.samples_spin, self.device_box,
                       self.time_check, self.models_dir_button):
            widget.setEnabled(not running)
        self.time_spin.setEnabled(not running and self.time_check.isChecked())
        self.start_button.setEnabled(not running and self._dataset is not None)
        self.stop_button.setEnabled(running and not self._task.stop_requested)
        has_model = self.models_tree.currentItem() is not None
        self.use_button.setEnabled(has_model)
        self.delete_button.setEnabled(has_model)
        self.refresh_button.setEnabled(self._models_dir is not None)

    def _log(self, text: str) -> None:
        self.log_view.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")
        bar = self.log_view.verticalScrollBar()
        bar.setValue(bar.maximum())

    # ----------------------------------------------------------------- models list
    def models(self) -> list[ModelInfo]:
        """The models listed (newest first)."""
        return [self.models_tree.topLevelItem(i).data(0, PATH_ROLE + 1)
                for i in range(self.models_tree.topLevelItemCount())]

    def refresh_models(self) -> None:
        """Read the models folder again (headers only, no torch)."""
        selected = self._selected_path() or self._active
        self.models_tree.blockSignals(True)
        try:
            self.models_tree.clear()
            infos: list[ModelInfo] = []
            if self._models_dir is not None:
                try:
                    infos = list_models(self._models_dir)
                except OSError as exc:
                    self._log(f"Cannot list {self._models_dir}: {exc.strerror or exc}")
            for info in reversed(infos):
                item = QTreeWidgetItem([
                    info.name, format_created(info.created), info.arch, _fmt(info.val_iou),
                    str(info.epochs_done)])
                item.setData(0, PATH_ROLE, str(info.path))
                item.setData(0, PATH_ROLE + 1, info)
                item.setToolTip(0, str(info.path))
                for column in (3, 4):
                    item.setTextAlignment(column, Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                self.models_tree.addTopLevelItem(item)
                if selected is not None and Path(info.path) == Path(selected):
                    self.models_tree.setCurrentItem(item)
            self._mark_active()
        finally:
            self.models_tree.blockSignals(False)
        self._update_enabled()

    def _item_for(self, path: Path) -> QTreeWidgetItem | None:
        for i in range(self.models_tree.topLevelItemCount()):
            item = self.models_tree.topLevelItem(i)
            if Path(item.data(0, PATH_ROLE)) == Path(path):
                return item
        return None

    def _selected_path(self) -> Path | None:
        item = self.models_tree.currentItem()
        return Path(item.data(0, PATH_ROLE)) if item is not None else None

    def select_model(self, path: Path) -> bool:
        item = self._item_for(path)
        if item is not None:
            self.models_tree.setCurrentItem(item)
        return item is not None

    def _mark_active(self) -> None:
        for i in range(self.models_tree.topLevelItemCount()):
            item = self.models_tree.topLevelItem(i)
            active = self._active is not None and Path(item.data(0, PATH_ROLE)) == self._active
            item.setIcon(0, icon("check") if active else icon("blank"))
            for column in range(len(COLUMNS)):
                font = item.font(column)
                font.setBold(active)
                item.setFont(column, font)

    def activate_selected(self) -> None:
        """Use the selected model for prediction."""
        path = self._selected_path()
        if path is not None:
            self._set_active(path)

    def _set_active(self, path: Path, dataset: Path | None = None) -> None:
        self._active = Path(path)
        self._remember("active_models", self._active, dataset)
        self.select_model(self._active)
        self._mark_active()
        self.model_activated.emit(self._active)

    def delete_selected(self) -> None:
        """Delete the selected model file, after confirmation."""
        path = self._selected_path()
        if path is None:
            return
        if not confirm(self, "Delete model", f"Delete {path.name} for good?\n\n{path}"):
            return
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            show_error(self, "Cannot delete model", f"{path}: {exc.strerror or exc}")
            return
        self._log(f"Deleted {path}")
        if self._active is not None and self._active == path:
            self._active = None
            self._remember("active_models", None)
        self.refresh_models()

    def _current_model_changed(self, current: QTreeWidgetItem | None, _previous: Any) -> None:
        self._update_enabled()
        if current is None or self._task is not None:
            return  # during a run the plot shows the run
        path = Path(current.data(0, PATH_ROLE))
        try:
            history = read_metadata(path).get("history") or []
        except RooftopError:
            return
        self.plot.set_history(history, path.name)
