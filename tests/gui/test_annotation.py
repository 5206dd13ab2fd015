"""Annotation in the window: real mouse events on the canvas, save, undo, prompts, recovery.

Every edit goes through QTest mouse events on the canvas viewport; the expected masks are computed
with the core.annotate functions from the image positions the canvas reported for those events, so
"exactly as drawn" means: what the user's pointer went over, through the same maths.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QCoreApplication, QEvent, QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

from core import annotate
from core.io import read_mask
from rooftop_gui import annotation, dialogs
from rooftop_gui.main_window import MainWindow
from rooftop_gui.settings import make_settings

SIZE = 64


# ----------------------------------------------------------------------------- data


def _label_00000() -> np.ndarray:
    """A closed roof outline (for fill) and a filled roof."""
    mask = np.zeros((SIZE, SIZE), bool)
    mask[8:28, 8] = mask[8:28, 27] = mask[8, 8:28] = mask[27, 8:28] = True
    mask[40:52, 36:50] = True
    return mask


def write_dataset(root: Path, size: int = SIZE) -> Path:
    """train/00000 (outline + roof), 00001 (a roof), 00002 (no label); test/00003 (a roof)."""
    rng = np.random.default_rng(1)
    layout = {"train": ["00000.png", "00001.png", "00002.png"], "test": ["00003.png"]}
    for split, names in layout.items():
        (root / split / "data").mkdir(parents=True, exist_ok=True)
        (root / split / "label").mkdir(parents=True, exist_ok=True)
        for name in names:
            image = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / split / "data" / name)
            if name == "00002.png":
                continue
            if name == "00000.png" and size == SIZE:
                mask = _label_00000()
            else:
                mask = np.zeros((size, size), bool)
                mask[size // 4 : size // 2, size // 4 : size // 2] = True
            Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(
                root / split / "label" / name
            )
    return root


@pytest.fixture
def dataset(tmp_path) -> Path:
    return write_dataset(tmp_path / "roofs")


class Prompts:
    """Stands in for the Save / Discard / Cancel question."""

    def __init__(self) -> None:
        self.answer = dialogs.DISCARD
        self.asked: list[str] = []

    def __call__(self, parent, what):
        self.asked.append(what)
        return self.answer


@pytest.fixture
def prompts(monkeypatch) -> Prompts:
    recorder = Prompts()
    monkeypatch.setattr(dialogs, "ask_unsaved_changes", recorder)
    return recorder


class LargeFills:
    """Stands in for the "fill a large area?" question: records the fractions asked about."""

    def __init__(self) -> None:
        self.answer = False
        self.asked: list[float] = []

    def __call__(self, parent, fraction):
        self.asked.append(fraction)
        return self.answer


@pytest.fixture
def large_fills(monkeypatch) -> LargeFills:
    recorder = LargeFills()
    monkeypatch.setattr(dialogs, "ask_large_fill", recorder)
    return recorder


def new_window(qtbot, width: int = 1100, height: int = 800) -> MainWindow:
    win = MainWindow(settings=make_settings())
    win.resize(width, height)
    win.show()
    qtbot.waitExposed(win)
    return win


def dispose(win: MainWindow) -> None:
    """Close and really delete a window (no main window outlives its test)."""
    win.close()
    win.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


@pytest.fixture
def window(qtbot, prompts, messages):
    win = new_window(qtbot)
    yield win
    prompts.answer = dialogs.DISCARD
    dispose(win)


def open_image(window, qtbot, root: Path, split: str = "train", name: str = "00000.png"):
    if window.dataset_path != root:
        assert window.open_dataset(root)
    assert window.browser.select(split, name)
    qtbot.waitUntil(
        lambda: window.annotation.sample is not None and window.annotation.sample.name == name
    )
    return window.annotation


# ----------------------------------------------------------------------------- mouse


class Pointer:
    """Real mouse events on the canvas viewport; records the image positions the canvas reports."""

    def __init__(self, canvas) -> None:
        self.canvas = canvas
        self.viewport = canvas.viewport()
        self.events: list[tuple[str, float, float]] = []
        canvas.mouse_pressed_image.connect(lambda x, y, _b: self.events.append(("press", x, y)))
        canvas.mouse_moved_image.connect(lambda x, y, _b: self.events.append(("move", x, y)))
        canvas.mouse_double_clicked_image.connect(
            lambda x, y, _b: self.events.append(("double", x, y))
        )

    def at(self, x: float, y: float) -> QPoint:
        """The viewport position of image point (x, y) (canvas coordinates: pixel c is [c, c+1))."""
        return self.canvas.mapFromScene(QPointF(x, y))

    def _take(self) -> list[tuple[float, float]]:
        points = [(x - 0.5, y - 0.5) for kind, x, y in self.events if kind in ("press", "move")]
        self.events.clear()
        return points

    def drag(
        self, points, button=Qt.MouseButton.LeftButton, modifier=Qt.KeyboardModifier.NoModifier
    ):
        """Press at the first point, move through the others, release; returns the positions
        reported, in core.annotate coordinates."""
        self.events.clear()
        first = self.at(*points[0])
        QTest.mouseMove(self.viewport, first)
        self.events.clear()
        QTest.mousePress(self.viewport, button, modifier, first)
        for point in points[1:]:
            QTest.mouseMove(self.viewport, self.at(*point))
        QTest.mouseRelease(self.viewport, button, modifier, self.at(*points[-1]))
        return self._take()

    def click(self, x: float, y: float, button=Qt.MouseButton.LeftButton) -> tuple[float, float]:
        self.events.clear()
        pos = self.at(x, y)
        QTest.mousePress(self.viewport, button, Qt.KeyboardModifier.NoModifier, pos)
        QTest.mouseRelease(self.viewport, button, Qt.KeyboardModifier.NoModifier, pos)
        points = [(px - 0.5, py - 0.5) for kind, px, py in self.events if kind == "press"]
        self.events.clear()
        return points[0]


# ----------------------------------------------------------------------------- tests


def test_paint_erase_fill_polygon_are_saved_exactly_as_drawn(window, qtbot, dataset):
    ctl = open_image(window, qtbot, dataset)
    label_file = dataset / "train" / "label" / "00000.png"
    expected = read_mask(label_file)
    pointer = Pointer(window.canvas)
    assert not window.isWindowModified()

    ctl.tool_actions["brush"].trigger()
    window.annotation.toolbar.size.setValue(5)
    assert ctl.radius == 2.5 and not window.canvas.left_button_pans
    drawn = pointer.drag([(34, 4), (40, 6), (50, 10), (58, 14)])
    annotate.paint_stroke(expected, drawn, 2.5, True)
    assert window.isWindowModified()
    assert "[*]" in window.windowTitle()
    assert np.array_equal(ctl.editor.mask, expected)
    assert window.canvas.label_array() is ctl.editor.mask  # the canvas shows the edited mask

    erased = pointer.drag([(38, 44), (46, 46)], button=Qt.MouseButton.RightButton)  # right erases
    annotate.paint_stroke(expected, erased, 2.5, False)

    ctl.tool_actions["eraser"].trigger()
    erased = pointer.drag([(2, 60), (3, 60)])
    annotate.paint_stroke(expected, erased, 2.5, False)

    ctl.tool_actions["fill"].trigger()
    where = pointer.click(18.2, 17.6)  # inside the outline
    assert annotate.flood_fill(expected, *where, True) is not None

    ctl.tool_actions["polygon"].trigger()
    corners = [
        pointer.click(x, y) for x, y in ((4.5, 34.5), (20.3, 33.2), (24.6, 50.1), (6.2, 55.7))
    ]
    assert len(ctl.polygon_points()) == 4
    QTest.keyClick(window.canvas, Qt.Key.Key_Return)  # Enter closes the polygon
    assert ctl.polygon_points() == []
    annotate.fill_polygon(expected, corners, True)
    assert np.array_equal(ctl.editor.mask, expected)
    assert np.array_equal(window.canvas.shown_overlay_codes("label").astype(bool), expected)

    assert read_mask(label_file).sum() == _label_00000().sum()  # nothing on disk yet
    ctl.save_action.trigger()
    assert np.array_equal(read_mask(label_file), expected)
    assert not window.isWindowModified() and not ctl.has_unsaved()
    assert not list(label_file.parent.glob("*.tmp"))  # the atomic write left nothing behind


def test_polygon_double_click_closes_escape_cancels(window, qtbot, dataset):
    ctl = open_image(window, qtbot, dataset, "train", "00001.png")
    pointer = Pointer(window.canvas)
    expected = ctl.editor.mask.copy()
    ctl.tool_actions["polygon"].trigger()
    for x, y in ((40, 5), (60, 5), (60, 20)):
        pointer.click(x, y)
    QTest.keyClick(window.canvas, Qt.Key.Key_Escape)
    assert ctl.polygon_points() == [] and not ctl.has_unsaved()

    corners = [
        pointer.click(x, y) for x, y in ((40.2, 5.1), (60.4, 5.3), (60.2, 20.6), (48.3, 22.2))
    ]
    # a real double click: press, release (the click above, the last corner), then double click
    QTest.mouseDClick(
        pointer.viewport,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        pointer.at(48.3, 22.2),
    )
    assert [kind for kind, _x, _y in pointer.events] == ["double"]
    assert ctl.polygon_points() == []  # the double click closed it
    annotate.fill_polygon(expected, corners, True)
    assert np.array_equal(ctl.editor.mask, expected) and ctl.has_unsaved()


def test_undo_redo_round_trips_100_steps(window, qtbot, dataset):
    ctl = open_image(window, qtbot, dataset, "train", "00001.png")
    pointer = Pointer(window.canvas)
    ctl.tool_actions["brush"].trigger()
    ctl.set_brush_size(2)
    states = [ctl.editor.mask.copy()]
    rng = np.random.default_rng(3)
    for _ in range(100):
        x, y = rng.uniform(1, SIZE - 1, 2)
        pointer.click(
            x, y, Qt.MouseButton.LeftButton if rng.random() < 0.7 else Qt.MouseButton.RightButton
        )
        if not np.array_equal(ctl.editor.mask, states[-1]):
            states.append(ctl.editor.mask.copy())
    assert len(states) > 60
    for state in reversed(states[:-1]):
        QTest.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        assert np.array_equal(ctl.editor.mask, state)
        assert np.array_equal(window.canvas.shown_overlay_codes("label").astype(bool), state)
    assert not ctl.undo_action.isEnabled()
    assert not ctl.has_unsaved() and not window.isWindowModified()  # back at the file's content
    for i, state in enumerate(states[1:]):
        key = (
            (Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
            if i % 2
            else (
                Qt.Key.Key_Z,
                Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
            )
        )
        QTest.keyClick(window.canvas, *key)
        assert np.array_equal(ctl.editor.mask, state)
    assert not ctl.redo_action.isEnabled() and window.isWindowModified()


def test_accept_one_predicted_roof_changes_only_that_component(window, qtbot, dataset):
    ctl = open_image(window, qtbot, dataset, "train", "00001.png")
    before = ctl.editor.mask.copy()
    prob = np.zeros((SIZE, SIZE), np.float32)
    prob[2:10, 40:52] = 0.9  # roof A (not in the label)
    prob[50:60, 2:12] = 0.8  # roof B
    prob[20:28, 20:28] = 0.7  # overlaps the labelled roof
    window.canvas.set_probability(prob)
    shown = window.canvas.displayed_mask().copy()
    pointer = Pointer(window.canvas)
    ctl.tool_actions["accept"].trigger()
    at = pointer.click(45.5, 6.5)
    expected = before.copy()
    annotate.accept_prediction(expected, shown, at=at)
    changed = ctl.editor.mask != before
    assert changed.any() and np.array_equal(ctl.editor.mask, expected)
    component = annotate.connected_roof(shown, *at)
    assert not (changed & ~component).any()  # nothing outside that roof changed
    assert not ctl.editor.mask[55, 5]  # roof B untouched
    pointer.click(30, 45)  # no roof there: nothing happens
    assert np.array_equal(ctl.editor.mask, expected)
    ctl.accept_all_action.trigger()  # Shift+A: the whole prediction
    assert np.array_equal(ctl.editor.mask, shown)
    ctl.undo_action.trigger()
    assert np.array_equal(ctl.editor.mask, expected)


def test_prompt_before_switching_image(window, qtbot, dataset, prompts):
    ctl = open_image(window, qtbot, dataset)
    label_file = dataset / "train" / "label" / "00000.png"
    on_disk = read_mask(label_file)
    pointer = Pointer(window.canvas)
    ctl.tool_actions["brush"].trigger()
    pointer.drag([(50, 5), (60, 5)])
    edited = ctl.editor.mask.copy()

    prompts.answer = dialogs.CANCEL
    window.browser.filter_edit.setText("00003")  # the filter hides the edited image: the list
    assert prompts.asked == ["train/00000.png"]  # moves to 00003, which asks; Cancel stays
    qtbot.waitUntil(lambda: window.browser.current_sample() is None)
    assert window.browser.filter_edit.text() == "00003"
    assert ctl.sample.name == "00000.png" and ctl.has_unsaved()
    assert np.array_equal(window.canvas.label_array(), edited)
    window.browser.filter_edit.clear()
    window.browser.select("train", "00000.png")  # the edited image itself: nothing to ask
    assert len(prompts.asked) == 1 and ctl.has_unsaved()

    prompts.asked.clear()
    window.next_action.trigger()
    assert prompts.asked == ["train/00000.png"]
    qtbot.waitUntil(lambda: window.browser.current_sample().name == "00000.png")  # moved back
    assert ctl.sample.name == "00000.png" and ctl.has_unsaved()
    assert np.array_equal(window.canvas.label_array(), edited)

    prompts.answer = dialogs.SAVE
    window.next_action.trigger()
    qtbot.waitUntil(lambda: ctl.sample.name == "00001.png")
    assert np.array_equal(read_mask(label_file), edited)

    pointer.drag([(50, 60), (60, 60)])
    prompts.answer = dialogs.DISCARD
    file_1 = dataset / "train" / "label" / "00001.png"
    before = file_1.read_bytes()
    window.previous_action.trigger()
    qtbot.waitUntil(lambda: ctl.sample.name == "00000.png")
    assert file_1.read_bytes() == before and not ctl.has_unsaved()
    assert len(prompts.asked) == 3
    assert not np.array_equal(on_disk, edited)


def test_prompt_before_opening_another_dataset_and_closing(
    window, qtbot, dataset, tmp_path, prompts
):
    other = write_dataset(tmp_path / "other")
    ctl = open_image(window, qtbot, dataset)
    pointer = Pointer(window.canvas)
    ctl.tool_actions["eraser"].trigger()
    pointer.drag([(40, 45), (48, 45)])
    edited = ctl.editor.mask.copy()

    prompts.answer = dialogs.CANCEL
    assert not window.open_dataset(other)
    assert window.dataset_path == dataset and ctl.has_unsaved()
    assert np.array_equal(window.canvas.label_array(), edited)

    window.close()
    assert window.isVisible() and ctl.has_unsaved()  # Cancel keeps the window and the edit
    assert len(prompts.asked) == 2

    prompts.answer = dialogs.SAVE
    assert window.open_dataset(other)
    assert np.array_equal(read_mask(dataset / "train" / "label" / "00000.png"), edited)

    open_image(window, qtbot, other)
    pointer.drag([(40, 45), (48, 45)])
    prompts.answer = dialogs.DISCARD
    window.close()
    assert not window.isVisible()
    assert np.array_equal(read_mask(other / "train" / "label" / "00000.png"), _label_00000())


@pytest.mark.parametrize("breakage", ["folder removed", "path is a folder"])
def test_failed_save_shows_an_error_and_keeps_the_edit(window, qtbot, dataset, messages, breakage):
    ctl = open_image(window, qtbot, dataset)
    pointer = Pointer(window.canvas)
    ctl.tool_actions["brush"].trigger()
    pointer.drag([(50, 5), (60, 12)])
    edited = ctl.editor.mask.copy()
    label_dir = dataset / "train" / "label"
    label_file = label_dir / "00000.png"
    if breakage == "folder removed":
        shutil.rmtree(label_dir)
    else:
        label_file.unlink()
        label_file.mkdir()
    QTest.keyClick(window.canvas, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert messages.calls and messages.calls[-1][0] == "critical"
    assert str(label_file) in messages.calls[-1][2]
    assert ctl.has_unsaved() and window.isWindowModified()
    assert np.array_equal(ctl.editor.mask, edited)
    if breakage == "folder removed":
        assert not label_dir.exists()  # an existing label's folder is never re-created
        label_dir.mkdir()
    else:
        label_file.rmdir()
    assert ctl.save()
    assert np.array_equal(read_mask(label_file), edited) and not window.isWindowModified()


def test_editing_an_unlabelled_image_creates_its_label(window, qtbot, dataset):
    ctl = open_image(window, qtbot, dataset, "train", "00002.png")
    label_file = dataset / "train" / "label" / "00002.png"
    assert window.canvas.label_array() is None and ctl.editor is None
    model = window.browser.model
    assert model.data(model.index(model.row_of(("train", "00002.png")), model.LABEL)) == "—"
    pointer = Pointer(window.canvas)
    ctl.tool_actions["brush"].trigger()
    ctl.set_brush_size(7)
    drawn = pointer.drag([(10, 10), (30, 20)])
    expected = np.zeros((SIZE, SIZE), bool)
    annotate.paint_stroke(expected, drawn, 3.5, True)
    assert window.isWindowModified() and not label_file.exists()
    ctl.save_action.trigger()
    assert np.array_equal(read_mask(label_file), expected)
    assert model.data(model.index(model.row_of(("train", "00002.png")), model.LABEL)) == "✓"
    assert "4 labelled" in window.browser.counts.text()  # 3 before + the new one
    assert window.browser.current_sample().label_path == label_file


def test_a_new_label_creates_a_missing_label_folder(window, qtbot, dataset, large_fills):
    shutil.rmtree(dataset / "test" / "label")
    ctl = open_image(window, qtbot, dataset, "test", "00003.png")
    pointer = Pointer(window.canvas)
    ctl.tool_actions["fill"].trigger()
    large_fills.answer = True
    pointer.click(5, 5)  # fill an empty label: the whole image becomes roof (asked first: Yes)
    assert large_fills.asked == [1.0]
    assert ctl.save()
    assert read_mask(dataset / "test" / "label" / "00003.png").all()


def test_a_fill_on_open_background_asks_first_and_no_changes_nothing(
    window, qtbot, dataset, large_fills
):
    ctl = open_image(window, qtbot, dataset)  # 00000: a closed outline and a small roof
    before = ctl.editor.mask.copy()
    pointer = Pointer(window.canvas)
    ctl.tool_actions["fill"].trigger()

    large_fills.answer = False
    where = pointer.click(60.4, 3.6)  # open background, outside the outline
    expected = before.copy()
    assert annotate.flood_fill(expected, *where, True) is not None
    fraction = np.count_nonzero(expected != before) / before.size
    assert fraction > 0.25 and large_fills.asked == [pytest.approx(fraction)]
    assert np.array_equal(ctl.editor.mask, before)  # No: nothing changed, nothing to undo or save
    assert np.array_equal(window.canvas.shown_overlay_codes("label").astype(bool), before)
    assert not ctl.has_unsaved() and not window.isWindowModified()
    assert not ctl.undo_action.isEnabled()

    large_fills.answer = True  # Yes fills, as one undo step
    assert pointer.click(60.4, 3.6) == where
    assert len(large_fills.asked) == 2
    assert np.array_equal(ctl.editor.mask, expected) and window.isWindowModified()
    ctl.undo_action.trigger()
    assert np.array_equal(ctl.editor.mask, before)


def test_a_small_fill_or_a_clear_does_not_ask(window, qtbot, dataset, large_fills):
    ctl = open_image(window, qtbot, dataset)
    expected = ctl.editor.mask.copy()
    pointer = Pointer(window.canvas)
    ctl.tool_actions["fill"].trigger()
    where = pointer.click(18.2, 17.6)  # inside the outline: a small fill
    assert annotate.flood_fill(expected, *where, True) is not None
    assert np.array_equal(ctl.editor.mask, expected)
    where = pointer.click(18.2, 17.6, Qt.MouseButton.RightButton)  # right click clears the roof
    assert annotate.flood_fill(expected, *where, False) is not None
    assert np.array_equal(ctl.editor.mask, expected)
    assert large_fills.asked == []


def test_the_large_fill_question_says_how_much_and_no_is_the_default(messages, monkeypatch):
    assert dialogs.ask_large_fill(None, 0.86)  # the recorder answers Yes
    ((kind, title, text),) = messages.calls
    assert kind == "question" and "86%" in text and title == "Fill a large area?"
    defaults = []

    def answer_no(parent, title, text, buttons, default):
        defaults.append(default)
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", staticmethod(answer_no))
    assert not dialogs.ask_large_fill(None, 0.5)
    assert defaults == [QMessageBox.StandardButton.No]


def test_recovery_copy_is_written_and_offered_back(window, qtbot, dataset, monkeypatch, request):
    ctl = open_image(window, qtbot, dataset, "train", "00001.png")
    ctl.recovery_timer.setInterval(20)
    pointer = Pointer(window.canvas)
    ctl.tool_actions["brush"].trigger()
    pointer.drag([(40, 40), (55, 50)])
    edited = ctl.editor.mask.copy()
    copy = annotate.recovery_path_for(
        annotation.recovery_dir(), dataset / "train" / "label" / "00001.png"
    )
    assert copy.parent.parent == Path(__import__("os").environ["ROOFTOP_DATA_DIR"])
    qtbot.waitUntil(copy.exists, timeout=3000)
    ctl.recovery_timer.stop()  # "crash": this window never saves nor discards

    offered = []

    def restore(parent, entries):
        offered.extend(e.describe() for e in entries)
        return dialogs.RESTORE

    monkeypatch.setattr(dialogs, "ask_restore_recovery", restore)
    second = new_window(qtbot)
    request.addfinalizer(lambda: dispose(second))
    assert second.open_dataset(dataset)
    assert len(offered) == 1 and offered[0].startswith("train/00001.png")
    qtbot.waitUntil(
        lambda: (
            second.annotation.sample is not None and second.annotation.sample.name == "00001.png"
        )
    )
    assert second.annotation.has_unsaved() and second.isWindowModified()
    assert np.array_equal(second.annotation.editor.mask, edited)
    assert np.array_equal(second.canvas.label_array(), edited)
    assert second.annotation.save()
    assert not copy.exists()  # saved: the recovery copy is gone
    assert np.array_equal(read_mask(dataset / "train" / "label" / "00001.png"), edited)


def test_recovery_discard_deletes_the_copy(window, qtbot, dataset, monkeypatch, request):
    ctl = open_image(window, qtbot, dataset, "train", "00001.png")
    pointer = Pointer(window.canvas)
    ctl.tool_actions["brush"].trigger()
    pointer.drag([(40, 40), (55, 50)])
    copy = ctl.write_recovery()
    assert copy is not None and copy.exists()
    assert ctl.write_recovery() is None  # unchanged since the last copy: nothing written
    ctl.undo_action.trigger()  # back at the saved state: the copy is dropped
    assert not copy.exists()
    ctl.redo_action.trigger()
    copy = ctl.write_recovery()
    ctl.recovery_timer.stop()
    monkeypatch.setattr(dialogs, "ask_restore_recovery", lambda parent, entries: dialogs.DISCARD)
    second = new_window(qtbot)
    request.addfinalizer(lambda: dispose(second))
    assert second.open_dataset(dataset)
    assert not copy.exists() and not second.annotation.has_unsaved()


def test_shortcuts_are_unique_and_listed(window):
    from PySide6.QtGui import QAction

    from rooftop_gui.dialogs import collect_shortcuts

    seen: dict[str, str] = {}
    for action in window.findChildren(QAction):
        for key in action.shortcuts():
            text = key.toString()
            assert text not in seen or seen[text] == action.text(), (
                f"{text} is used by {seen.get(text)!r} and {action.text()!r}"
            )
            seen[text] = action.text()
    rows = {keys: does for _g, keys, does in collect_shortcuts(window)}
    for keys in ("B", "X", "G", "O", "A", "V", "Shift+A", "[", "]", "Ctrl+S", "Ctrl+Z"):
        assert keys in rows, keys
    assert any("Ctrl+Y" in k for k in rows)


def test_brush_outline_follows_size_and_zoom(window, qtbot, dataset):
    ctl = open_image(window, qtbot, dataset)
    window.layers.label_action.setChecked(False)
    ctl.tool_actions["brush"].trigger()
    assert window.canvas.is_layer_visible("label")  # never paint on a hidden label
    ctl.set_brush_size(10)
    pointer = Pointer(window.canvas)
    QTest.mouseMove(pointer.viewport, pointer.at(20, 20))
    outline = ctl._outline.light
    assert outline.isVisible()
    rect = outline.rect()
    assert rect.width() == pytest.approx(10) and rect.center().x() == pytest.approx(20, abs=0.2)
    on_screen = window.canvas.mapFromScene(rect).boundingRect().width()
    assert on_screen == pytest.approx(10 * window.canvas.zoom(), rel=0.1)
    QTest.keyClick(window.canvas, Qt.Key.Key_BracketRight)
    QTest.keyClick(window.canvas, Qt.Key.Key_BracketRight)
    ctl.bigger_action.trigger()
    assert ctl.brush_size > 10 and ctl.toolbar.size.value() == ctl.brush_size
    ctl.tool_actions["pan"].trigger()
    assert not outline.isVisible() and window.canvas.left_button_pans


def test_brush_latency_on_2048(qtbot, tmp_path, prompts, messages, request):
    """Measured, not asserted: a 50-point stroke through the real mouse-event path."""
    root = write_dataset(tmp_path / "big", size=2048)
    win = new_window(qtbot, 1400, 900)
    request.addfinalizer(lambda: dispose(win))
    ctl = open_image(win, qtbot, root)
    win.layers.error_action.setChecked(True)
    win.canvas.set_probability(np.full((2048, 2048), 0.2, np.float32))
    ctl.tool_actions["brush"].trigger()
    ctl.set_brush_size(40)
    pointer = Pointer(win.canvas)
    points = [(200 + 30 * i, 300 + 20 * i) for i in range(50)]
    app = QApplication.instance()
    app.processEvents()
    per_move = []
    start = time.perf_counter()
    QTest.mousePress(
        pointer.viewport,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        pointer.at(*points[0]),
    )
    for point in points[1:]:
        t0 = time.perf_counter()
        QTest.mouseMove(pointer.viewport, pointer.at(*point))
        app.processEvents()  # includes the repaint of the changed rectangle
        per_move.append(time.perf_counter() - t0)
    QTest.mouseRelease(
        pointer.viewport,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        pointer.at(*points[-1]),
    )
    app.processEvents()
    total = time.perf_counter() - start
    assert ctl.has_unsaved() and ctl.editor.mask[300, 200]
    per_move_ms = np.array(per_move) * 1000
    print(
        f"\nbrush latency 2048x2048, 50-point stroke, radius 20: total {total * 1000:.1f} ms, "
        f"per move median {np.median(per_move_ms):.2f} ms, 90th percentile "
        f"{np.percentile(per_move_ms, 90):.2f} ms, max {per_move_ms.max():.2f} ms (move {per_move_ms.argmax() + 1})"
    )
