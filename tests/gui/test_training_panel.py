"""Training panel: real short runs in a QThread (responsive UI, stop saves, errors reach a dialog),
the models list (activate, delete), settings remembered, no torch at import."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from PySide6.QtCore import QElapsedTimer, QSettings, Qt, QTimer
from PySide6.QtWidgets import QFileDialog

from core.progress import Stopped
from rooftop_gui import training_panel as tp
from rooftop_gui.training_panel import TrainingPanel
from tests.gui.helpers import configure_quick_training

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------------------------

@pytest.fixture
def settings(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


class Dialogs:
    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []
        self.infos: list[tuple[str, str]] = []
        self.confirms: list[str] = []
        self.answer = True


@pytest.fixture
def dialogs(monkeypatch) -> Dialogs:
    rec = Dialogs()
    monkeypatch.setattr(tp, "show_error", lambda parent, title, text: rec.errors.append((title, text)))
    monkeypatch.setattr(tp, "show_info", lambda parent, title, text: rec.infos.append((title, text)))

    def confirm(parent, title, text):
        rec.confirms.append(text)
        return rec.answer

    monkeypatch.setattr(tp, "confirm", confirm)
    return rec


@pytest.fixture
def panel(qtbot, settings, dialogs):
    widget = TrainingPanel(settings)
    qtbot.addWidget(widget)
    widget.resize(400, 900)
    widget.show()
    yield widget
    assert widget.shutdown(20_000)


def wait_idle(qtbot, panel: TrainingPanel, timeout: int = 60_000) -> None:
    qtbot.waitUntil(lambda: not panel.is_training(), timeout=timeout)


def assert_ready(panel: TrainingPanel) -> None:
    assert not panel.is_training()
    assert panel.start_button.isEnabled()
    assert not panel.stop_button.isEnabled()
    assert panel.stop_button.text() == "Stop"
    assert panel.arch_box.isEnabled() and panel.epochs_spin.isEnabled()


# --------------------------------------------------------------------------------------------
# real training runs
# --------------------------------------------------------------------------------------------

def test_short_run_adds_model_emits_it_and_keeps_ui_responsive(qtbot, panel, tiny_dataset):
    panel.set_dataset(tiny_dataset)
    configure_quick_training(panel, epochs=2)
    running: list[bool] = []
    panel.training_running.connect(running.append)

    clock, gaps = QElapsedTimer(), []
    ticker = QTimer()
    ticker.setInterval(10)

    def tick() -> None:
        gaps.append(clock.restart())

    ticker.timeout.connect(tick)
    with qtbot.waitSignal(panel.model_activated, timeout=60_000) as blocker:
        assert panel.start_training()
        assert panel.is_training()
        assert not panel.start_button.isEnabled() and panel.stop_button.isEnabled()
        assert not panel.arch_box.isEnabled()
        clock.start()
        ticker.start()
    wait_idle(qtbot, panel)
    ticker.stop()

    path = Path(blocker.args[0])
    assert path.is_file() and path.parent == tiny_dataset.resolve() / "models"
    assert panel.active_model() == path
    assert [m.path for m in panel.models()] == [path]
    assert panel.models_tree.currentItem().text(0) == "model_v1"
    assert panel.plot.epochs == [1, 2] and len(panel.plot.val_iou) == 2
    text = panel.log_view.toPlainText()
    assert "Epoch 2/2" in text and "model_v1.safetensors" in text
    assert running == [True, False]
    assert_ready(panel)
    # Responsiveness, not speed: the GUI thread's timer kept firing while the model trained.
    assert len(gaps) > 5
    print(f"max event-loop gap while training: {max(gaps)} ms over {len(gaps)} ticks")
    assert max(gaps) < 1000, f"event loop blocked for {max(gaps)} ms"


def test_stop_finishes_within_a_batch_and_saves_the_model(qtbot, panel, tiny_dataset):
    panel.set_dataset(tiny_dataset)
    configure_quick_training(panel, epochs=10_000)
    activated: list[Path] = []
    panel.model_activated.connect(activated.append)
    assert panel.start_training()
    qtbot.waitUntil(lambda: panel.plot.point_count() >= 1, timeout=60_000)
    at_stop = panel.plot.point_count()
    qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)
    assert panel.stop_button.text() == "Stopping…" and not panel.stop_button.isEnabled()
    wait_idle(qtbot, panel, timeout=30_000)

    assert panel.last_result().stopped == "user"
    assert len(activated) == 1 and activated[0].is_file()
    assert panel.plot.point_count() <= at_stop + 3  # epochs of 2 batches: it stopped at once
    assert "stopped by you" in panel.log_view.toPlainText()
    assert [m.path for m in panel.models()] == activated
    assert_ready(panel)


def test_shutdown_stops_and_waits_for_the_thread(qtbot, panel, tiny_dataset):
    panel.set_dataset(tiny_dataset)
    configure_quick_training(panel, epochs=10_000)
    assert panel.start_training()
    qtbot.waitUntil(lambda: panel.plot.point_count() >= 1, timeout=60_000)
    assert panel.shutdown(20_000)
    assert not panel.is_training()
    assert (tiny_dataset / "models" / "model_v1.safetensors").is_file()


def test_training_error_reaches_a_dialog_and_the_panel_runs_again(qtbot, panel, dialogs,
                                                                  make_dataset, tiny_dataset):
    bad = make_dataset("bad")
    (bad / "train" / "data" / "00001.png").write_bytes(b"this is not a PNG")
    panel.set_dataset(bad)
    configure_quick_training(panel)
    assert panel.start_training()
    wait_idle(qtbot, panel)

    assert len(dialogs.errors) == 1
    title, text = dialogs.errors[0]
    assert title == "Training failed" and "00001.png" in text
    assert "Error:" in panel.log_view.toPlainText()
    assert panel.models() == [] and panel.active_model() is None
    assert_ready(panel)

    panel.set_dataset(tiny_dataset)
    with qtbot.waitSignal(panel.model_activated, timeout=60_000):
        assert panel.start_training()
    wait_idle(qtbot, panel)
    assert len(dialogs.errors) == 1
    assert_ready(panel)


def test_unexpected_exception_in_the_worker_is_shown(qtbot, panel, dialogs, tiny_dataset,
                                                     monkeypatch):
    def failing(dataset_dir, models_dir, config, on_progress, should_stop):
        time.sleep(0.05)
        raise RuntimeError("boom")

    monkeypatch.setattr(tp, "run_training", failing)
    panel.set_dataset(tiny_dataset)
    with qtbot.waitSignal(panel.training_running, timeout=10_000,
                          check_params_cb=lambda running: not running):
        panel.start_training()
    assert dialogs.errors == [("Training failed", "RuntimeError: boom")]
    assert_ready(panel)


def test_a_stop_before_the_first_batch_is_not_an_error(qtbot, panel, dialogs, tiny_dataset,
                                                       monkeypatch):
    def slow_start(dataset_dir, models_dir, config, on_progress, should_stop):
        while not should_stop():
            time.sleep(0.01)
        raise Stopped("training was stopped before the first batch finished; nothing to save")

    monkeypatch.setattr(tp, "run_training", slow_start)
    panel.set_dataset(tiny_dataset)
    panel.start_training()
    panel.stop_training()
    wait_idle(qtbot, panel, timeout=10_000)
    assert dialogs.errors == []
    assert "no model saved" in panel.log_view.toPlainText()
    assert_ready(panel)


def test_config_reaches_the_worker_and_progress_is_shown(qtbot, panel, tiny_dataset, monkeypatch):
    @dataclass(frozen=True)
    class BatchProgress:  # named like core.training's event: the panel dispatches on the name
        epoch: int
        epochs: int
        batch: int
        batches: int
        loss: float

    seen: dict = {}
    release = []

    def fake(dataset_dir, models_dir, config, on_progress, should_stop):
        seen.update(config=config, dataset=dataset_dir, models=models_dir)
        on_progress(BatchProgress(2, 3, 1, 4, 0.25))
        on_progress(BatchProgress(2, 3, 4, 4, 0.125))  # last of the epoch: never throttled
        while not release and not should_stop():
            time.sleep(0.01)
        raise RuntimeError("done")

    monkeypatch.setattr(tp, "run_training", fake)
    panel.set_dataset(tiny_dataset)
    panel.epochs_spin.setValue(3)
    panel.time_check.setChecked(True)
    panel.time_spin.setValue(2.5)
    panel.lr_box.setCurrentText("3e-4")
    panel.start_training()
    qtbot.waitUntil(lambda: "batch 4/4" in panel.progress_label.text(), timeout=5_000)
    label = panel.progress_label.text()
    assert label.startswith("epoch 2/3 · batch 4/4 · ETA ") and label.endswith("loss 0.1250")
    assert panel.progress.maximum() == 12 and panel.progress.value() == 8
    release.append(True)
    wait_idle(qtbot, panel, timeout=10_000)
    assert seen["dataset"] == tiny_dataset.resolve()
    assert seen["models"] == tiny_dataset.resolve() / "models"
    assert seen["config"]["max_minutes"] == 2.5 and seen["config"]["lr"] == 3e-4


def test_start_without_dataset_says_so(panel, dialogs):
    panel.set_dataset(None)
    assert not panel.start_button.isEnabled()
    assert panel.start_training() is False
    assert dialogs.infos and "Open a dataset" in dialogs.infos[0][1]
    assert not panel.is_training()


def test_bad_learning_rate_is_refused(panel, dialogs, tiny_dataset):
    panel.set_dataset(tiny_dataset)
    panel.lr_box.setEditText("-1")
    assert panel.start_training() is False
    assert dialogs.errors and "learning rate" in dialogs.errors[0][1]


# --------------------------------------------------------------------------------------------
# models list
# --------------------------------------------------------------------------------------------

def _write_model(models_dir: Path, version: int, val_iou: float) -> Path:
    from core.checkpoint import save_checkpoint
    from core.models import build_model

    history = [{"epoch": e, "epochs": 3, "train_loss": 1.0 / e, "val_loss": 1.1 / e,
                "val_iou": val_iou * e / 3} for e in (1, 2, 3)]
    path = models_dir / f"model_v{version}.safetensors"
    save_checkpoint(path, build_model("prescribed"),
                    {"history": history, "metrics": {"val_iou": val_iou}, "threshold": 0.5})
    return path


def test_models_list_activate_restore_and_delete(qtbot, panel, dialogs, settings, tiny_dataset):
    models = tiny_dataset / "models"
    models.mkdir()
    first, second = _write_model(models, 1, 0.5), _write_model(models, 2, 0.75)
    panel.set_dataset(tiny_dataset)
    assert [m.version for m in panel.models()] == [2, 1]  # newest first
    top = panel.models_tree.topLevelItem(0)
    assert [top.text(c) for c in (0, 2, 3, 4)] == ["model_v2", "prescribed", "0.750", "3"]
    assert panel.active_model() is None

    # picking one shows its curves; double click makes it the active model
    item = panel.models_tree.topLevelItem(1)
    panel.models_tree.setCurrentItem(item)
    assert panel.plot.epochs == [1, 2, 3]
    with qtbot.waitSignal(panel.model_activated) as blocker:
        panel.models_tree.itemDoubleClicked.emit(item, 0)
    assert Path(blocker.args[0]) == first.resolve()
    assert panel.active_model() == first.resolve() and item.font(0).bold()

    # the active model of a dataset comes back with it
    other = TrainingPanel(settings)
    qtbot.addWidget(other)
    with qtbot.waitSignal(other.model_activated) as blocker:
        other.set_dataset(tiny_dataset)
    assert Path(blocker.args[0]) == first.resolve()

    # delete asks first; "No" keeps the file
    panel.models_tree.setCurrentItem(panel.models_tree.topLevelItem(0))
    dialogs.answer = False
    panel.delete_selected()
    assert second.exists() and len(dialogs.confirms) == 1
    dialogs.answer = True
    panel.delete_selected()
    assert not second.exists()
    assert [m.version for m in panel.models()] == [1]
    assert panel.active_model() == first.resolve()
    # deleting the active model leaves none active
    panel.models_tree.setCurrentItem(panel.models_tree.topLevelItem(0))
    qtbot.mouseClick(panel.delete_button, Qt.MouseButton.LeftButton)
    assert not first.exists() and panel.models() == [] and panel.active_model() is None
    assert not panel.use_button.isEnabled()


# --------------------------------------------------------------------------------------------
# settings
# --------------------------------------------------------------------------------------------

def test_defaults_for_a_laptop(panel):
    assert panel.config() == {
        "arch": "liteunet", "epochs": 20, "batch_size": 8, "lr": 2e-3, "loss": "bce+dice",
        "device": "auto", "precision": "auto", "crop_size": 256, "samples_per_epoch": 256,
        "max_minutes": None}
    assert not panel.time_spin.isEnabled()


def test_hyper_parameters_and_models_folder_are_remembered(qtbot, panel, settings, make_dataset,
                                                           tmp_path, monkeypatch):
    panel.arch_box.setCurrentIndex(panel.arch_box.findData("resunet"))
    panel.epochs_spin.setValue(7)
    panel.batch_spin.setValue(3)
    panel.lr_box.setEditText("3e-4")
    panel.loss_box.setCurrentIndex(panel.loss_box.findData("dice"))
    panel.crop_spin.setValue(128)
    panel.samples_spin.setValue(0)  # one crop per image
    panel.device_box.setCurrentIndex(panel.device_box.findData("cpu"))
    panel.precision_box.setCurrentIndex(panel.precision_box.findData("fp32"))
    panel.time_check.setChecked(True)
    panel.time_spin.setValue(12.5)
    first, second = make_dataset("a", n_train=2, n_test=1), make_dataset("b", n_train=2, n_test=1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    panel.set_dataset(first)
    assert panel.models_dir() == first.resolve() / "models"
    assert panel.models_dir_edit.text() == str(first.resolve() / "models")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(elsewhere))
    qtbot.mouseClick(panel.models_dir_button, Qt.MouseButton.LeftButton)
    assert panel.models_dir() == elsewhere
    settings.sync()

    again = TrainingPanel(QSettings(settings.fileName(), QSettings.Format.IniFormat))
    qtbot.addWidget(again)
    assert again.config() == {
        "arch": "resunet", "epochs": 7, "batch_size": 3, "lr": 3e-4, "loss": "dice",
        "device": "cpu", "precision": "fp32", "crop_size": 128, "samples_per_epoch": None,
        "max_minutes": 12.5}
    again.set_dataset(first)
    assert again.models_dir() == elsewhere
    again.set_dataset(second)
    assert again.models_dir() == second.resolve() / "models"


# --------------------------------------------------------------------------------------------
# pure helpers and contracts
# --------------------------------------------------------------------------------------------

def test_names_match_core():
    from core.models import ARCHITECTURES
    from core.training.config import LOSSES

    assert {name for name, _ in tp.ARCHITECTURES} == set(ARCHITECTURES)
    assert {name for name, _ in tp.LOSSES} == set(LOSSES)


def test_precisions_match_core():
    from core.training.config import PRECISIONS

    assert tuple(name for name, _ in tp.PRECISIONS) == PRECISIONS


def test_batch_events_are_throttled_in_the_worker():
    @dataclass(frozen=True)
    class BatchProgress:
        batch: int
        batches: int

    got: list = []
    report = tp.throttle_batches(got.append, interval=10.0)
    for batch in range(1, 101):
        report(BatchProgress(batch, 100))
    report("epoch result")
    assert [getattr(e, "batch", e) for e in got] == [1, 100, "epoch result"]


def test_format_duration():
    assert tp.format_duration(None) == "--:--"
    assert tp.format_duration(5) == "0:05"
    assert tp.format_duration(125.4) == "2:05"
    assert tp.format_duration(3725) == "1:02:05"


def test_panel_module_does_not_import_torch(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from PySide6.QtCore import QSettings
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        from rooftop_gui.training_panel import TrainingPanel
        panel = TrainingPanel(QSettings({str(tmp_path / "s.ini")!r}, QSettings.Format.IniFormat))
        panel.show()
        app.processEvents()
        print("HEAVY", [m for m in ("torch", "core.training.loop", "core.models") if m in sys.modules])
    """)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout
