"""The window removes leftover temporary files of killed writes where it writes: the dataset's
folders and its models folder (on opening the dataset) and an export folder (on exporting)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QCoreApplication, QEvent

from core.io import STALE_TEMP_SECONDS, read_mask
from core.postprocess import to_mask
from rooftop_gui.main_window import MainWindow
from rooftop_gui.settings import make_settings

OLD = STALE_TEMP_SECONDS + 60


def _touch(path: Path, age: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"half a file")
    when = time.time() - age
    os.utime(path, (when, when))
    return path


@pytest.fixture
def window(qtbot, messages):
    win = MainWindow(settings=make_settings())
    win.resize(1100, 800)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.close()
    win.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def test_opening_a_dataset_cleans_its_folders_and_its_models_folder(window, tiny_dataset):
    stale = [
        _touch(tiny_dataset / "train" / "label" / ".00001.png.abcdefgh.tmp", OLD),
        _touch(tiny_dataset / "models" / ".model_v2.safetensors.k2j3h4g5.tmp", OLD),
    ]
    fresh = _touch(tiny_dataset / "models" / ".model_v3.safetensors.zzzzzzzz.tmp", 2)
    other = _touch(tiny_dataset / "models" / "notes.tmp", OLD)
    foreign = _touch(tiny_dataset / "models" / ".notes.txt.abcdefgh.tmp", OLD)  # not a model's
    assert window.open_dataset(tiny_dataset)
    assert window.training.models_dir() == tiny_dataset.resolve() / "models"
    assert not any(p.exists() for p in stale)
    assert fresh.exists() and other.exists() and foreign.exists()


def test_exporting_cleans_only_the_leftovers_of_the_files_it_writes(
    window, qtbot, tiny_dataset, tmp_path
):
    assert window.open_dataset(tiny_dataset)
    assert window.browser.select("test", "00006.png")
    qtbot.waitUntil(lambda: window.canvas.image() is not None)
    prob = np.zeros((64, 64), np.float32)
    prob[10:30, 5:40] = 0.9
    window.canvas.set_probability(prob)
    out = tmp_path / "export"
    ours = _touch(out / ".00006.png.abcdefgh.tmp", OLD)
    fresh = _touch(out / ".00006.png.zzzzzzzz.tmp", 2)  # another export of it, running now
    theirs = _touch(out / ".holiday.jpg.abcdefgh.tmp", OLD)  # the folder is the user's
    task = window.prediction.export("masks", out, scope="image")
    assert task is not None and task.wait(30_000)
    qtbot.waitUntil(lambda: not window.prediction.is_busy())
    assert np.array_equal(
        read_mask(out / "00006.png"),
        to_mask(prob, window.canvas.state.threshold, window.canvas.state.dilation),
    )
    assert not ours.exists()
    assert fresh.exists() and theirs.exists()
