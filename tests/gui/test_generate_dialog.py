"""The Generate-dataset dialog: form errors stay in the dialog; a real run makes a dataset."""

from __future__ import annotations

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
    dialog = GenerateDialog(TaskRunner(), make_settings(), tmp_path / "big.png",
                            tmp_path / "big_mask.png")
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
