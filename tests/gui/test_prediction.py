"""A real (untrained, tiny) model end to end: predict image, predict split, export the split."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from core.postprocess import to_mask
from rooftop_gui.main_window import MainWindow
from rooftop_gui.settings import make_settings
from tests.gui.conftest import save_prescribed_model


@pytest.fixture
def model_file(tmp_path):
    return save_prescribed_model(tmp_path, {"metrics": {"val_iou": 0.5}})


def test_window_starts_without_torch_and_loads_it_when_predicting(qtbot, tiny_dataset, model_file,
                                                                  tmp_path, messages):
    win = MainWindow(settings=make_settings())
    qtbot.addWidget(win)
    win.show()
    win.open_dataset(tiny_dataset)
    assert win.prediction.set_model(model_file)
    assert "model_v1" in win.prediction.model_label.text()
    win.layers.set_threshold(0.5)
    win.layers.set_dilation(False)

    # predict the current image: shown as soon as it is done, IoU in the browser
    win.browser.select("test", "00006.png")
    with qtbot.waitSignal(win.prediction.prediction_shown, timeout=30_000):
        win.prediction.predict_image_action.trigger()
    assert win.prediction.wait(30_000)  # the task ends just after the prediction is shown
    prob = win.canvas.probability()
    assert prob is not None and prob.shape == (64, 64) and prob.dtype == np.float32
    assert win.browser.model.iou(("test", "00006.png")) is not None

    # predict the test split: IoU column and metrics table filled
    win.prediction.split_box.setCurrentIndex(win.prediction.split_box.findData("test"))
    win.prediction.predict_split("test")
    assert win.prediction.wait(60_000)
    for name in ("00006.png", "00007.png", "00008.png"):
        assert win.browser.model.iou(("test", name)) is not None, messages.calls
    values = win.prediction.metric_values()
    assert set(values) == {"iou", "f1", "precision", "recall", "accuracy"}
    assert win.prediction.metrics.item(0, 0).text() != ""

    # export the split's masks with dilation on: the same as core.postprocess.to_mask
    win.layers.set_dilation(True, 5)
    win.prediction.scope_box.setCurrentIndex(1)
    task = win.prediction.export("masks", tmp_path / "out", scope="split")
    assert task.wait(60_000)
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["00006.png", "00007.png", "00008.png"]
    cached = win.prediction.cache.get((str(model_file), "test", "00007.png"))
    written = np.asarray(Image.open(tmp_path / "out" / "00007.png")) > 0
    assert np.array_equal(written, to_mask(cached, 0.5, 5))
    assert not messages.calls
    assert "torch" in sys.modules
    win.close()


def test_bad_model_file_is_refused_with_a_message(qtbot, tmp_path, messages):
    win = MainWindow(settings=make_settings())
    qtbot.addWidget(win)
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x80\x04 pickled")
    assert not win.prediction.set_model(bad)
    assert "model.safetensors" in messages.calls[0][2]
    win.close()
