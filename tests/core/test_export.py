"""core.export.export_outputs: masks and composites as shown, past unreadable images, stops."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from core.errors import ConfigError
from core.export import ExportItem, composite, composite_path, export_outputs, mask_path
from core.io import read_image, read_mask
from core.postprocess import to_mask
from core.progress import Progress, Stopped


def _items(tmp_path, count=3):
    rng = np.random.default_rng(0)
    (tmp_path / "data").mkdir()
    (tmp_path / "label").mkdir()
    items = []
    for i in range(count):
        image = tmp_path / "data" / f"{i:05d}.png"
        label = tmp_path / "label" / image.name
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(image)
        Image.fromarray(np.where(rng.random((24, 32)) > 0.5, 255, 0).astype(np.uint8)).save(label)
        prob = rng.random((24, 32)).astype(np.float32)
        items.append(ExportItem(image.name, image, label, prob, tag=i))
    return items


def test_masks_are_written_as_shown_and_stale_temp_files_of_the_targets_go(tmp_path):
    items = _items(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    stale, other = out / ".00001.png.abcdefgh.tmp", out / ".notes.txt.abcdefgh.tmp"
    for path in (stale, other):
        path.write_bytes(b"x")
        os.utime(path, (1, 1))
    events = []
    result = export_outputs(out, "masks", items, 0.4, 3, on_progress=events.append)
    assert result.written == [mask_path(out, item.name) for item in items]
    assert not result.errors and not result.stopped
    for item in items:
        assert np.array_equal(read_mask(mask_path(out, item.name)), to_mask(item.prob, 0.4, 3))
    assert not stale.exists() and other.exists()  # only the leftovers of the files it writes
    assert events == [Progress(i + 1, 3, item.name) for i, item in enumerate(items)]


def test_composites_read_what_is_missing_predict_what_has_no_prediction_and_go_on(tmp_path):
    items = _items(tmp_path)
    broken = ExportItem("broken.png", tmp_path / "data" / "missing.png")
    first = ExportItem(items[0].name, items[0].image_path, items[0].label_path, tag="mine")
    predicted = []

    def predict(item, image):
        predicted.append(item.tag)
        return np.full(image.shape[:2], 0.9, np.float32)

    result = export_outputs(
        tmp_path / "out", "composites", [first, broken, items[1]], 0.5, 0, predict=predict
    )
    assert predicted == ["mine"]  # broken could not be read; items[1] had its prediction
    assert len(result.errors) == 1 and "missing.png" in result.errors[0]
    assert result.written == [
        composite_path(tmp_path / "out", n) for n in ("00000.png", "00001.png")
    ]
    picture = read_image(result.written[1])
    expected = composite(
        read_image(items[1].image_path),
        read_mask(items[1].label_path),
        to_mask(items[1].prob, 0.5, 0),
    )
    assert np.array_equal(picture, expected)


def test_a_stop_returns_what_was_written(tmp_path):
    items = _items(tmp_path)
    asked = iter([False, True])
    result = export_outputs(
        tmp_path / "out", "masks", items, 0.5, 0, should_stop=lambda: next(asked, True)
    )
    assert result.stopped and len(result.written) == 1

    def stop(item, image):
        raise Stopped("prediction stopped")

    nothing = [ExportItem(items[0].name, items[0].image_path)]
    result = export_outputs(tmp_path / "out2", "masks", nothing, 0.5, 0, predict=stop)
    assert result.stopped and result.written == [] and result.errors == []
    with pytest.raises(ConfigError):
        export_outputs(tmp_path / "out3", "overlays", items, 0.5, 0)
