"""Saving a label re-scores its image: the browser's IoU column and the split's metrics follow the
label on disk, not the one the prediction was first scored against.

The model is a real (untrained) checkpoint run by the real workers; only its output is replaced by
a fixed probability map (an untrained model predicts about 0.5 everywhere, which makes no useful
mask), so that the expected scores can be worked out here.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QPointF, Qt
from PySide6.QtTest import QTest

from core import scores
from core.io import read_mask
from core.metrics import Confusion
from core.postprocess import to_mask
from rooftop_gui.main_window import MainWindow
from rooftop_gui.settings import make_settings
from tests.factories import save_prescribed_model

SIZE = 64


def fixed_probability() -> np.ndarray:
    """0.9 in a 24 px core, 0.6 in the 32 px square around it, 0.1 elsewhere."""
    prob = np.full((SIZE, SIZE), 0.1, np.float32)
    prob[16:48, 16:48] = 0.6
    prob[20:44, 20:44] = 0.9
    return prob


@pytest.fixture
def model_file(tmp_path):
    return save_prescribed_model(tmp_path, {"threshold": 0.5})


@pytest.fixture
def fixed_predictions(monkeypatch):
    """Every prediction (image, split) is :func:`fixed_probability`, made by the real workers."""
    import core.predict

    def predict(model, image, *args, **kwargs):
        assert image.shape[:2] == (SIZE, SIZE)
        return fixed_probability()

    monkeypatch.setattr(core.predict, "predict_probabilities", predict)


@pytest.fixture
def window(qtbot, messages, model_file, fixed_predictions):
    win = MainWindow(settings=make_settings())
    win.resize(1100, 800)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.prediction.wait(30_000)
    win.close()
    win.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def expected(label_file: Path, threshold: float) -> Confusion:
    return Confusion.from_masks(to_mask(fixed_probability(), threshold, 0), read_mask(label_file))


def predicted_split(
    win, qtbot, dataset: Path, model_file: Path, split: str = "test", name: str = "00006.png"
):
    """Open ``dataset``, show ``split/name``, predict the split at threshold 0.5."""
    assert win.open_dataset(dataset)
    assert win.prediction.set_model(model_file)
    win.layers.set_threshold(0.5)
    win.layers.set_dilation(False)
    assert win.browser.select(split, name)
    qtbot.waitUntil(
        lambda: win.annotation.sample is not None and win.annotation.sample.name == name
    )
    win.prediction.predict_split(split)
    assert win.prediction.wait(60_000)
    qtbot.waitUntil(lambda: win.canvas.displayed_mask() is not None)
    return win.annotation


def save_with_ctrl_s(win, qtbot) -> None:
    with qtbot.waitSignal(win.annotation.label_saved, timeout=5000):
        QTest.keyClick(win.canvas, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)


def paint_a_stroke(win) -> None:
    """A brush stroke with real mouse events, across the top left of the image."""
    win.annotation.tool_actions["brush"].trigger()
    viewport = win.canvas.viewport()
    points = [win.canvas.mapFromScene(QPointF(x, 3.5)) for x in (2.5, 10.5, 20.5)]
    QTest.mouseMove(viewport, points[0])
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, points[0])
    for point in points[1:]:
        QTest.mouseMove(viewport, point)
    QTest.mouseRelease(
        viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, points[-1]
    )


def shown_iou(win, key) -> str:
    model = win.browser.model
    return model.data(model.index(model.row_of(key), model.IOU))


def split_iou(win) -> float:
    return win.prediction.metric_values()["iou"]


def hold_scoring_after_reading(monkeypatch, name: str) -> tuple[threading.Event, threading.Event]:
    """Make the scoring workers stop right after reading label ``name`` (``read_old`` is set)
    until ``go_on`` is set."""
    read_old, go_on = threading.Event(), threading.Event()
    real = scores.label_confusion

    def slow_confusion(prob, label_path, threshold, dilation):
        conf = real(prob, label_path, threshold, dilation)
        if Path(label_path).name == name:
            read_old.set()
            go_on.wait(10)
        return conf

    monkeypatch.setattr(scores, "label_confusion", slow_confusion)
    return read_old, go_on


def test_saving_an_edited_label_rescores_its_image_and_the_split(
    window, qtbot, tiny_dataset, model_file, messages
):
    win, key = window, ("test", "00006.png")
    label_file = tiny_dataset / "test" / "label" / "00006.png"
    ctl = predicted_split(win, qtbot, tiny_dataset, model_file)
    before = win.browser.model.iou(key)
    assert before == pytest.approx(expected(label_file, 0.5).iou) and before < 0.9
    assert shown_iou(win, key) == f"{before:.3f}"
    labels = {
        n: tiny_dataset / "test" / "label" / n for n in ("00006.png", "00007.png", "00008.png")
    }
    split_before = split_iou(win)

    ctl.accept_all_action.trigger()  # the label becomes the prediction as shown
    assert win.browser.model.iou(key) == before  # unsaved: nothing changes yet
    save_with_ctrl_s(win, qtbot)

    assert np.array_equal(read_mask(label_file), to_mask(fixed_probability(), 0.5, 0))
    assert win.browser.model.iou(key) == pytest.approx(1.0)
    assert shown_iou(win, key) == "1.000"
    assert win.prediction.scores.per_image[key].iou == pytest.approx(1.0)
    total = sum((expected(path, 0.5) for path in labels.values()), Confusion())
    assert split_iou(win) == pytest.approx(total.iou) and split_iou(win) > split_before
    assert win.prediction.metrics.item(0, 0).text() == f"{total.iou:.4f}"

    # a new threshold re-scores the split from the cache against the saved label
    win.layers.set_threshold(0.7)
    qtbot.waitUntil(lambda: win.prediction.scores.threshold == 0.7, timeout=10_000)
    assert win.browser.model.iou(key) == pytest.approx(expected(label_file, 0.7).iou)
    assert win.browser.model.iou(key) == pytest.approx(24 * 24 / (32 * 32))
    assert not messages.calls  # no error on the way


def test_a_new_label_is_scored_when_saved(window, qtbot, make_dataset, model_file, messages):
    dataset = make_dataset("unlabelled", with_labels=False)
    win, key = window, ("test", "00007.png")
    ctl = predicted_split(win, qtbot, dataset, model_file, name="00007.png")
    assert win.browser.model.iou(key) is None and not win.prediction.scores.per_image

    ctl.accept_all_action.trigger()
    save_with_ctrl_s(win, qtbot)

    label_file = dataset / "test" / "label" / "00007.png"
    assert label_file.is_file()
    assert win.browser.model.iou(key) == pytest.approx(1.0)
    assert list(win.prediction.scores.per_image) == [key]
    assert split_iou(win) == pytest.approx(1.0)
    assert not messages.calls


def test_without_a_known_prediction_the_stale_iou_is_dropped(
    window, qtbot, tiny_dataset, model_file
):
    win, key = window, ("test", "00006.png")
    predicted_split(win, qtbot, tiny_dataset, model_file)
    assert win.browser.model.iou(key) is not None
    win.prediction.cache.clear()  # the prediction fell out of the cache...
    win.canvas.set_probability(None)  # ...and is not on the canvas
    paint_a_stroke(win)
    assert win.isWindowModified()
    save_with_ctrl_s(win, qtbot)
    assert win.browser.model.iou(key) is None and shown_iou(win, key) == ""
    assert key not in win.prediction.scores.per_image


def test_a_save_during_a_rescore_is_not_overwritten_by_its_stale_score(
    window, qtbot, tiny_dataset, model_file, monkeypatch
):
    """The re-scoring worker reads the old label, the label is saved, then the worker finishes:
    the split keeps the score against the saved label."""
    win, key = window, ("test", "00006.png")
    ctl = predicted_split(win, qtbot, tiny_dataset, model_file)
    read_old, go_on = hold_scoring_after_reading(monkeypatch, "00006.png")
    win.layers.set_threshold(0.55)  # same mask as 0.5: 0.6 and 0.9 are roof, 0.1 is not
    qtbot.waitUntil(read_old.is_set, timeout=10_000)
    ctl.accept_all_action.trigger()
    save_with_ctrl_s(win, qtbot)
    assert win.browser.model.iou(key) == pytest.approx(1.0)
    go_on.set()
    qtbot.waitUntil(lambda: win.prediction.scores.threshold == 0.55, timeout=10_000)
    qtbot.waitUntil(lambda: win.prediction._rescore_task is None, timeout=10_000)
    assert win.prediction.scores.per_image[key].iou == pytest.approx(1.0)
    assert win.browser.model.iou(key) == pytest.approx(1.0)


def test_a_save_during_a_split_prediction_is_scored_against_the_saved_label(
    window, qtbot, tiny_dataset, model_file, monkeypatch
):
    """The split's worker scores the old label, the label is saved, then its result arrives: the
    image is scored against the saved label."""
    win, key = window, ("test", "00006.png")
    label_file = tiny_dataset / "test" / "label" / "00006.png"
    assert win.open_dataset(tiny_dataset)
    assert win.prediction.set_model(model_file)
    win.layers.set_threshold(0.5)
    win.layers.set_dilation(False)
    assert win.browser.select("test", "00006.png")
    qtbot.waitUntil(
        lambda: win.annotation.sample is not None and win.annotation.sample.name == "00006.png"
    )
    read_old, go_on = hold_scoring_after_reading(monkeypatch, "00006.png")
    old = expected(label_file, 0.5)
    win.prediction.predict_split("test")
    qtbot.waitUntil(read_old.is_set, timeout=30_000)
    paint_a_stroke(win)
    save_with_ctrl_s(win, qtbot)
    new = expected(label_file, 0.5)
    assert new.iou != pytest.approx(old.iou)
    go_on.set()
    assert win.prediction.wait(30_000)
    qtbot.waitUntil(lambda: len(win.prediction.scores.per_image) == 3, timeout=10_000)
    assert win.prediction.scores.per_image[key].iou == pytest.approx(new.iou)
    assert win.browser.model.iou(key) == pytest.approx(new.iou)
