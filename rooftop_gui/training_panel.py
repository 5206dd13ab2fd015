"""Training panel: the settings (:mod:`~rooftop_gui.training_form`), the run
(:mod:`~rooftop_gui.training_run_view`: Start/Stop, progress, speed, curves, log) and the models
(:mod:`~rooftop_gui.model_list`), put together; it runs the training and remembers, per dataset,
the models folder and the active model.

Training runs ``core.training.loop.train`` in a QThread through :class:`rooftop_gui.workers.TaskRunner`,
so the user keeps browsing, zooming and painting meanwhile. Neither torch nor ``core.training.loop``
nor ``core.models`` is imported at module level (the window must appear before torch loads): the
worker function :func:`run_training` imports them; the names, defaults and events come from the
torch-free ``core.training.config``.

Stop asks the worker to stop; ``train`` checks between batches, finishes (validates) the partial
epoch and saves the model it has, so a stopped run still yields ``model_vN``. Picking a model
(double click or "Use for prediction") emits :attr:`TrainingPanel.model_activated`; so does the
end of a training run, with the model it saved.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QMessageBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from core.checkpoint import read_metadata, remove_stale_model_temp_files
from core.errors import ConfigError, RooftopError
from core.progress import Stopped
from core.training.config import BatchProgress, EpochResult, TrainConfig, TrainingStarted
from rooftop_gui.errors import describe, format_details
from rooftop_gui.model_list import ModelList
from rooftop_gui.training_form import SETTINGS_PREFIX, TrainingForm
from rooftop_gui.training_run_view import TrainingRunView
from rooftop_gui.workers import Task, TaskRunner, default_runner

log = logging.getLogger(__name__)
WORKER_EMIT_INTERVAL = 0.03  # the worker sends at most ~33 batch events a second


def show_error(parent: QWidget | None, title: str, text: str) -> None:
    QMessageBox.critical(parent, title, text)


def show_info(parent: QWidget | None, title: str, text: str) -> None:
    QMessageBox.information(parent, title, text)


def run_training(
    dataset_dir: Path,
    models_dir: Path,
    config: TrainConfig,
    on_progress: Callable[[Any], None],
    should_stop: Callable[[], bool],
    on_weights: Callable[[int, dict], None] | None = None,
    init_from: Path | None = None,
) -> Any:
    """Train in the calling (worker) thread: ``core.training.loop.train(..., config)``, from
    ``init_from``'s weights when given."""
    import torch

    from core.training.loop import train

    # Leave one core to the GUI thread, so that browsing, zooming and painting stay fluid while
    # the model trains (set here, in the worker thread, where torch's intra-op pool is used).
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    return train(
        dataset_dir,
        models_dir,
        config,
        on_progress=on_progress,
        should_stop=should_stop,
        on_weights=on_weights,
        init_from=init_from,
    )


def throttle_batches(
    on_progress: Callable[[Any], None], interval: float = WORKER_EMIT_INTERVAL
) -> Callable[[Any], None]:
    """Pass every event except a :class:`BatchProgress` closer than ``interval`` s to the previous
    one (the last batch of an epoch always passes), so a fast model cannot flood the GUI thread."""
    last = [0.0]

    def report(event: Any) -> None:
        if isinstance(event, BatchProgress) and event.batch < event.batches:
            now = time.monotonic()
            if now - last[0] < interval:
                return
            last[0] = now
        on_progress(event)

    return report


class TrainingPanel(QWidget):
    """Train models on the open dataset in the background and pick the model used to predict."""

    model_activated = Signal(object)  # Path of the checkpoint to use for prediction
    training_running = Signal(bool)
    live_weights = Signal(object)  # rooftop_gui.active_learning.LiveWeights of an epoch

    def __init__(
        self, settings: QSettings, parent: QWidget | None = None, runner: TaskRunner | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("trainingPanel")
        self.settings = settings
        self.runner = runner or default_runner()
        self._dataset: Path | None = None
        self._models_dir: Path | None = None
        self._task: Task | None = None
        self._run_dataset: Path | None = None
        self._last_result: Any = None
        self._unfold_after_run = False  # the settings were open when the run started
        self._shutting_down = False

        self.form = TrainingForm(settings, self)
        self.run_view = TrainingRunView(self)
        self.model_list = ModelList(self)
        # the controls other parts of the app and the tests use most
        self.start_button, self.stop_button = self.run_view.start_button, self.run_view.stop_button
        self.plot, self.log_view = self.run_view.plot, self.run_view.log_view

        #: run (curves, log) above the models; the user drags the handle between them
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.run_view)
        self.splitter.addWidget(self.model_list)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([640, 260])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.form)
        self.live_box = QCheckBox("Live preview of the current image after each epoch")
        self.live_box.setObjectName("livePreview")
        self.live_box.setToolTip(
            "While training, predict the image on the canvas with the "
            "weights of the epoch just finished (at most every 15 s), to "
            "see where to paint strokes next"
        )
        self.live_box.setChecked(settings.value("training/live_preview", "true") in (True, "true"))
        self.live_preview_on = self.live_box.isChecked()
        self.live_box.toggled.connect(self._live_toggled)
        layout.addWidget(self.live_box)
        layout.addWidget(self.splitter, 1)

        self.start_button.clicked.connect(self.start_training)
        self.stop_button.clicked.connect(self.stop_training)
        self.form.changed.connect(self._update_enabled)
        self.model_list.folder_requested.connect(self.choose_models_dir)
        self.model_list.activated.connect(self._set_active)
        self.model_list.selected.connect(self._model_selected)
        self.model_list.deleted.connect(self._model_deleted)
        self.model_list.message.connect(self.run_view.log)
        self.model_list.refreshed.connect(
            lambda: self.form.set_start_models([m.path for m in self.model_list.models()])
        )
        self.set_dataset(None)

    # ----------------------------------------------------------------- per-dataset memory
    def _per_dataset(self, name: str) -> dict[str, str]:
        raw = self.settings.value(SETTINGS_PREFIX + name, "")
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
        if value is None:
            mapping.pop(str(dataset), None)
        else:
            mapping[str(dataset)] = str(value)
        self.settings.setValue(SETTINGS_PREFIX + name, json.dumps(mapping))

    # ----------------------------------------------------------------- dataset and folder
    def set_dataset(self, path: Path | None) -> None:
        """Train on ``path`` from now on; list the models of its models folder."""
        self._dataset = Path(path).resolve() if path is not None else None
        if self._dataset is None:
            self.form.set_dataset_text("no dataset open")
            self._models_dir = None
        else:
            self.form.set_dataset_text(f"train split of {self._dataset.name}", str(self._dataset))
            remembered = self._per_dataset("models_dirs").get(str(self._dataset))
            self._models_dir = Path(remembered) if remembered else self.default_models_dir()
        self.model_list.set_active(None)
        self.model_list.set_folder(self._models_dir)
        active = (
            self._per_dataset("active_models").get(str(self._dataset)) if self._dataset else None
        )
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
        path = self._models_dir = Path(path)
        self._remember("models_dirs", None if path == self.default_models_dir() else path)
        remove_stale_model_temp_files(path)  # leftovers of checkpoint writes killed midway
        self.model_list.set_folder(path)
        self._update_enabled()

    def choose_models_dir(self) -> None:
        if self._dataset is None:
            return
        start = (
            self._models_dir if self._models_dir and self._models_dir.is_dir() else self._dataset
        )
        chosen = QFileDialog.getExistingDirectory(self, "Models folder", str(start))
        if chosen:
            self.set_models_dir(Path(chosen))

    # ----------------------------------------------------------------- models
    def models(self) -> list[Any]:
        """The models listed (``ModelInfo``, newest first)."""
        return self.model_list.models()

    def active_model(self) -> Path | None:
        return self.model_list.active()

    def _set_active(self, path: Path, dataset: Path | None = None) -> None:
        self.model_list.set_active(Path(path))
        self._remember("active_models", Path(path), dataset)
        self.model_activated.emit(Path(path))

    def _model_deleted(self, path: Path) -> None:
        self.run_view.log(f"Deleted {path}")
        remembered = self._per_dataset("active_models").get(str(self._dataset))
        if remembered and Path(remembered) == Path(path):
            self._remember("active_models", None)

    def _model_selected(self, path: Path | None) -> None:
        if path is None or self._task is not None:
            return  # during a run the plot shows the run
        try:
            history = read_metadata(path).get("history") or []
        except RooftopError:
            return
        self.plot.set_history(history, path.name)

    # ----------------------------------------------------------------- training
    def is_training(self) -> bool:
        return self._task is not None

    #: The main window asks ``is_running()``; same thing.
    is_running = is_training

    def last_result(self) -> Any:
        """The ``TrainResult`` of the last run that finished (None before, or after a failure)."""
        return self._last_result

    def config(self) -> TrainConfig:
        """The validated ``TrainConfig`` of the settings (``ConfigError`` if one is wrong)."""
        return self.form.config()

    def start_training(self) -> bool:
        """Start a run with the panel's settings; False if it could not start."""
        if self._task is not None:
            return False
        if self._dataset is None or self._models_dir is None:
            show_info(self, "No dataset", "Open a dataset first: training uses its train split.")
            return False
        try:
            config = self.form.config()
        except ConfigError as exc:
            text = str(exc)
            show_error(self, "Cannot start training", text[:1].upper() + text[1:])
            return False
        dataset, models_dir = self._dataset, self._models_dir
        init_from = self.form.init_model()
        if init_from is not None and not init_from.is_file():
            show_error(self, "Cannot start training", f"{init_from}: model file not found")
            return False
        self._run_dataset, self._last_result = dataset, None
        # open settings fold to their summary while the run trains, so its curves and log get
        # the room (at 1366 x 768 they were squeezed to a strip), and open again when it ends
        self._unfold_after_run = not self.form.is_folded()
        self.form.set_folded(True, remember=False)
        self.run_view.begin(config, dataset)
        if init_from is not None:
            self.run_view.log(
                f"Starting from the weights of {init_from} (its architecture; a fresh "
                "optimizer and schedule)."
            )

        from rooftop_gui.active_learning import live_weights_hook

        def live_on() -> bool:  # (read in the worker: a plain attribute, not the widget)
            return self.live_preview_on

        def work(on_progress: Callable[[Any], None], should_stop: Callable[[], bool]) -> Any:
            import inspect

            run = run_training  # (looked up now: tests replace it with plainer fakes)
            extra = {}
            if "on_weights" in inspect.signature(run).parameters:
                extra["on_weights"] = live_weights_hook(config, on_progress, live_on)
            if init_from is not None:
                extra["init_from"] = init_from
            return run(
                dataset, models_dir, config, throttle_batches(on_progress), should_stop, **extra
            )

        self._task = self.runner.start(
            work,
            on_progress=self._on_progress,
            on_finished=self._on_finished,
            on_failed=self._on_failed,
            on_done=self._on_done,
            name="training",
        )
        self._update_enabled()
        self.training_running.emit(True)
        return True

    def stop_training(self) -> None:
        """Ask the run to stop after the current batch (it still saves its model)."""
        if self._task is None or self._task.stop_requested:
            return
        self._task.request_stop()
        self.run_view.stopping()
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

    def _live_toggled(self, on: bool) -> None:
        self.live_preview_on = bool(on)
        self.settings.setValue("training/live_preview", bool(on))

    # ----------------------------------------------------------------- events (GUI thread)
    def _on_progress(self, event: Any) -> None:
        if isinstance(event, BatchProgress):
            self.run_view.batch(event)
        elif isinstance(event, EpochResult):
            self.run_view.epoch(event)
        elif isinstance(event, TrainingStarted):
            self.run_view.started(event)
        elif type(event).__name__ == "LiveWeights":
            self.live_weights.emit(event)

    def _on_finished(self, result: Any) -> None:
        self._last_result = result
        path = Path(result.model_path)
        self.run_view.finished(result)
        self.model_list.refresh()
        dataset = self._run_dataset
        if dataset is not None and dataset != self._dataset:
            # another dataset was opened meanwhile: the model is its own dataset's active model
            # (offered when that dataset is opened again), never forced on the open one
            self._remember("active_models", path, dataset)
            self.run_view.log(
                f"{path.name} was trained on {dataset.name}, not the open dataset: "
                f"open {dataset.name} again to use it"
            )
            return
        self._set_active(path, dataset=dataset)

    def _on_failed(self, error: BaseException) -> None:
        if isinstance(error, Stopped):
            self.run_view.log("Stopped before the first batch finished: no model saved.")
            return
        text = describe(error)
        self.run_view.log(f"Error: {text}")
        if not isinstance(error, RooftopError):
            log.error("training failed:\n%s", format_details(error))
        if not self._shutting_down:
            show_error(self, "Training failed", text)

    def _on_done(self) -> None:
        self._task = None
        if self._unfold_after_run:
            self._unfold_after_run = False
            self.form.set_folded(False, remember=False)
        result = self._last_result
        self.run_view.done(Path(result.model_path) if result is not None else None)
        self._update_enabled()
        self.training_running.emit(False)

    def _update_enabled(self) -> None:
        running = self._task is not None
        self.form.set_running(running)
        self.model_list.set_running(running)
        self.run_view.set_running(
            running, self._dataset is not None, running and self._task.stop_requested
        )
        self.start_button.setText(
            f"Train for {self.form.budget_text()}"
            if self.form.uses_time_budget()
            else f"Train {self.form.budget_text()}"
        )
