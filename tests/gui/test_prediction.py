"""A real (untrained, tiny) model end to end: predict image, predict split, export the split."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from PIL import Image

from core.io import read_mask
from core.metrics import Confusion
from core.postprocess import to_mask
from rooftop_gui import prediction_panel
from rooftop_gui.main_window import MainWindow
from rooftop_gui.settings import make_settings
from tests.factories import save_prescribed_model


@pytest.fixture
def model_file(tmp_path):
    return save_prescribed_model(tmp_path, {"metrics": {"val_iou": 0.5}})


def core_iou(prob, label_path, threshold=0.5, dilation=0) -> float:
    """The image's IoU as the core computes it: the mask as shown against the label on disk."""
    return Confusion.from_masks(to_mask(prob, threshold, dilation), read_mask(label_path)).iou


def test_window_starts_without_torch_and_loads_it_when_predicting(
    qtbot, tiny_dataset, model_file, tmp_path, messages
):
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
    label_dir = tiny_dataset / "test" / "label"
    assert win.browser.model.iou(("test", "00006.png")) == core_iou(prob, label_dir / "00006.png")

    # predict the test split: IoU column and metrics table filled
    win.prediction.split_box.setCurrentIndex(win.prediction.split_box.findData("test"))
    win.prediction.predict_split("test")
    assert win.prediction.wait(60_000)
    for name in ("00006.png", "00007.png", "00008.png"):
        cached = win.prediction.cached_probability(_sample(win, "test", name))
        assert win.browser.model.iou(("test", name)) == core_iou(cached, label_dir / name), (
            messages.calls
        )
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
    sample = next(s for s in win.browser.samples("test") if s.name == "00007.png")
    cached = win.prediction.cached_probability(sample)
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


def _sample(win, split, name):
    return next(s for s in win.browser.samples(split) if s.name == name)


def test_predictions_metrics_and_exports_never_cross_datasets(
    qtbot, make_dataset, model_file, tmp_path, messages
):
    """Two datasets with the same file names (issue 12, item 1): predict the first's test split,
    open the second (nothing of the first shows), predict it, reopen the first: its images show
    their own predictions and its export is the same as before the switch."""
    first = make_dataset("first", seed=1)
    second = make_dataset("second", seed=2)
    win = MainWindow(settings=make_settings())
    qtbot.addWidget(win)
    win.show()
    assert win.prediction.set_model(model_file)
    win.layers.set_threshold(0.5)
    win.layers.set_dilation(False)

    win.open_dataset(first)
    win.prediction.predict_split("test")
    assert win.prediction.wait(60_000)
    first_probs = {
        s.name: win.prediction.cached_probability(s).copy() for s in win.browser.samples("test")
    }
    first_iou = win.browser.model.iou(("test", "00007.png"))
    assert first_iou == core_iou(first_probs["00007.png"], first / "test" / "label" / "00007.png")
    assert win.prediction.export("masks", tmp_path / "before", scope="split").wait(60_000)

    # the second dataset: no prediction, no IoU and no metrics of the first
    win.open_dataset(second)
    win.browser.select("test", "00007.png")
    qtbot.waitUntil(
        lambda: (
            win.canvas.image() is not None
            and win.current_sample().image_path == _sample(win, "test", "00007.png").image_path
        )
    )
    assert win.canvas.probability() is None
    assert win.prediction.cached_probability(_sample(win, "test", "00007.png")) is None
    assert all(
        win.browser.model.iou(("test", n)) is None for n in ("00006.png", "00007.png", "00008.png")
    )
    assert win.prediction.metric_values() is None
    assert "not predicted yet" in win.prediction.metrics.horizontalHeaderItem(0).text()

    win.prediction.predict_split("test")
    assert win.prediction.wait(60_000)
    second_probs = {
        s.name: win.prediction.cached_probability(s) for s in win.browser.samples("test")
    }
    assert not np.array_equal(second_probs["00007.png"], first_probs["00007.png"])
    shown = win.canvas.probability()
    assert shown is not None and np.array_equal(shown, second_probs["00007.png"])

    # back to the first: its own predictions, and the export equals the first one
    win.open_dataset(first)
    win.browser.select("test", "00007.png")
    qtbot.waitUntil(
        lambda: (
            win.current_sample() is not None
            and win.current_sample().image_path == _sample(win, "test", "00007.png").image_path
            and win.canvas.probability() is not None
        )
    )
    assert np.array_equal(win.canvas.probability(), first_probs["00007.png"])
    for s in win.browser.samples("test"):
        assert np.array_equal(win.prediction.cached_probability(s), first_probs[s.name])
    assert win.prediction.metric_values() is None  # the split's scores were the second's
    assert win.prediction.export("masks", tmp_path / "after", scope="split").wait(60_000)
    for name in first_probs:
        before = np.asarray(Image.open(tmp_path / "before" / name))
        after = np.asarray(Image.open(tmp_path / "after" / name))
        assert np.array_equal(before, after), name
        assert np.array_equal(after > 0, to_mask(first_probs[name], 0.5, 0))
    assert not messages.calls
    win.close()


def test_a_regenerated_image_drops_its_old_prediction(qtbot, tiny_dataset, model_file, messages):
    """The same path with new content (a dataset generated again in place) is another image."""
    win = MainWindow(settings=make_settings())
    qtbot.addWidget(win)
    win.show()
    assert win.prediction.set_model(model_file)
    win.open_dataset(tiny_dataset)
    win.prediction.predict_split("test")
    assert win.prediction.wait(60_000)
    sample = _sample(win, "test", "00007.png")
    assert win.prediction.cached_probability(sample) is not None
    image = np.asarray(Image.open(sample.image_path)).copy()
    image[:8] = 0
    Image.fromarray(image).save(sample.image_path)
    os.utime(sample.image_path, ns=(1, 1))  # another modification time even on coarse clocks
    assert win.prediction.cached_probability(sample) is None
    win.close()


@pytest.fixture
def sharp_model_file(tmp_path):
    """An untrained prescribed model with its weights tripled: its probabilities spread from 0
    to 1 around 0.5 (the plain untrained one gives about 0.485 everywhere: no roof at 0.5)."""
    torch = pytest.importorskip("torch")
    from core.checkpoint import save_checkpoint
    from core.models import build_model

    torch.manual_seed(0)
    model = build_model("prescribed")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    (tmp_path / "sharp").mkdir()
    return save_checkpoint(tmp_path / "sharp" / "model_v1.safetensors", model, {})


def test_the_split_metrics_of_the_window_equal_core_evaluate(
    qtbot, tiny_dataset, sharp_model_file, messages
):
    """What the metrics table shows for a predicted split is what `rooftop evaluate` computes
    (core.evaluate.evaluate) for the same model, split, threshold and dilation."""
    from core.evaluate import evaluate

    model_file = sharp_model_file
    win = MainWindow(settings=make_settings())
    qtbot.addWidget(win)
    win.show()
    assert win.prediction.set_model(model_file)
    win.layers.set_threshold(0.5)
    win.layers.set_dilation(False)
    win.open_dataset(tiny_dataset)
    win.prediction.predict_split("test")
    assert win.prediction.wait(60_000)
    scores = win.prediction.scores
    assert (scores.threshold, scores.dilation) == (0.5, 0) and len(scores.per_image) == 3

    def same_as_evaluate(threshold, dilation):
        result = evaluate(
            tiny_dataset,
            model_file,
            split="test",
            threshold=threshold,
            dilation=dilation,
            device="cpu",
        )
        assert scores.total() == result.confusion  # the same pixel counts, summed over the split
        values = win.prediction.metric_values()
        for key in ("iou", "f1", "precision", "recall", "accuracy"):
            assert values[key] == pytest.approx(result.metrics[key], rel=1e-12), key
            row = [k for k, _name in prediction_panel.METRICS].index(key)
            assert win.prediction.metrics.item(row, 0).text() == f"{result.metrics[key]:.4f}"
        for image in result.per_image:
            assert scores.per_image[("test", image.name)] == image.confusion
            assert win.browser.model.iou(("test", image.name)) == pytest.approx(
                image.iou, rel=1e-12
            )
        return result

    result = same_as_evaluate(0.5, 0)
    assert 0 < result.confusion.tp + result.confusion.fp < 3 * 64 * 64  # some roof, not all
    # another threshold and a dilation: the split is re-scored from the cache, still the same
    win.layers.set_threshold(0.6)
    win.layers.set_dilation(True, 3)
    qtbot.waitUntil(
        lambda: (
            (win.prediction.scores.threshold, win.prediction.scores.dilation) == (0.6, 3)
            and win.prediction._rescore_task is None
        ),
        timeout=10_000,
    )
    scores = win.prediction.scores
    same_as_evaluate(0.6, 3)
    assert not messages.calls
    win.close()
