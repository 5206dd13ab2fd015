"""Images opened without generating a dataset (issue 12, item 3): view, predict, export, label."""

from __future__ import annotations

import numpy as np
from PIL import Image

from rooftop_gui.main_window import MainWindow
from rooftop_gui.settings import make_settings
from tests.factories import save_untrained_model


def _images(folder, names=("a.png", "b.jpg")):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (80, 96, 3), dtype=np.uint8)).save(folder / name)
    return [folder / n for n in names]


def test_loose_images_can_be_predicted_exported_and_labelled(qtbot, tmp_path, messages):
    a, b = _images(tmp_path / "photos")
    mask = np.zeros((80, 96), np.uint8)
    mask[10:30, 10:40] = 255
    Image.fromarray(mask).save(tmp_path / "photos" / "a_mask.png")  # a's existing label
    win = MainWindow(settings=make_settings())
    qtbot.addWidget(win)
    win.show()
    assert win.open_images([a, b])
    samples = {s.name: s for s in win.browser.samples("test")}
    assert set(samples) == {"a.png", "b.jpg"}
    assert samples["a.png"].label_path == tmp_path / "photos" / "a_mask.png"
    assert samples["b.jpg"].label_path == tmp_path / "photos" / "b_label.png"  # to be painted

    # predict them all and export the masks
    assert win.prediction.set_model(save_untrained_model(tmp_path))
    win.prediction.predict_split("test")
    assert win.prediction.wait(60_000)
    assert all(win.prediction.cached_probability(s) is not None for s in samples.values())
    assert win.prediction.export("masks", tmp_path / "out", scope="split").wait(60_000)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]

    # paint a label from nothing on b and save it beside the image
    win.browser.select("test", "b.jpg")
    qtbot.waitUntil(lambda: win.canvas.image() is not None and win.current_sample().name == "b.jpg")
    editor = win.annotation._ensure_editor()  # what the first brush stroke does
    assert editor is not None and not editor.mask.any()  # a new, empty label
    win.annotation._changed(editor.polygon([(10, 10), (50, 10), (50, 40), (10, 40)]))
    assert win.annotation.save()
    saved = np.asarray(Image.open(tmp_path / "photos" / "b_label.png")) > 0
    assert saved.any() and saved.shape == (80, 96)
    assert not messages.calls
    win.close()


def test_a_folder_of_images_opens_as_loose_images(qtbot, tmp_path, messages):
    _images(tmp_path / "photos", ("x.png", "y.png"))
    Image.fromarray(np.zeros((80, 96), np.uint8)).save(tmp_path / "photos" / "x_label.png")
    win = MainWindow(settings=make_settings())
    qtbot.addWidget(win)
    assert win.open_dataset(tmp_path / "photos")
    assert sorted(s.name for s in win.browser.samples("test")) == ["x.png", "y.png"]
    assert not messages.calls
    win.close()
