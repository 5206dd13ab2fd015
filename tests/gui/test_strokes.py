"""Strokes (partial labels), smart select and active learning in the window (issue 16): real
mouse events paint roof and background strokes, Ctrl+S writes the stroke file, reopening shows
the same codes; bad stroke files are reported and the image still shows; recovery copies;
accepting a prediction keeps the strokes; the uncertainty layer, jump to doubt, label-next
order and the live preview."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QRectF, Qt
from PySide6.QtTest import QTest

from core.annotate import StrokeEditor, recovery_path_for
from core.io import read_mask
from core.scribbles import BACKGROUND, ROOF, UNLABELLED, read_scribble, scribble_path_for
from core.uncertainty import uncertainty
from rooftop_gui import annotation, dialogs
from rooftop_gui.active_learning import LiveWeights, live_weights_hook
from tests.gui.test_annotation import Pointer, dispose, new_window, open_image, write_dataset


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "roofs")


@pytest.fixture
def window(qtbot, monkeypatch, messages):
    monkeypatch.setattr(dialogs, "ask_unsaved_changes", lambda parent, what: dialogs.DISCARD)
    win = new_window(qtbot)
    yield win
    dispose(win)


def expected_stroke(codes: np.ndarray, points, radius: float, code: int) -> None:
    editor = StrokeEditor(codes)
    editor.begin_stroke(code, radius)
    for x, y in points:
        editor.stroke_to(x, y)
    editor.end_stroke()
    codes[...] = editor.codes


def label_cell(window, name: str) -> str:
    model = window.browser.model
    return model.data(model.index(model.row_of(("train", name)), model.LABEL))


def test_strokes_painted_saved_and_reopened_are_the_same_codes(window, qtbot, dataset):
    ctl = open_image(window, qtbot, dataset, "train", "00002.png")  # an image without a label
    assert label_cell(window, "00002.png") == "—"
    pointer = Pointer(window.canvas)
    window.annotation.toolbar.size.setValue(4)
    expected = np.zeros((64, 64), np.uint8)
    ctl.tool_actions["roof_stroke"].trigger()
    expected_stroke(expected, pointer.drag([(10, 10), (20, 12), (28, 14)]), 2.0, ROOF)
    ctl.tool_actions["background_stroke"].trigger()
    expected_stroke(expected, pointer.drag([(40, 50), (58, 52)]), 2.0, BACKGROUND)
    unlabelled = pointer.drag([(44, 51), (46, 51)], button=Qt.MouseButton.RightButton)
    expected_stroke(expected, unlabelled, 2.0, UNLABELLED)
    assert np.array_equal(ctl.strokes.codes, expected)
    assert np.array_equal(ctl.layers.shown_strokes(), expected)
    assert ctl.editor is None  # the label was not touched
    assert window.isWindowModified()
    ctl.tool_actions["unlabel"].trigger()
    expected_stroke(expected, pointer.drag([(12, 10), (14, 10)]), 2.0, UNLABELLED)
    assert np.array_equal(ctl.strokes.codes, expected)
    before_unlabel = ctl.strokes.codes.copy()
    ctl.undo_action.trigger()  # undo acts on the strokes, the layer edited last
    assert not np.array_equal(ctl.strokes.codes, before_unlabel)
    ctl.redo_action.trigger()
    assert np.array_equal(ctl.strokes.codes, expected)

    target = scribble_path_for(dataset, "train", "00002.png")
    assert not target.exists()
    QTest.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert target.is_file() and not window.isWindowModified()
    assert np.array_equal(read_scribble(target, (64, 64)), expected)
    assert label_cell(window, "00002.png") == "◐"
    assert "partly labelled" in window.browser.counts.text()
    assert not (dataset / "train" / "label" / "00002.png").exists()

    second = new_window(qtbot)
    try:
        ctl2 = open_image(second, qtbot, dataset, "train", "00002.png")
        assert np.array_equal(ctl2.strokes.codes, expected)
        assert np.array_equal(ctl2.layers.shown_strokes(), expected)
        assert label_cell(second, "00002.png") == "◐"
    finally:
        dispose(second)


@pytest.mark.parametrize("problem", ["corrupt", "wrong size"])
def test_a_bad_stroke_file_is_reported_and_the_image_still_shows(window, qtbot, dataset, problem):
    target = scribble_path_for(dataset, "train", "00001.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    if problem == "corrupt":
        target.write_bytes(b"\x89PNG broken")
    else:
        Image.fromarray(np.ones((10, 12), np.uint8)).save(target)
    original = target.read_bytes()
    shown = []
    window.statusBar().messageChanged.connect(shown.append)
    ctl = open_image(window, qtbot, dataset, "train", "00001.png")
    assert window.canvas.image() is not None and window.canvas.label_array() is not None
    assert any("Strokes not shown" in m and "00001.png" in m for m in shown)
    if problem == "wrong size":
        assert any("12 x 10 but the image is 64 x 64" in m for m in shown)
    assert ctl.strokes is None
    ctl.tool_actions["roof_stroke"].trigger()
    Pointer(window.canvas).drag([(10, 10), (20, 20)])
    assert ctl.strokes is None and target.read_bytes() == original  # never overwritten


def test_unsaved_strokes_get_a_recovery_copy_offered_back(
    window, qtbot, dataset, monkeypatch, request
):
    ctl = open_image(window, qtbot, dataset, "train", "00001.png")
    ctl.tool_actions["roof_stroke"].trigger()
    Pointer(window.canvas).drag([(20, 20), (30, 24)])
    painted = ctl.strokes.codes.copy()
    copy = recovery_path_for(
        annotation.recovery_dir(), scribble_path_for(dataset, "train", "00001.png")
    )
    assert ctl.write_recovery() is not None and copy.exists()
    ctl.recovery_timer.stop()
    offered = []

    def restore(parent, entries):
        offered.extend(e.describe() for e in entries)
        return dialogs.RESTORE

    monkeypatch.setattr(dialogs, "ask_restore_recovery", restore)
    second = new_window(qtbot)
    request.addfinalizer(lambda: dispose(second))
    assert second.open_dataset(dataset)
    assert any("00001.png" in o and "strokes" in o for o in offered)
    second.browser.select("train", "00001.png")
    qtbot.waitUntil(
        lambda: (
            second.annotation.sample is not None and second.annotation.sample.name == "00001.png"
        )
    )
    assert second.annotation.has_unsaved()
    assert np.array_equal(second.annotation.strokes.codes, painted)
    assert second.annotation.save() and not copy.exists()
    assert np.array_equal(read_scribble(scribble_path_for(dataset, "train", "00001.png")), painted)


def test_accepting_the_prediction_on_a_partly_labelled_image_keeps_the_strokes(
    window, qtbot, dataset
):
    codes = np.zeros((64, 64), np.uint8)
    codes[5:10, 5:10] = ROOF  # the prediction says ground here
    codes[40:44, 40:44] = BACKGROUND  # the prediction says roof here
    target = scribble_path_for(dataset, "train", "00002.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(codes).save(target)
    assert window.open_dataset(dataset)
    assert label_cell(window, "00002.png") == "◐"
    ctl = open_image(window, qtbot, dataset, "train", "00002.png")
    assert np.array_equal(ctl.strokes.codes, codes)
    prob = np.zeros((64, 64), np.float32)
    prob[30:50, 30:50] = 0.9
    window.canvas.set_probability(prob)
    ctl.accept_all_action.trigger()
    ctl.save_action.trigger()
    label = read_mask(dataset / "train" / "label" / "00002.png")
    expected = prob > 0.5
    expected[codes == ROOF] = True
    expected[codes == BACKGROUND] = False
    assert np.array_equal(label, expected)
    assert label_cell(window, "00002.png") == "✓"


def test_smart_select_proposes_enter_accepts_esc_drops(window, qtbot, tmp_path):
    root = write_dataset(tmp_path / "flat")
    image = np.full((64, 64, 3), 90, np.uint8)
    image[20:40, 24:50] = (200, 70, 50)
    Image.fromarray(image).save(root / "train" / "data" / "00002.png")
    ctl = open_image(window, qtbot, root, "train", "00002.png")
    pointer = Pointer(window.canvas)
    ctl.tool_actions["smart"].trigger()
    pointer.click(30, 30)
    assert ctl.proposal() is not None and ctl.proposal().sum() == 20 * 26
    QTest.keyClick(window.canvas, Qt.Key.Key_Escape)
    assert ctl.proposal() is None and ctl.editor is None
    pointer.click(30, 30)
    window.canvas.setFocus()
    QTest.keyClick(window.canvas, Qt.Key.Key_Return)
    assert ctl.proposal() is None
    expected = np.zeros((64, 64), bool)
    expected[20:40, 24:50] = True
    assert np.array_equal(ctl.editor.mask, expected)
    ctl.undo_action.trigger()
    assert not ctl.editor.mask.any()


def test_uncertainty_layer_jump_to_doubt_and_label_next(window, qtbot, dataset, monkeypatch):
    ctl = open_image(window, qtbot, dataset, "train", "00002.png")
    prob = np.zeros((64, 64), np.float32)
    prob[40:60, 2:22] = 0.5  # where the model doubts
    window.canvas.set_probability(prob)
    window.layers.uncertainty_action.setChecked(True)
    shown = window.layers.extra.shown_uncertainty()
    assert shown is not None and shown[50, 10] == 255 and shown[5, 5] == 0
    found = window.active.jump_to_doubt()
    assert found is not None and 30 <= found.centre[1] <= 60 and found.centre[0] <= 30
    visible = window.canvas.mapToScene(window.canvas.viewport().rect()).boundingRect()
    assert visible.contains(QRectF(found.x, found.y, found.width, found.height))
    assert window.canvas.zoom() > 2  # zoomed in on it, not the whole image
    assert ctl.sample.name == "00002.png"

    rng = np.random.default_rng(0)
    probs = {
        s.name: rng.random((64, 64)).astype(np.float32) ** (i + 1)
        for i, s in enumerate(window.browser.samples())
    }
    monkeypatch.setattr(window.prediction, "cached_probability", lambda s: probs.get(s.name))
    scores = window.active.sort_label_next()
    labelled = {"00000.png", "00001.png", "00003.png"}
    assert all(
        scores[(s.split, s.name)] == 0.0 for s in window.browser.samples() if s.name in labelled
    )
    order = [
        window.browser.proxy.index(r, 0).data() for r in range(window.browser.proxy.rowCount())
    ]
    assert order[0] == "00002.png"  # the only image with unlabelled pixels
    assert scores == window.active.sort_label_next()  # a fixed model: the same order
    assert order == [
        window.browser.proxy.index(r, 0).data() for r in range(window.browser.proxy.rowCount())
    ]
    expected_doubt = float(uncertainty(probs["00002.png"]).mean())
    assert scores[("train", "00002.png")] == pytest.approx(expected_doubt, rel=1e-5)


def test_label_next_weighs_the_doubt_by_how_typical_each_image_looks(
    window, qtbot, dataset, monkeypatch
):
    from core.label_next import WINDOW_WEIGHTS, appearance, label_next_order

    rng = np.random.default_rng(7)
    for i in range(4, 8):  # four more unlabelled tiles like the others (grey noise)
        image = rng.integers(60, 120, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(image).save(dataset / "train" / "data" / f"0000{i}.png")
    odd = np.full((64, 64, 3), 250, np.uint8)  # and one unlike any: nearly white
    Image.fromarray(odd).save(dataset / "train" / "data" / "00008.png")
    open_image(window, qtbot, dataset, "train", "00002.png")
    doubt = {"00002.png": 0.5, "00004.png": 0.55, "00005.png": 0.6, "00006.png": 0.45}
    doubt |= {"00007.png": 0.5, "00008.png": 0.9}  # the model doubts the outlier most
    scores = {(s.split, s.name): doubt.get(s.name, 0.0) for s in window.browser.samples()}
    monkeypatch.setattr(window.active, "doubt_scores", lambda: dict(scores))

    def order():
        proxy = window.browser.proxy
        return [proxy.index(r, 0).data() for r in range(proxy.rowCount())]

    window.active.sort_label_next()
    assert order()[0] == "00008.png"  # the looks are not there yet: the doubt alone ranks
    qtbot.waitUntil(lambda: window.active._looks_task is None, timeout=10_000)
    paths = {(s.split, s.name): s.image_path for s in window.browser.samples()}
    from core.io import read_image

    looks = {key: appearance(read_image(path)) for key, path in paths.items()}
    expected = label_next_order(scores, list(paths), looks, weigh=WINDOW_WEIGHTS)
    assert order() == [name for _split, name in expected]
    assert order()[0] != "00008.png" and order().index("00008.png") > 3  # typical ones first
    # sorted again: the looks are cached, so the weighted order comes at once, the same
    window.active.sort_label_next()
    assert window.active._looks_task is None
    assert order() == [name for _split, name in expected]


def test_live_preview_predicts_the_current_image_with_the_epoch_weights(window, qtbot, dataset):
    torch = pytest.importorskip("torch")
    from core.models import build_model

    open_image(window, qtbot, dataset, "train", "00001.png")
    torch.manual_seed(0)
    model = build_model("liteunet", width=8, depth=2)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with qtbot.waitSignal(window.active.preview_shown, timeout=20_000) as blocker:
        window.active.live_weights(LiveWeights(3, state, "liteunet", {"width": 8, "depth": 2}))
    assert blocker.args == [3]
    prob = window.canvas.probability()
    assert prob is not None and prob.shape == (64, 64)
    qtbot.waitUntil(lambda: not window.active.is_busy())


def test_the_live_weights_hook_is_throttled_and_can_be_turned_off():
    class Config:
        arch, arch_params, input_stretch = "liteunet", {"width": 8}, "percentile"
        ground_resolution_cm = 30.0

    sent, now, on = [], [0.0], [True]
    hook = live_weights_hook(
        Config(), sent.append, lambda: on[0], interval=10, clock=lambda: now[0]
    )
    for epoch, t in enumerate([0, 3, 9, 10.5, 12, 25], start=1):
        now[0] = t
        hook(epoch, {"w": epoch})
    assert [w.epoch for w in sent] == [1, 4, 6]
    assert all(w.input_stretch == "percentile" for w in sent)  # the preview stretches alike
    assert all(w.ground_resolution_cm == 30.0 for w in sent)  # and sees the same scale
    on[0] = False
    now[0] = 100
    hook(7, {})
    assert len(sent) == 3


def test_a_real_training_run_redraws_the_current_image_after_an_epoch(window, qtbot, dataset):
    pytest.importorskip("torch")
    from tests.gui.helpers import configure_quick_training

    codes = np.zeros((64, 64), np.uint8)  # 00002 has no label: strokes make it trainable
    codes[2:6, 2:30], codes[20:24, 20:28] = BACKGROUND, ROOF
    target = scribble_path_for(dataset, "train", "00002.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(codes).save(target)
    open_image(window, qtbot, dataset, "train", "00001.png")
    panel = window.training
    panel.set_dataset(dataset)
    configure_quick_training(panel, epochs=2)
    panel.live_box.setChecked(True)
    assert window.canvas.probability() is None
    shown: list[int] = []
    shapes: list[tuple] = []
    window.active.preview_shown.connect(shown.append)
    window.active.preview_shown.connect(lambda _e: shapes.append(window.canvas.probability().shape))
    with qtbot.waitSignal(
        panel.training_running, timeout=60_000, check_params_cb=lambda running: not running
    ):
        assert panel.start_training()
    assert panel.last_result() is not None, panel.log_view.toPlainText()[-400:]
    qtbot.waitUntil(lambda: bool(shown) and not window.active.is_busy(), timeout=30_000)
    assert shown[0] == 1  # the first epoch's weights (the next came within the interval)
    assert shapes[0] == (64, 64)  # (the model made active at the end then shows its own)
    panel.live_box.setChecked(False)
    assert not panel.live_preview_on
