"""A training run as it happens: Start/Stop, the progress bar with the ETA and the speed, the live
curves and the log.

It is fed the events of ``core.training.loop.train`` (``core.training.config``: TrainingStarted,
BatchProgress, EpochResult, then a TrainResult) in the GUI thread. Batch events are kept and shown
at most every :data:`PROGRESS_INTERVAL_MS` (the progress bar is not repainted per batch). The
speed is the crops trained per second within the current epoch (validation not counted) and the
seconds an epoch takes (validation counted), shown under the bar and logged with every epoch.
With a time budget the bar counts the budget's time; with a number of epochs, the batches.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from core.training.config import (
    BatchProgress,
    EpochResult,
    TrainConfig,
    TrainingStarted,
    TrainResult,
)
from rooftop_gui.plot import TrainingPlot
from rooftop_gui.resources import icon
from rooftop_gui.training_form import format_lr

PROGRESS_INTERVAL_MS = 50  # the progress bar is repainted at most 20 times a second
LOG_MAX_LINES = 2000
LOG_LINES_SHOWN = 4  # the log is at least this many lines high


def format_duration(seconds: float | None) -> str:
    """``m:ss`` (or ``h:mm:ss``); ``--:--`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "--:--"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def precision_label(precision: str) -> str:
    """How the log names the arithmetic a run uses."""
    return "bfloat16 mixed precision" if precision == "bf16" else "float32"


def fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _of(epoch: int, epochs: int | None) -> str:
    return str(epoch) if epochs is None else f"{epoch}/{epochs}"


class TrainingRunView(QWidget):
    """Start/Stop, progress, speed, curves and log of the current (or last) run."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trainingRunView")
        self.start_button = QPushButton(icon("predict"), "Train")
        self.start_button.setObjectName("primary")
        self.start_button.setToolTip("Train a new model on the train split of the open dataset")
        self.stop_button = QPushButton(icon("stop"), "Stop")
        self.stop_button.setToolTip("Stop after the current batch; the model so far is saved")
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFormat("Ready")
        self.progress.setValue(0)
        self.status_label = QLabel("")
        self.status_label.setObjectName("muted")
        self.speed_label = QLabel("")
        self.speed_label.setObjectName("muted")
        self.speed_label.setToolTip(
            "Crops trained per second in this epoch, and seconds per epoch (validation included)"
        )
        # long texts are cut, never widen the panel (which would push it out of its dock)
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
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
        self.log_view.setMinimumHeight(  # the lines, the frame and a horizontal scroll bar
            self.log_view.fontMetrics().lineSpacing() * LOG_LINES_SHOWN + 14 + 12
        )

        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button, 1)
        buttons.addWidget(self.stop_button)
        labels = QHBoxLayout()
        labels.addWidget(self.status_label, 1)
        labels.addWidget(self.speed_label, 0, Qt.AlignmentFlag.AlignRight)
        #: plot above the log; the user drags the handle between them
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.plot)
        self.splitter.addWidget(self.log_view)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([300, 100])  # the plot 3/4 (the split's size hints would give
        # the log the most)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addLayout(labels)
        layout.addWidget(self.splitter, 1)

        self._run: dict[str, Any] = {}
        self._pending: BatchProgress | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(PROGRESS_INTERVAL_MS)
        self._timer.timeout.connect(self.show_pending_batch)

    # ----------------------------------------------------------------- a run
    def begin(self, config: TrainConfig, dataset: Path) -> None:
        """A run of ``config`` starts: clear the curves, log what it trains, show "Loading"."""
        self._run = {
            "config": config,
            "rate": None,
            "epoch_seconds": None,
            "mark": None,
            "epoch_samples": 0,
        }
        self._pending = None
        self.plot.reset("this run")
        if config.epochs is None:
            budget = f"for {config.max_minutes:g} min"
        else:
            budget = f"{config.epochs} epochs"
            if config.max_minutes:
                budget += f" (at most {config.max_minutes:g} min)"
        samples = (
            f"{config.samples_per_epoch} crops/epoch"
            if config.samples_per_epoch
            else "one crop per image and epoch"
        )
        self.log(
            f"Start: {config.arch} {budget}, batch {config.batch_size}, lr {format_lr(config.lr)}, "
            f"{config.loss}, crop {config.crop_size}, {samples}, device {config.device}, "
            f"precision {config.precision}; dataset {dataset}"
        )
        self.progress.setRange(0, 0)  # busy until the first batch: torch loads, images decode
        self.progress.setFormat("Loading…")
        self.status_label.setText("Loading PyTorch and the images…")
        self.speed_label.setText("")
        self._timer.start()

    def started(self, event: TrainingStarted) -> None:
        self.log(
            f"Training on {event.train_images} images ({event.val_images} for validation) "
            f"on {event.device} ({precision_label(event.precision)}), crop "
            f"{event.crop_size} px, {event.parameters:,} weights → "
            f"{Path(event.model_path).name}"
        )
        self.status_label.setText("First batch…")

    def batch(self, event: BatchProgress) -> None:
        """Keep the event for the next repaint; measure the speed within the epoch."""
        run = self._run
        mark = run.get("mark")
        if mark is None or mark.epoch != event.epoch:
            run["mark"] = event
        elif event.elapsed_seconds > mark.elapsed_seconds:
            run["rate"] = (event.samples_seen - mark.samples_seen) / (
                event.elapsed_seconds - mark.elapsed_seconds
            )
            run["rate_epoch"] = event.epoch
        self._pending = event

    def show_pending_batch(self) -> None:
        event, self._pending = self._pending, None
        if event is None:
            return
        run = self._run
        config: TrainConfig | None = run.get("config")
        budget = config.max_minutes * 60 if config is not None and config.max_minutes else None
        fractions, eta = [], None
        if event.epochs is not None:
            total = max(1, event.epochs * event.batches)
            done = min(total, (event.epoch - 1) * event.batches + event.batch)
            fractions.append(done / total)
            eta = event.elapsed_seconds / done * (total - done) if done else None
        if budget:
            fractions.append(min(1.0, event.elapsed_seconds / budget))
            left = max(0.0, budget - event.elapsed_seconds)
            eta = left if eta is None else min(eta, left)
        fraction = max(fractions) if fractions else 0.0
        if self.progress.maximum() != 1000:
            self.progress.setRange(0, 1000)
        self.progress.setValue(round(1000 * fraction))
        eta_text = (
            f"{format_duration(eta)} left"
            if event.epochs is None
            else f"ETA {format_duration(eta)}"
        )
        self.progress.setFormat(f"{int(100 * fraction)}% · {eta_text}")
        self.status_label.setText(
            f"epoch {_of(event.epoch, event.epochs)} · batch "
            f"{event.batch}/{event.batches} · loss {event.loss:.4f}"
        )
        self.status_label.setToolTip(self.status_label.text())
        self._show_speed()

    def _show_speed(self) -> None:
        parts = []
        if self._run.get("rate"):
            parts.append(f"{self._run['rate']:.0f} crops/s")
        if self._run.get("epoch_seconds") is not None:
            parts.append(f"{self._run['epoch_seconds']:.1f} s/epoch")
        self.speed_label.setText(" · ".join(parts))

    def epoch(self, result: EpochResult) -> None:
        self.show_pending_batch()
        run = self._run
        crops = result.samples_seen - run.get("epoch_samples", 0)
        run["epoch_samples"] = result.samples_seen
        run["epoch_seconds"] = result.seconds
        if run.get("rate_epoch") != result.epoch and result.seconds > 0:
            run["rate"] = crops / result.seconds  # one batch an epoch: validation included
        self._show_speed()
        self.plot.add_epoch(result)
        partial = "" if result.complete else " (partial)"
        rate = f" · {run['rate']:.0f} crops/s" if run.get("rate") else ""
        # with a time budget only some epochs are validated (a tenth of the time at most)
        scores = (
            f" · val loss {fmt(result.val_loss, 4)} · val IoU {fmt(result.val_iou)}"
            if result.val_loss is not None
            else ""
        )
        self.log(
            f"Epoch {_of(result.epoch, result.epochs)}{partial}: train loss "
            f"{result.train_loss:.4f}{scores} · {result.seconds:.1f} s/epoch{rate} · ETA "
            f"{format_duration(result.eta_seconds)}"
        )

    def finished(self, result: TrainResult) -> None:
        path = Path(result.model_path)
        why = {None: "finished", "user": "stopped by you", "time": "time budget used"}.get(
            result.stopped, str(result.stopped)
        )
        self.log(
            f"Done ({why}) in {format_duration(result.seconds)}: saved {path} "
            f"(epoch {result.best_epoch}, val IoU {fmt(result.val_iou)})"
        )
        self.plot.set_title(path.name)

    def stopping(self) -> None:
        self.log("Stop requested: finishing the current batch and saving the model…")
        self.stop_button.setText("Stopping…")

    def done(self, saved: Path | None) -> None:
        """The run is over (finished, failed or stopped): the bar says what is left."""
        self._timer.stop()
        self._pending = None
        self.progress.setRange(0, 100)
        self.progress.setValue(100 if saved is not None else 0)
        self.progress.setFormat(f"Saved {saved.name}" if saved is not None else "Ready")
        self.status_label.setText("")
        self.stop_button.setText("Stop")

    def set_running(self, running: bool, can_start: bool, stop_requested: bool = False) -> None:
        self.start_button.setEnabled(not running and can_start)
        self.stop_button.setEnabled(running and not stop_requested)

    def log(self, text: str) -> None:
        self.log_view.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")
        bar = self.log_view.verticalScrollBar()
        bar.setValue(bar.maximum())
