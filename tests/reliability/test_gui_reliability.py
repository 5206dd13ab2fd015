"""GUI reliability (issue 7, the GUI bullet): bad files, interruptions and crashes in the window.

Each test injects bad inputs or faults into a real :class:`MainWindow` (pytest-qt, offscreen) and
checks the documented outcome: a conversion that shows the image, or a message naming the file,
and the app going on (the next good image still shows, no exception reaches ``sys.excepthook``,
``threading.excepthook`` or the app's crash dialog, no QThread left running).

Training, where needed, is real: the prescribed architecture on 64 x 64 crops, batch 2, four
samples per epoch on the CPU, chosen through the training panel's widgets.

Cross-reference: tests/gui/test_annotation.py covers the basic recovery round trip (copy written
by the timer, restored by a second window that stays alive) and Discard; here the crashed window is
never closed, the next start goes through ``open_initial``, later edits replace the copy,
"Decide later" keeps it, and corrupt / mismatched copies are survived.
"""

from __future__ import annotations

import shutil
import struct
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import qimage2ndarray
import tifffile
from PIL import Image
from PySide6.QtCore import QCoreApplication, QEvent, QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox

from core import annotate
from core.io import read_image, read_mask
from rooftop_gui import annotation, dialogs, workers
from rooftop_gui import errors as gui_errors
from rooftop_gui.main_window import MainWindow
from rooftop_gui.settings import make_settings
from tests.factories import save_untrained_model, write_dataset
from tests.gui.helpers import configure_quick_training

SIZE = 64


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


class CrashWatch:
    """Records every exception that reaches sys.excepthook, threading.excepthook or the app's
    crash dialog (then passes it on, so pytest-qt still sees it)."""

    def __init__(self) -> None:
        self.seen: list[str] = []


@pytest.fixture
def crashes(monkeypatch) -> CrashWatch:
    watch = CrashWatch()
    previous_sys, previous_thread = sys.excepthook, threading.excepthook

    def sys_hook(exc_type, exc, tb):
        watch.seen.append(f"sys.excepthook: {exc_type.__name__}: {exc}")
        previous_sys(exc_type, exc, tb)

    def thread_hook(args):
        watch.seen.append(f"threading.excepthook: {args.exc_type.__name__}: {args.exc_value}")
        previous_thread(args)

    monkeypatch.setattr(sys, "excepthook", sys_hook)
    monkeypatch.setattr(threading, "excepthook", thread_hook)
    monkeypatch.setattr(
        gui_errors,
        "_show_crash",
        lambda message, details: watch.seen.append(f"crash dialog: {message}"),
    )
    yield watch
    assert watch.seen == [], f"exceptions escaped: {watch.seen}"


class Prompts:
    """Stands in for the annotation questions (unsaved edits; recovered edits)."""

    def __init__(self) -> None:
        self.unsaved_answer = dialogs.DISCARD
        self.unsaved_asked: list[str] = []
        self.restore_answer = dialogs.RESTORE
        self.restore_offered: list[list[str]] = []

    def unsaved(self, parent, what):
        self.unsaved_asked.append(what)
        return self.unsaved_answer

    def restore(self, parent, entries):
        self.restore_offered.append([e.describe() for e in entries])
        return self.restore_answer


@pytest.fixture
def prompts(monkeypatch) -> Prompts:
    recorder = Prompts()
    monkeypatch.setattr(dialogs, "ask_unsaved_changes", recorder.unsaved)
    monkeypatch.setattr(dialogs, "ask_restore_recovery", recorder.restore)
    return recorder


class Questions:
    """QMessageBox.question answering from a list (then Yes), recording the titles asked."""

    def __init__(self) -> None:
        self.answers: list[QMessageBox.StandardButton] = []
        self.asked: list[str] = []

    def __call__(self, parent, title, text, *args, **kwargs):
        self.asked.append(title)
        return self.answers.pop(0) if self.answers else QMessageBox.StandardButton.Yes


@pytest.fixture
def questions(monkeypatch, messages) -> Questions:  # after ``messages`` patches it
    recorder = Questions()
    monkeypatch.setattr(QMessageBox, "question", staticmethod(recorder))
    return recorder


def new_window(qtbot) -> MainWindow:
    win = MainWindow(settings=make_settings())
    win.resize(1100, 800)
    win.show()
    qtbot.waitExposed(win)
    return win


def dispose(win: MainWindow) -> None:
    """Close (stopping any training) and really delete a window."""
    if win.isVisible() or win.training.is_training():
        win.training.shutdown(30_000)
        win.close()
    win.runner.stop_all(10_000)
    win.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


@pytest.fixture
def window(qtbot, messages, prompts, crashes):
    win = new_window(qtbot)
    yield win
    prompts.unsaved_answer = dialogs.DISCARD
    dispose(win)


def shows(window: MainWindow, path: Path) -> bool:
    """The canvas shows exactly the image at ``path`` (as core.io reads it)."""
    image = window.canvas.image()
    return image is not None and np.array_equal(image, read_image(path))


def select(window: MainWindow, split: str, name: str) -> None:
    assert window.browser.select(split, name), f"{split}/{name} not in the browser"
    current = window.browser.current_sample()
    assert current is not None and (current.split, current.name) == (split, name)


def assert_training_ready(window: MainWindow) -> None:
    panel = window.training
    assert not panel.is_training()
    assert panel.start_button.isEnabled() and not panel.stop_button.isEnabled()
    assert panel.stop_button.text() == "Stop"
    assert panel.form.arch_box.isEnabled()
    assert window.training_label.text() == ""
    assert "rooftop-training" not in workers.live_threads()  # the thread has ended


def paint(window: MainWindow, points: list[tuple[float, float]]) -> None:
    """A brush stroke with real mouse events on the canvas viewport."""
    ctl = window.annotation
    ctl.tool_actions["brush"].trigger()
    viewport = window.canvas.viewport()
    at = [window.canvas.mapFromScene(QPointF(x, y)) for x, y in points]
    QTest.mouseMove(viewport, at[0])
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at[0])
    for pos in at[1:]:
        QTest.mouseMove(viewport, pos)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at[-1])
    ctl.tool_actions["pan"].trigger()


# --------------------------------------------------------------------------------------------
# bad files (builders)
# --------------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb(path: Path) -> None:
    """A valid PNG header claiming 100000 x 100000 pixels."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + _png_chunk(b"IEND", b"")
    )


def _rgb(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def _truncated(path: Path) -> None:
    Image.fromarray(_rgb(1)).save(path)
    path.write_bytes(path.read_bytes()[:300])


def _square_mask(size: tuple[int, int] = (SIZE, SIZE), value: int = 255) -> np.ndarray:
    mask = np.zeros(size, np.uint8)
    mask[size[0] // 4 : size[0] // 2, size[1] // 4 : size[1] // 2] = value
    return mask


#: Images that cannot be read: (builder, words the message must hold besides the file name).
UNREADABLE = {
    "bad_zero_bytes.png": (lambda p: p.write_bytes(b""), "empty"),
    "bad_truncated.png": (_truncated, "truncated"),
    "bad_text.png": (lambda p: p.write_text("not an image at all"), "not a readable image"),
    "bad_bomb.png": (_bomb, "decompression-bomb"),
}

#: Images read through a documented conversion (to 8-bit RGB); each keeps a good label.
CONVERTED = {
    "odd_sixteen_grey.png": lambda p: Image.fromarray(_rgb(2)[..., 0].astype(np.uint16) * 257).save(
        p
    ),
    "odd_sixteen_rgb.tif": lambda p: tifffile.imwrite(
        p, _rgb(3).astype(np.uint16) * 256, photometric="rgb"
    ),
    "odd_rgba.png": lambda p: Image.fromarray(_rgb(4)).convert("RGBA").save(p),
    "odd_palette.png": lambda p: Image.fromarray(_rgb(5)).convert("P").save(p),
    "odd_grey.png": lambda p: Image.fromarray(_rgb(6)[..., 0]).save(p),
    "odd_cmyk.jpg": lambda p: Image.fromarray(_rgb(7)).convert("CMYK").save(p, "JPEG"),
    "odd_float.tif": lambda p: tifffile.imwrite(
        p, _rgb(14).astype(np.float32) / 255.0, photometric="rgb"
    ),
    "odd name with spaces.png": lambda p: Image.fromarray(_rgb(8)).save(p),
    "odd_näme_ünïcode_屋根.png": lambda p: Image.fromarray(_rgb(9)).save(p),
}


def bad_dataset(root: Path) -> Path:
    """The tiny dataset (00000-00005 train, 00006-00008 test) plus every bad case in train/."""
    write_dataset(root)
    data, label = root / "train" / "data", root / "train" / "label"
    for name, (make, _words) in UNREADABLE.items():
        make(data / name)
        Image.fromarray(_square_mask()).save(label / (Path(name).stem + ".png"))
    for name, make in CONVERTED.items():
        make(data / name)
        Image.fromarray(_square_mask()).save(label / (Path(name).stem + ".png"))
    # labels with problems, beside good images
    Image.fromarray(_rgb(10)).save(data / "lab_other_size.png")
    Image.fromarray(_square_mask((32, 48))).save(label / "lab_other_size.png")
    Image.fromarray(_rgb(11)).save(data / "lab_values.png")
    Image.fromarray(_square_mask(value=7)).save(label / "lab_values.png")  # 7 means roof too
    Image.fromarray(_rgb(12)).save(data / "lab_truncated.png")
    _truncated(label / "lab_truncated.png")
    Image.fromarray(_rgb(13)).save(data / "lab_missing.png")  # image without label
    Image.fromarray(_square_mask()).save(label / "lab_orphan.png")  # label without image
    return root


# --------------------------------------------------------------------------------------------
# 1. bad files inside a dataset opened in the window
# --------------------------------------------------------------------------------------------


def test_bad_files_in_an_open_dataset_show_a_message_and_the_app_goes_on(
    window, qtbot, tmp_path, messages
):
    """4 unreadable images, 9 converted ones (16-bit grey and RGB, RGBA, palette, grey, CMYK
    JPEG, float TIFF, spaces, non-ASCII), 5 label cases (other size, values 0/7, truncated, missing, orphan):
    18 bad inputs, each selected, then a good image selected after it."""
    root = bad_dataset(tmp_path / "bad ds é")
    assert window.open_dataset(root)
    counts = window.browser.counts.text()
    assert "1 label(s) without image" in counts  # the orphan label is reported, not listed
    assert window.browser.model.row_of(("train", "lab_orphan.png")) is None
    good = root / "train" / "data" / "00000.png"

    def back_to_good() -> None:
        select(window, "train", "00000.png")
        assert shows(window, good)
        assert window.canvas.label_array() is not None

    # unreadable images: a warning naming the file; the canvas says why; the next image shows
    for name, (_make, words) in UNREADABLE.items():
        before = len(messages.calls)
        select(window, "train", name)
        assert len(messages.calls) == before + 1, f"{name}: no message"
        kind, title, text = messages.calls[-1]
        assert kind == "warning" and name in text and words in text, (name, text)
        assert window.canvas.image() is None
        assert name in window.statusBar().currentMessage()
        assert not window.prediction.predict_image_button.isEnabled()
        # painting on nothing is refused quietly
        window.annotation.tool_actions["brush"].trigger()
        assert window.annotation._ensure_editor() is None
        window.annotation.tool_actions["pan"].trigger()
        back_to_good()

    # documented conversions: shown as 8-bit RGB with their label, editable
    for name in CONVERTED:
        before = len(messages.calls)
        select(window, "train", name)
        path = root / "train" / "data" / name
        image = window.canvas.image()
        assert image is not None and image.dtype == np.uint8 and image.shape == (SIZE, SIZE, 3), (
            name
        )
        assert np.array_equal(image, read_image(path)) and image.std() > 5, name
        assert np.array_equal(window.canvas.label_array(), _square_mask() > 0), name
        assert len(messages.calls) == before, messages.calls[before:]
        assert window.size_label.text() == f"{SIZE} × {SIZE}"
        back_to_good()

    # a label of another size: the image shows, the label does not, the status bar says why,
    # and editing is refused so that the file is never overwritten
    select(window, "train", "lab_other_size.png")
    assert shows(window, root / "train" / "data" / "lab_other_size.png")
    assert window.canvas.label_array() is None or not window.canvas.label_array().any()
    status = window.statusBar().currentMessage()
    assert "lab_other_size.png" in status and "48 x 32" in status, status
    assert window.annotation._ensure_editor() is None
    back_to_good()

    # label values other than 0/255: non-zero is roof (documented)
    select(window, "train", "lab_values.png")
    assert np.array_equal(window.canvas.label_array(), _square_mask() > 0)
    back_to_good()

    # a truncated label: the image shows, the status bar names the label, editing refused
    select(window, "train", "lab_truncated.png")
    assert shows(window, root / "train" / "data" / "lab_truncated.png")
    status = window.statusBar().currentMessage()
    assert "lab_truncated.png" in status and "truncated" in status, status
    assert window.annotation._ensure_editor() is None
    before = (root / "train" / "label" / "lab_truncated.png").read_bytes()
    back_to_good()
    assert (root / "train" / "label" / "lab_truncated.png").read_bytes() == before

    # an image without its label: shown, no label, and the first edit creates one
    select(window, "train", "lab_missing.png")
    assert shows(window, root / "train" / "data" / "lab_missing.png")
    assert window.canvas.label_array() is None or not window.canvas.label_array().any()
    paint(window, [(20, 20), (30, 30)])
    assert window.annotation.has_unsaved() and window.annotation.save()
    assert read_mask(root / "train" / "label" / "lab_missing.png").any()
    back_to_good()

    # the thumbnails of the broken files come back as errors naming the file, never a crash
    window.browser.view.scrollToBottom()
    loader = window.browser.thumbnails
    for name in UNREADABLE:
        loader.request(root / "train" / "data" / name)
    qtbot.waitUntil(
        lambda: all(loader.error(root / "train" / "data" / n) for n in UNREADABLE), timeout=10_000
    )
    for name in UNREADABLE:
        assert name in loader.error(root / "train" / "data" / name)
    assert "decompression-bomb" in loader.error(root / "train" / "data" / "bad_bomb.png")
    for name in CONVERTED:
        loader.request(root / "train" / "data" / name)
    qtbot.waitUntil(
        lambda: all(loader.pixmap(root / "train" / "data" / n) is not None for n in CONVERTED),
        timeout=10_000,
    )
    for name in CONVERTED:  # the same conversion as the canvas: 16-bit is scaled, not white
        # keep the QImage alive while its pixels are viewed (a view of a freed temporary read
        # garbage: this check failed about one run in two)
        picture = loader.pixmap(root / "train" / "data" / name).toImage()
        thumb = qimage2ndarray.rgb_view(picture).copy()
        assert thumb.shape[:2] == (40, 40) and thumb.std() > 5, name

    # stepping through every row with PgDown never stops the app
    window.browser.select_row(0)
    for _ in range(window.browser.proxy.rowCount()):
        window.next_action.trigger()
    assert window.browser.current_sample() is not None
    back_to_good()


# --------------------------------------------------------------------------------------------
# 2. closing the window during training
# --------------------------------------------------------------------------------------------


def test_closing_during_training_asks_and_a_yes_stops_cleanly_and_saves(
    window, qtbot, tiny_dataset, questions, prompts, messages
):
    """3 close requests while a model trains and a label has unsaved edits: Cancel (edits), Save
    then No (training), then Yes. Nothing is lost: the label is saved, the run goes on after
    each refusal, and the Yes stops the thread and saves the model so far."""
    from core.checkpoint import list_models, load_checkpoint

    assert window.open_dataset(tiny_dataset)
    select(window, "train", "00001.png")
    paint(window, [(5, 5), (20, 12)])
    edited = window.annotation.editor.mask.copy()
    configure_quick_training(window.training, epochs=10_000)
    qtbot.mouseClick(window.training.start_button, Qt.MouseButton.LeftButton)
    assert window.training.is_training() and window.training_label.text() == "● training"
    qtbot.waitUntil(lambda: window.training.plot.point_count() >= 1, timeout=60_000)

    # 1. Cancel on the unsaved edits: nothing else is asked, everything goes on
    prompts.unsaved_answer = dialogs.CANCEL
    assert window.close() is False
    assert window.isVisible() and window.training.is_training()
    assert window.annotation.has_unsaved() and questions.asked == []

    # 2. Save the edits, then No to stopping the training: the window stays, training continues
    prompts.unsaved_answer = dialogs.SAVE
    questions.answers = [QMessageBox.StandardButton.No]
    assert window.close() is False
    assert questions.asked == ["Training is running"]
    assert window.isVisible() and window.training.is_training()
    assert not window.annotation.has_unsaved()
    assert np.array_equal(read_mask(tiny_dataset / "train" / "label" / "00001.png"), edited)
    seen = window.training.plot.point_count()
    qtbot.waitUntil(lambda: window.training.plot.point_count() >= seen + 2, timeout=30_000)

    # 3. Yes: the thread stops, the model so far is saved, the window closes
    questions.answers = [QMessageBox.StandardButton.Yes]
    epochs_before = window.training.plot.point_count()
    assert window.close() is True
    assert questions.asked == ["Training is running"] * 2
    assert not window.isVisible() and not window.training.is_training()
    assert workers.live_threads() == []
    models = list_models(tiny_dataset / "models")
    assert [m.name for m in models] == ["model_v1"]
    assert models[0].epochs_done >= epochs_before
    assert window.training.last_result().stopped == "user"
    assert load_checkpoint(models[0].path).model is not None
    assert [c for c in messages.calls if c[0] == "critical"] == []


# --------------------------------------------------------------------------------------------
# 3. ten quick starts and stops
# --------------------------------------------------------------------------------------------


def test_ten_quick_starts_and_stops_leave_the_panel_working(window, qtbot, tiny_dataset, messages):
    """10 Start-then-Stop pairs, the Stop after 0 to 400 ms (before torch loads, during the first
    batch, mid-run), each also trying a second Start while stopping; then a full short run."""
    from core.checkpoint import list_models

    panel = window.training
    assert window.open_dataset(tiny_dataset)
    configure_quick_training(window.training, epochs=10_000)
    saved = 0
    for delay in (0, 0, 0, 5, 10, 20, 50, 100, 200, 400):
        qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
        assert panel.is_training()
        if delay:
            qtbot.wait(delay)
        qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)
        assert not panel.stop_button.isEnabled() and not panel.start_button.isEnabled()
        assert panel.start_training() is False  # a second run never starts beside the first
        qtbot.waitUntil(lambda: not panel.is_training(), timeout=30_000)
        assert_training_ready(window)
        if panel.last_result() is not None:
            assert panel.last_result().stopped == "user"
            saved += 1
    errors = [c for c in messages.calls if c[0] == "critical"]
    assert errors == []
    log = panel.log_view.toPlainText()
    assert log.count("Stop requested") == 10
    assert log.count("stopped by you") + log.count("no model saved") == 10
    assert [m.version for m in list_models(tiny_dataset / "models")] == list(range(1, saved + 1))

    # a last full run still works and numbers its model after the others
    configure_quick_training(window.training, epochs=2)
    with qtbot.waitSignal(panel.model_activated, timeout=60_000) as blocker:
        qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.is_training(), timeout=30_000)
    result = panel.last_result()
    assert (
        result.stopped is None and Path(blocker.args[0]).name == f"model_v{saved + 1}.safetensors"
    )
    assert window.prediction.model_path == Path(blocker.args[0])
    assert_training_ready(window)
    print(f"10 quick stops: {saved} saved a model, {10 - saved} stopped before the first batch")


# --------------------------------------------------------------------------------------------
# 4. switching images and datasets while training
# --------------------------------------------------------------------------------------------


def test_switching_images_and_datasets_while_training(window, qtbot, make_dataset, messages):
    """10 switches (images of both splits, next/previous, another dataset of another image size
    and back) while a model trains on the first dataset. The run finishes, on its own data, into
    its own models folder; the canvas always shows the image selected; the other dataset's
    prediction model is left alone."""
    from core.checkpoint import list_models

    first = make_dataset("first")
    other = make_dataset("other", n_train=4, n_test=2, size=96)
    panel = window.training
    assert window.open_dataset(first)
    configure_quick_training(window.training, epochs=60)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)

    def open_other() -> None:
        assert window.open_dataset(other)

    def open_first() -> None:
        assert window.open_dataset(first)

    steps = [
        lambda: select(window, "train", "00001.png"),
        window.next_action.trigger,
        lambda: select(window, "test", "00007.png"),
        open_other,
        lambda: select(window, "train", "00002.png"),
        window.previous_action.trigger,
        open_first,
        lambda: select(window, "train", "00004.png"),
        open_other,
        lambda: select(window, "test", "00005.png"),
    ]
    during = 0
    for i, step in enumerate(steps):
        qtbot.waitUntil(
            lambda i=i: panel.plot.point_count() >= i + 1 or not panel.is_training(), timeout=60_000
        )
        running = panel.is_training()
        step()
        sample = window.browser.current_sample()
        assert sample is not None and shows(window, sample.image_path), i
        during += running and panel.is_training()
    assert during == len(steps), f"only {during} of the switches happened during the run"
    assert window.dataset_path == other
    size = window.canvas.image().shape[:2]
    assert size == (96, 96)

    qtbot.waitUntil(lambda: not panel.is_training(), timeout=60_000)
    result = panel.last_result()
    assert result.stopped is None
    assert Path(result.model_path).parent == first.resolve() / "models"
    assert [m.epochs_done for m in list_models(first / "models")] == [60]
    assert list_models(other / "models") == []
    assert [c for c in messages.calls if c[0] == "critical"] == []
    # the other (open) dataset does not get the first one's model forced on it ...
    assert window.prediction.model_path is None and panel.models() == []
    assert "open first again to use it" in panel.log_view.toPlainText()
    # ... which comes back as the active model when its own dataset is opened again
    assert window.open_dataset(first)
    assert window.prediction.model_path == Path(result.model_path)
    assert panel.active_model() == Path(result.model_path)
    assert_training_ready(window)


# --------------------------------------------------------------------------------------------
# 5. the dataset folder deleted while it is open
# --------------------------------------------------------------------------------------------


def test_deleting_the_open_dataset_folder(window, qtbot, make_dataset, tmp_path, prompts, messages):
    """The folder is deleted (shutil.rmtree) with an image shown and its label edited; then
    saving, predicting (its model went too), refreshing the models, training, predicting the
    split with another model, selecting another image and reopening the dataset each give a
    message naming what is missing; the edits survive until the folder is back; another dataset
    opens and works. 8 faults."""
    doomed = make_dataset("doomed")
    other = make_dataset("other")
    inside = save_untrained_model(doomed, metadata={"threshold": 0.5})
    outside = save_untrained_model(tmp_path / "elsewhere", metadata={"threshold": 0.5})
    assert window.open_dataset(doomed)
    assert window.training.models()[0].path == inside.resolve()
    assert window.prediction.set_model(inside)
    select(window, "train", "00001.png")
    paint(window, [(5, 5), (20, 12)])
    edited = window.annotation.editor.mask.copy()
    copy = window.annotation.write_recovery()
    assert copy is not None and copy.exists()
    label = doomed / "train" / "label" / "00001.png"

    def last(kind: str) -> str:
        found = [f"{title}: {text}" for k, title, text in messages.calls if k == kind]
        assert found, f"no {kind} message"
        return found[-1]

    shutil.rmtree(doomed)

    # save: an error naming the label, the edits kept in memory and in the recovery copy
    window.annotation.save_action.trigger()
    assert "Cannot save the label" in last("critical") and str(label) in last("critical")
    assert window.annotation.has_unsaved() and copy.exists()

    # predict the image on the canvas: its model was inside the folder
    window.prediction.predict_current()
    qtbot.waitUntil(lambda: not window.prediction.is_busy(), timeout=60_000)
    assert "Prediction failed" in last("critical") and "model_v1.safetensors" in last("critical")

    # refresh the models list: empty, no error
    qtbot.mouseClick(window.training.model_list.refresh_button, Qt.MouseButton.LeftButton)
    assert window.training.models() == []

    # train: the run fails with a message naming the folder; the panel is ready again
    configure_quick_training(window.training, epochs=1)
    qtbot.mouseClick(window.training.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.training.is_training(), timeout=60_000)
    assert "Training failed" in last("critical") and "doomed" in last("critical")
    assert_training_ready(window)

    # predict the split with a model that still exists: every image is reported
    assert window.prediction.set_model(outside)
    window.prediction.predict_split("test")
    qtbot.waitUntil(lambda: not window.prediction.is_busy(), timeout=60_000)
    text = last("critical")
    assert "could not be predicted" in text and "00006.png" in text and "00008.png" in text

    # select another image: the edits are offered for saving first (which fails again, so the
    # selection comes back to the edited image), nothing is dropped
    prompts.unsaved_answer = dialogs.SAVE
    critical_before = len(messages.calls)
    window.browser.select("train", "00002.png")
    qtbot.waitUntil(lambda: window.browser.current_sample().name == "00001.png", timeout=5_000)
    assert len(messages.calls) > critical_before and str(label) in last("critical")
    assert window.annotation.has_unsaved() and np.array_equal(window.annotation.editor.mask, edited)

    # reopen it (the recent list): "cannot open", the window keeps what it shows
    assert window.open_dataset(doomed) is False
    assert str(doomed) in last("critical")
    assert window.annotation.has_unsaved() and window.canvas.image() is not None

    # the user puts the folder back: Ctrl+S now saves exactly the edits
    label.parent.mkdir(parents=True)
    window.annotation.save_action.trigger()
    assert not window.annotation.has_unsaved() and not copy.exists()
    assert np.array_equal(read_mask(label), edited)

    # selecting another (still deleted) image: a warning naming it, the app goes on
    select(window, "train", "00003.png")
    assert "00003.png" in last("warning") and window.canvas.image() is None

    # another dataset opens and works
    assert window.open_dataset(other)
    select(window, "train", "00002.png")
    assert shows(window, other / "train" / "data" / "00002.png")
    window.prediction.predict_current()
    qtbot.waitUntil(lambda: not window.prediction.is_busy(), timeout=60_000)
    assert window.canvas.probability() is not None


def test_closing_with_a_rescore_pending_starts_nothing_afterwards(
    window, qtbot, tiny_dataset, tmp_path, messages
):
    """1 fault: the window closes 0 ms after a dilation change, while the re-scoring of the
    predicted split waits on its 250 ms debounce timer. Nothing may start once it is closed (the
    task's callbacks would touch the deleted window's widgets in whatever runs next)."""
    assert window.open_dataset(tiny_dataset)
    assert window.prediction.set_model(
        save_untrained_model(tmp_path / "m", metadata={"threshold": 0.5})
    )
    window.prediction.predict_split("test")
    qtbot.waitUntil(lambda: not window.prediction.is_busy(), timeout=60_000)
    assert window.prediction.metric_values() is not None
    started = []
    window.runner.task_started.connect(lambda task: started.append(task.name))
    window.layers.set_dilation(True, 5)  # re-score the split at the new settings, debounced
    assert window.close() is True
    qtbot.wait(600)
    assert started == [] and window.runner.tasks() == []


# --------------------------------------------------------------------------------------------
# 6. unsaved edits survive a crash
# --------------------------------------------------------------------------------------------


def test_unsaved_edits_survive_a_crash_and_are_offered_at_the_next_start(
    qtbot, make_dataset, prompts, messages, crashes
):
    """Paint, autosave, paint more, autosave, then the window is dropped without closeEvent (a
    crash). Faults: the crash, a corrupt recovery copy, two copies whose image changed size (one
    on the canvas when offered, one selected later), and a restart answered "Decide later". The next start (open_initial: the last dataset) offers the
    edits back and restores the painted pixels exactly."""
    root = make_dataset("roofs")
    (root / "train" / "label" / "00003.png").unlink()  # an image whose label is not made yet
    first = new_window(qtbot)
    assert first.open_dataset(root)
    ctl = first.annotation
    assert ctl.recovery_timer.isActive()
    assert ctl.recovery_timer.interval() <= 10_000  # "every few seconds"

    select(first, "train", "00003.png")
    assert ctl.write_recovery() is None  # nothing edited: no copy
    paint(first, [(5, 5), (20, 12)])
    copy = ctl.write_recovery()  # the timer's slot
    assert copy is not None and copy.exists()
    assert ctl.write_recovery() is None  # unchanged since: not rewritten
    paint(first, [(40, 50), (60, 60)])  # more edits after the last copy ...
    assert ctl.write_recovery() == copy  # ... are in the next one
    edited = ctl.editor.mask.copy()
    assert edited[12, 20] and edited[60, 60]

    # the crash: the window disappears without closeEvent, saving or discarding nothing
    closes = []
    real_close_event = MainWindow.closeEvent
    MainWindow.closeEvent = lambda self, event: closes.append(self)
    try:
        ctl.recovery_timer.stop()
        first.hide()
        first.runner.wait_all(10_000)
        first.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    finally:
        MainWindow.closeEvent = real_close_event
    assert closes == [] and copy.exists()

    # two more faults in the recovery folder: a half-written copy and a copy of another size
    (copy.parent / "garbage-0123456789abcdef.npz").write_bytes(b"PK\x03\x04 half a zip")
    # (two of them: 00000 is on the canvas when the copies are offered, 00002 is selected later)
    first_label = root / "train" / "label" / "00000.png"
    other_label = root / "train" / "label" / "00002.png"
    for label in (first_label, other_label):
        annotate.MaskEditor(None, (32, 32), path=label).save_recovery(
            annotate.recovery_path_for(annotation.recovery_dir(), label)
        )

    # restart 1: "Decide later" keeps every copy
    prompts.restore_answer = dialogs.LATER
    second = new_window(qtbot)
    second.open_initial(None)
    assert second.dataset_path == root
    assert len(prompts.restore_offered) == 1
    offered = sorted(prompts.restore_offered[0])
    assert [o.split()[0] for o in offered] == [
        "train/00000.png",
        "train/00002.png",
        "train/00003.png",
    ]
    assert not second.annotation.has_unsaved() and copy.exists()
    dispose(second)

    # restart 2: Restore puts the painted pixels back as unsaved edits
    prompts.restore_answer = dialogs.RESTORE
    third = new_window(qtbot)
    try:
        third.open_initial(None)
        assert len(prompts.restore_offered) == 2
        # copies that no longer fit their image are not applied, say so, and stay on disk; the
        # label on disk is what is shown and edited (a stroke adds to it, never replaces it)
        for label, name in ((first_label, "00000.png"), (other_label, "00002.png")):
            if third.annotation.sample.name != name:
                select(third, "train", name)
            assert "do not match its size" in third.statusBar().currentMessage(), name
            assert annotate.recovery_path_for(annotation.recovery_dir(), label).exists()
            assert np.array_equal(third.canvas.label_array(), read_mask(label)), name
            assert not third.annotation.has_unsaved()
            paint(third, [(2, 60), (10, 60)])
            assert third.annotation.has_unsaved()
            assert (third.annotation.editor.mask >= read_mask(label)).all(), name
            third.annotation.undo()
            assert not third.annotation.has_unsaved()
        # 00003: the painted pixels, as unsaved edits
        select(third, "train", "00003.png")
        assert third.annotation.has_unsaved() and third.isWindowModified()
        assert np.array_equal(third.annotation.editor.mask, edited)
        assert np.array_equal(third.canvas.label_array(), edited)
        assert third.annotation.save()
        assert np.array_equal(read_mask(root / "train" / "label" / "00003.png"), edited)
        assert not copy.exists()
    finally:
        dispose(third)
