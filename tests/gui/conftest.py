"""GUI test fixtures: no QThread left running, a tiny dataset on disk, dialogs that never block."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rooftop_gui import workers


@pytest.fixture(autouse=True)
def _no_thread_left_running(request):
    """Fail the test if one of our QThreads is still running when it ends."""
    yield
    if "qapp" not in request.fixturenames and "qtbot" not in request.fixturenames:
        return
    leftover = workers.live_threads()
    if leftover:
        workers.stop_all(10_000)
        pytest.fail(f"QThread(s) left running after the test: {leftover}")


def _write_tiny_dataset(root: Path, n_train: int = 6, n_test: int = 3, size: int = 64,
                        with_labels: bool = True, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    index = 0
    for split, count in (("train", n_train), ("test", n_test)):
        (root / split / "data").mkdir(parents=True, exist_ok=True)
        (root / split / "label").mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            name = f"{index:05d}.png"
            image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            mask = np.zeros((size, size), np.uint8)
            y, x = rng.integers(0, size // 2, 2)
            mask[y:y + size // 3, x:x + size // 3] = 255
            image[mask > 0] = (200, 80, 60)
            Image.fromarray(image).save(root / split / "data" / name)
            if with_labels:
                Image.fromarray(mask).save(root / split / "label" / name)
            index += 1
    return root


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """A 6 train + 3 test dataset of 64 x 64 images with square roofs, made in milliseconds."""
    return _write_tiny_dataset(tmp_path / "tiny")


@pytest.fixture
def make_dataset(tmp_path):
    """Factory: ``make_dataset(name, n_train=..., n_test=..., size=..., seed=...)``."""
    def make(name: str = "ds", **kwargs) -> Path:
        return _write_tiny_dataset(tmp_path / name, **kwargs)
    return make


class MessageRecorder:
    """Replaces QMessageBox's static functions: records calls instead of opening a modal box."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def texts(self) -> list[str]:
        return [f"{title}: {text}" for _kind, title, text in self.calls]


@pytest.fixture
def messages(monkeypatch) -> MessageRecorder:
    from PySide6.QtWidgets import QMessageBox

    recorder = MessageRecorder()

    def make(kind, answer):
        def fake(parent, title, text, *args, **kwargs):
            recorder.calls.append((kind, title, text))
            return answer
        return staticmethod(fake)

    monkeypatch.setattr(QMessageBox, "critical", make("critical", QMessageBox.StandardButton.Ok))
    monkeypatch.setattr(QMessageBox, "warning", make("warning", QMessageBox.StandardButton.Ok))
    monkeypatch.setattr(QMessageBox, "information", make("information", QMessageBox.StandardButton.Ok))
    monkeypatch.setattr(QMessageBox, "question", make("question", QMessageBox.StandardButton.Yes))
    return recorder


def configure_quick_training(panel, epochs: int = 2) -> None:
    """Panel settings for a run of a fraction of a second per epoch on 64 x 64 images."""
    panel.arch_box.setCurrentIndex(panel.arch_box.findData("prescribed"))
    panel.epochs_spin.setValue(epochs)
    panel.batch_spin.setValue(2)
    panel.crop_spin.setValue(64)
    panel.samples_spin.setValue(4)
    panel.device_box.setCurrentIndex(panel.device_box.findData("cpu"))
    panel.time_check.setChecked(False)


def save_prescribed_model(folder: Path, metadata: dict) -> Path:
    """An untrained prescribed model saved as ``folder/models/model_v1.safetensors``."""
    torch = pytest.importorskip("torch")
    from core.checkpoint import save_checkpoint
    from core.models import build_model

    torch.manual_seed(0)
    (folder / "models").mkdir()
    return save_checkpoint(folder / "models" / "model_v1.safetensors", build_model("prescribed"),
                           metadata)
