"""The window fits the screens people have: no minimum size above 1280 x 720; at 1366 x 768 the main
buttons of every panel and the panels' tab bar are on screen (not clipped, not scrolled away); at
1920 x 1080 the curves, the log and the models list have room. With the app's own style sheet,
since its padding decides the sizes; disabled editors look disabled."""

from __future__ import annotations

import numpy as np
import pytest
import qimage2ndarray
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QLineEdit,
    QSpinBox,
    QStyle,
    QStyleOptionComboBox,
    QTabBar,
    QWidget,
)

from rooftop_gui.main_window import MainWindow
from rooftop_gui.resources import stylesheet
from rooftop_gui.settings import make_settings
from tests.factories import save_untrained_model


@pytest.fixture
def styled(qapp):
    """The app's style and style sheet (as rooftop_gui.app.create_app sets them)."""
    previous_style = qapp.style().name()
    qapp.setStyle("Fusion")
    qapp.setStyleSheet(stylesheet())
    yield qapp
    qapp.setStyleSheet("")
    qapp.setStyle(previous_style)


def open_window(qtbot, size: tuple[int, int], dataset=None) -> MainWindow:
    """A first start in a window of ``size`` (the offscreen screen is smaller than a real one,
    so the default layout is made again for that size)."""
    window = MainWindow(settings=make_settings())
    qtbot.addWidget(window)
    window.show()
    window.resize(*size)
    qtbot.waitUntil(lambda: window.size().toTuple() == size)
    window.default_layout()
    if dataset is not None:
        assert window.open_dataset(dataset)
    qtbot.waitUntil(lambda: window.size().toTuple() == size)
    QApplication.processEvents()
    return window


def fully_shown(widget: QWidget, window: QWidget) -> bool:
    """On screen whole: visible, not clipped by a scroll area or dock, inside the window."""
    if not widget.isVisible():
        return False
    region = widget.visibleRegion()
    top_left = widget.mapTo(window, widget.rect().topLeft())
    inside = window.rect().contains(widget.rect().translated(top_left))
    return not region.isEmpty() and region.boundingRect() == widget.rect() and inside


def dock_tab_bar(window: MainWindow) -> QTabBar:
    bars = [
        bar
        for bar in window.findChildren(QTabBar)
        if bar.isVisible()
        and {bar.tabText(i) for i in range(bar.count())} >= {"Prediction", "Training"}
    ]
    assert len(bars) == 1
    return bars[0]


def test_the_window_can_be_as_small_as_1280_by_720(qtbot, styled, tiny_dataset):
    window = open_window(qtbot, (1366, 768), tiny_dataset)
    for folded in (True, False):
        window.training.form.set_folded(folded)
        hint = window.minimumSizeHint()
        assert hint.width() <= 1280 and hint.height() <= 720, hint
    window.resize(1280, 720)
    qtbot.waitUntil(lambda: window.size().toTuple() == (1280, 720))
    window.close()


@pytest.mark.parametrize("folded", [True, False])
def test_at_1366_by_768_every_panels_main_buttons_are_on_screen(
    qtbot, styled, tiny_dataset, folded
):
    window = open_window(qtbot, (1366, 768), tiny_dataset)
    window.training.form.set_folded(folded)
    QApplication.processEvents()
    tabs = dock_tab_bar(window)
    assert fully_shown(tabs, window)
    assert tabs.tabText(tabs.currentIndex()) == "Prediction"
    prediction = window.prediction
    for button in (
        prediction.predict_image_button,
        prediction.predict_split_button,
        prediction.export_masks_button,
        prediction.export_composites_button,
    ):
        assert fully_shown(button, window), button.text()
    tabs.setCurrentIndex([tabs.tabText(i) for i in range(tabs.count())].index("Training"))
    QApplication.processEvents()
    training = window.training
    for widget in (training.start_button, training.stop_button, training.run_view.progress):
        assert fully_shown(widget, window), widget
    for widget in (window.browser.view, window.layers.threshold_spin):
        assert fully_shown(widget, window), widget
    canvas = window.canvas
    assert canvas.isVisible() and canvas.width() >= 560 and canvas.height() >= 560
    window.close()


def test_at_1366_by_768_the_curves_log_and_models_have_room(qtbot, styled, tiny_dataset):
    save_untrained_model(tiny_dataset)
    window = open_window(qtbot, (1366, 768), tiny_dataset)
    assert window.training.form.is_folded()  # a short window starts with the settings folded
    window.training_dock.raise_()
    QApplication.processEvents()
    run, models = window.training.run_view, window.training.model_list
    for widget in (run.plot, run.log_view, models.tree, models.use_button):
        assert fully_shown(widget, window), widget
    assert run.plot.height() >= 150
    assert run.log_view.viewport().height() >= 4 * run.log_view.fontMetrics().lineSpacing()
    tree = models.tree
    assert tree.viewport().height() >= 3 * tree.sizeHintForRow(0)
    # every column of the models list whole: the date too
    header, item = tree.header(), tree.topLevelItem(0)
    for column in range(tree.columnCount()):
        assert header.sectionSize(column) >= tree.sizeHintForColumn(column), item.text(column)
        title = tree.headerItem().text(column)
        assert header.sectionSize(column) >= header.fontMetrics().horizontalAdvance(title)
    assert header.length() <= tree.viewport().width()
    # what a run shows under its progress bar never widens the panel out of its dock
    run.status_label.setText("epoch 1234/10000 · batch 1000/1000 · loss 0.123456 " * 2)
    run.speed_label.setText("12345 crops/s · 1234.5 s/epoch")
    QApplication.processEvents()
    area = window.training_dock.widget()
    assert window.training.width() <= area.viewport().width()
    assert fully_shown(run.stop_button, window) and fully_shown(run.speed_label, window)
    window.close()


def test_at_1920_by_1080_the_plot_grows_and_its_legend_is_outside_the_curves(
    qtbot, styled, tiny_dataset
):
    window = open_window(qtbot, (1920, 1080), tiny_dataset)
    window.training.form.set_folded(False)
    window.training_dock.raise_()
    QApplication.processEvents()
    run = window.training.run_view
    for widget in (
        window.training.form.precision_box,
        run.start_button,
        run.plot,
        run.log_view,
        window.training.model_list.use_button,
    ):
        assert fully_shown(widget, window), widget
    assert run.plot.height() >= 250
    assert run.log_view.viewport().height() >= 5 * run.log_view.fontMetrics().lineSpacing()
    plot = run.plot
    curves = plot.getPlotItem().getViewBox().sceneBoundingRect()
    assert not plot.legend.sceneBoundingRect().intersects(curves)
    assert plot.legend.sceneBoundingRect().bottom() <= curves.top()
    window.close()


def test_combo_boxes_are_wide_enough_for_their_texts(qtbot, styled, tiny_dataset):
    window = open_window(qtbot, (1366, 768), tiny_dataset)
    window.training.form.set_folded(False)
    window.training_dock.raise_()
    QApplication.processEvents()
    boxes = [
        box for box in window.findChildren(QComboBox) if box.isVisible() and not box.isEditable()
    ]
    assert window.training.form.loss_box in boxes
    for box in boxes:
        option = QStyleOptionComboBox()
        box.initStyleOption(option)
        field = box.style().subControlRect(
            QStyle.ComplexControl.CC_ComboBox, option, QStyle.SubControl.SC_ComboBoxEditField, box
        )
        for i in range(box.count()):
            text = box.itemText(i)
            assert box.fontMetrics().horizontalAdvance(text) <= field.width(), (text, field)
    window.close()


def _brightest(widget: QWidget) -> float:
    picture = widget.grab().toImage()  # alive while its pixels are viewed
    pixels = qimage2ndarray.rgb_view(picture).astype(np.float32)
    return float(pixels[4:-4, 4:-4].mean(axis=2).max())  # inside the rounded border


@pytest.mark.parametrize(
    "make", [lambda: _combo(), lambda: _spin(), lambda: QLineEdit("some text")]
)
def test_disabled_editors_look_disabled(qtbot, styled, make):
    widget = make()
    qtbot.addWidget(widget)
    widget.resize(140, 28)
    widget.show()
    enabled = _brightest(widget)
    widget.setEnabled(False)
    disabled = _brightest(widget)
    assert disabled < 0.6 * enabled, (enabled, disabled)  # greyed text, not the bright one


def _combo() -> QComboBox:
    box = QComboBox()
    box.addItems(["bce+dice", "bce"])
    return box


def _spin() -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(0, 1000)
    spin.setValue(888)
    return spin
