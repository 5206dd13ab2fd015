"""The Generate-dataset dialog: form errors stay in the dialog; a real run makes a dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from core.progress import Progress
from rooftop_gui.generate_dialog import GenerateDialog
from rooftop_gui.settings import make_settings
from rooftop_gui.workers import TaskRunner


def test_missing_inputs_are_explained_in_the_dialog(qtbot):
    dialog = GenerateDialog(TaskRunner(), make_settings())
    qtbot.addWidget(dialog)
    dialog.start()
    assert "choose the large image" in dialog.message.text()
    assert dialog.result is None


def test_generates_a_dataset_with_progress(qtbot, tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    mask = np.zeros((256, 256), np.uint8)
    mask[40:120, 60:200] = 255
    Image.fromarray(mask).save(tmp_path / "big_mask.png")
    dialog = GenerateDialog(
        TaskRunner(), make_settings(), tmp_path / "big.png", tmp_path / "big_mask.png"
    )
    qtbot.addWidget(dialog)
    dialog.plan_edit.setPlainText("64:0.5\n# a comment\n")
    dialog.resize_box.setChecked(False)
    dialog.out_edit.setText(str(tmp_path / "out"))
    events, show = [], dialog._on_progress
    dialog._on_progress = lambda event: (events.append(event), show(event))
    with qtbot.waitSignal(dialog.accepted, timeout=30_000):
        dialog.start()
    assert dialog.result_dir == tmp_path / "out"
    total = dialog.result.n_train + dialog.result.n_test
    assert events and all(isinstance(e, Progress) and e.unit == "patches" for e in events)
    assert events[-1].done == events[-1].total == total
    assert dialog.progress.maximum() == total and dialog.progress.format() == "%v / %m patches"
    assert any((tmp_path / "out" / "train" / "data").iterdir())


def test_bad_patch_plan_line_is_named(qtbot, tmp_path):
    dialog = GenerateDialog(TaskRunner(), make_settings(), tmp_path / "a.png", tmp_path / "m.png")
    qtbot.addWidget(dialog)
    dialog.plan_edit.setPlainText("512:0.25\nbanana")
    dialog.out_edit.setText(str(tmp_path / "out"))
    dialog.start()
    assert "line 2" in dialog.message.text()


def test_a_small_tile_gets_a_plan_that_fits_and_a_writable_output(qtbot, tmp_path, monkeypatch):
    """A 650 px tile (the size of a SpaceNet tile) with the default plan: the 1024 px windows are
    dropped instead of refusing with command-line wording; the output folder is beside it."""
    Image.fromarray(np.zeros((650, 650, 3), np.uint8)).save(tmp_path / "tile.png")
    dialog = GenerateDialog(TaskRunner(), make_settings(), tmp_path / "tile.png")
    qtbot.addWidget(dialog)
    assert dialog.plan_edit.toPlainText().splitlines() == ["512:0.25", "256:0.5"]
    assert "650 x 650" in dialog.message.text()
    assert dialog.out_edit.text() == str(tmp_path / "tile_dataset")
    assert str(tmp_path / "tile_dataset") in dialog.out_note.text()
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((100, 90, 3), np.uint8)).save(tiny)
    dialog.image_chosen(tiny)
    assert dialog.plan_edit.toPlainText() == "64:0.5"


def test_an_unwritable_image_folder_sends_the_dataset_to_the_data_folder(tmp_path, monkeypatch):
    import os

    from rooftop_gui import generate_dialog

    monkeypatch.setenv("ROOFTOP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path / "share")
    out = generate_dialog.default_output_folder(tmp_path / "share" / "town.png")
    assert out == tmp_path / "data" / "datasets" / "town_dataset"


def test_without_a_mask_the_images_are_cut_for_painting_later(qtbot, tmp_path):
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    dialog = GenerateDialog(TaskRunner(), make_settings(), tmp_path / "big.png")
    qtbot.addWidget(dialog)
    dialog.plan_edit.setPlainText("64:0.5")
    dialog.resize_box.setChecked(False)
    dialog.out_edit.setText(str(tmp_path / "out"))
    with qtbot.waitSignal(dialog.accepted, timeout=30_000):
        dialog.start()
    assert list((tmp_path / "out" / "train" / "data").glob("*.png"))
    assert not list((tmp_path / "out" / "train" / "label").glob("*.png"))
