"""The main window: dataset browser, canvas, layers, prediction export, errors, settings."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.postprocess import to_mask
from rooftop_gui.main_window import MainWindow
from rooftop_gui.settings import make_settings


@pytest.fixture
def window(qtbot):
    win = MainWindow(settings=make_settings())
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    yield win
    win.close()


def _select(window, qtbot, split, name):
    assert window.browser.select(split, name)
    qtbot.waitUntil(lambda: window.canvas.image() is not None)


def test_opening_a_dataset_fills_the_browser(window, tiny_dataset, qtbot):
    assert window.open_dataset(tiny_dataset)
    assert window.browser.model.rowCount() == 9
    assert "6 train" in window.browser.counts.text() and "3 test" in window.browser.counts.text()
    names = [s.name for s in window.browser.samples("test")]
    assert names == ["00006.png", "00007.png", "00008.png"]
    assert window.windowTitle() == "tiny[*] — Rooftop Studio"
    window.browser.split_box.setCurrentIndex(2)  # test only
    assert window.browser.proxy.rowCount() == 3
    # thumbnails arrive from the background thread
    qtbot.waitUntil(
        lambda: (
            window.browser.thumbnails.pixmap(window.browser.samples("test")[0].image_path)
            is not None
        ),
        timeout=5000,
    )


def test_selecting_an_image_shows_it_with_its_label(window, tiny_dataset, qtbot):
    window.open_dataset(tiny_dataset)
    _select(window, qtbot, "train", "00002.png")
    sample = window.browser.current_sample()
    assert sample.name == "00002.png"
    expected = np.asarray(Image.open(sample.image_path).convert("RGB"))
    assert np.array_equal(window.canvas.image(), expected)
    assert window.canvas.label_array() is not None and window.canvas.label_array().any()
    assert window.size_label.text() == "64 × 64"
    window.next_action.trigger()
    assert window.browser.current_sample().name == "00003.png"
    window.previous_action.trigger()
    assert window.browser.current_sample().name == "00002.png"


def test_threshold_and_dilation_change_the_shown_mask(window, tiny_dataset, qtbot):
    window.open_dataset(tiny_dataset)
    _select(window, qtbot, "train", "00000.png")
    prob = np.zeros((64, 64), np.float32)
    prob[30, 30] = 0.9
    prob[10:20, 10:20] = 0.4
    window.canvas.set_probability(prob)
    layers = window.layers
    layers.set_dilation(False)
    layers.set_threshold(0.5)
    assert window.canvas.displayed_mask().sum() == 1
    layers.set_threshold(0.3)
    assert window.canvas.displayed_mask().sum() == 101
    layers.set_threshold(0.5)
    layers.set_dilation(True, 5)
    shown = window.canvas.displayed_mask()
    assert shown.sum() == 25
    assert np.array_equal(shown, to_mask(prob, 0.5, 5))
    assert np.array_equal(window.canvas.shown_overlay_codes("prediction").astype(bool), shown)
    window.layers.dilation_action.trigger()  # the D toggle
    assert window.canvas.displayed_mask().sum() == 1


def test_layer_toggles(window, tiny_dataset, qtbot):
    window.open_dataset(tiny_dataset)
    _select(window, qtbot, "train", "00000.png")
    window.canvas.set_probability(np.full((64, 64), 0.7, np.float32))
    assert window.canvas._label_item.isVisible()
    window.layers.label_action.trigger()
    assert not window.canvas._label_item.isVisible()
    assert not window.canvas.is_layer_visible("label")
    window.layers.error_action.setChecked(True)
    codes = window.canvas.shown_overlay_codes("error")
    label = window.canvas.label_array()
    assert set(np.unique(codes)) <= {1, 3}  # everything predicted: FP where no roof, TP on roofs
    assert np.array_equal(codes == 3, label)
    window.layers.heatmap_action.setChecked(True)
    assert window.canvas.shown_overlay_codes("prediction").max() == 178  # 0.7 * 255


def test_export_masks_writes_what_is_shown(window, tiny_dataset, qtbot, tmp_path):
    window.open_dataset(tiny_dataset)
    _select(window, qtbot, "test", "00007.png")
    prob = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    window.prediction.set_probability(window.prediction._key(window.browser.current_sample()), prob)
    window.prediction.model_path = None
    window.canvas.set_probability(prob)
    window.layers.set_threshold(0.6)
    window.layers.set_dilation(True, 3)
    out = tmp_path / "export"
    task = window.prediction.export("masks", out, scope="image")
    assert task is not None and task.wait(10_000)
    written = np.asarray(Image.open(out / "00007.png"))
    assert written.dtype == np.uint8 and set(np.unique(written)) <= {0, 255}
    assert np.array_equal(written > 0, to_mask(prob, 0.6, 3))
    task = window.prediction.export("composites", out, scope="image")
    assert task.wait(10_000)
    assert (out / "00007_composite.png").exists()


def test_corrupt_image_shows_an_error_and_the_app_goes_on(window, make_dataset, qtbot, messages):
    root = make_dataset("broken")
    (root / "train" / "data" / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    window.open_dataset(root)
    window.browser.select("train", "00001.png")
    qtbot.waitUntil(lambda: bool(messages.calls))
    assert "00001.png" in messages.texts()[0]
    assert window.canvas.image() is None
    window.browser.select_next()
    assert window.browser.current_sample().name == "00002.png"
    assert window.canvas.image() is not None


def test_not_a_dataset_shows_an_error(window, tmp_path, messages):
    assert not window.open_dataset(tmp_path)
    assert messages.calls and str(tmp_path) in messages.calls[0][2]


def test_settings_are_remembered(qtbot, tiny_dataset):
    first = MainWindow(settings=make_settings())
    qtbot.addWidget(first)
    first.open_dataset(tiny_dataset)
    first.layers.set_threshold(0.37)
    first.layers.set_dilation(True, 7)
    first.layers.set_opacity(0.8)
    first.close()
    second = MainWindow(settings=make_settings())
    qtbot.addWidget(second)
    assert second.canvas.state.threshold == pytest.approx(0.37)
    assert second.canvas.state.dilation == 7
    assert second.canvas.state.opacity == pytest.approx(0.8)
    second.open_initial(None)
    assert second.dataset_path == tiny_dataset
    assert second.windowTitle() == "tiny[*] — Rooftop Studio"
    second.close()


def test_shortcuts_dialog_lists_actions(window):
    from rooftop_gui.dialogs import collect_shortcuts

    rows = collect_shortcuts(window)
    keys = {r[1] for r in rows}
    assert {"L", "P", "H", "E", "D", "F", "1", "Ctrl+O"} <= keys
    assert ("Browse", "W", "Sort by IoU, worst first") in rows


def test_ctrl_w_is_left_for_close_and_sort_worst_first_is_w(window, tiny_dataset, qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QAction, QKeySequence

    bound = {
        key.toString(): action.text()
        for action in window.findChildren(QAction)
        for key in action.shortcuts()
    }
    assert "Ctrl+W" not in bound  # nothing (and nothing destructive) on the usual "close" key
    assert bound["W"] == "Sort by IoU, &worst first"
    keys = [k for keys in ([a.shortcuts() for a in window.findChildren(QAction)]) for k in keys]
    assert len(keys) == len({k.toString() for k in keys}), "two actions share a shortcut"
    window.open_dataset(tiny_dataset)
    window.browser.view.sortByColumn(0, Qt.SortOrder.DescendingOrder)
    window.worst_action.trigger()
    header = window.browser.view.horizontalHeader()
    assert header.sortIndicatorOrder() == Qt.SortOrder.AscendingOrder
    assert window.worst_action.shortcut() == QKeySequence("W")


def test_title_names_the_dataset_then_the_app_once(window, tiny_dataset, qtbot):
    from PySide6.QtWidgets import QApplication

    assert window.windowTitle() == "Rooftop Studio"  # no dataset yet
    window.open_dataset(tiny_dataset)
    assert window.windowTitle() == "tiny[*] — Rooftop Studio"
    # It ends with the application's display name, so Qt (xcb) appends nothing more, and the
    # [*] placeholder becomes "*" when a label has unsaved edits.
    QApplication.instance().setApplicationDisplayName("Rooftop Studio")
    assert window.windowTitle().endswith(QApplication.applicationDisplayName())
    window.setWindowModified(True)
    assert window.windowTitle().count("Rooftop Studio") == 1
    window.setWindowModified(False)


def test_the_layers_panel_has_no_redraw_timing_line(window, tiny_dataset, qtbot):
    from PySide6.QtWidgets import QLabel

    window.open_dataset(tiny_dataset)
    _select(window, qtbot, "train", "00000.png")
    window.canvas.set_probability(np.full((64, 64), 0.7, np.float32))
    window.canvas.rendered.emit(12.5)
    texts = [label.text() for label in window.layers.findChildren(QLabel)]
    assert not any("redrawn" in text or " ms" in text for text in texts), texts


def test_choosing_a_model_applies_its_stored_threshold(qtbot, tmp_path):
    from core.checkpoint import save_checkpoint
    from core.models import build_model
    from rooftop_gui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    path = save_checkpoint(
        tmp_path / "model_v1.safetensors", build_model("prescribed"), {"threshold": 0.35}
    )
    window.prediction.set_model(path)
    assert window.canvas.state.threshold == 0.35
    assert window.layers.threshold_spin.value() == 0.35
    window.close()
