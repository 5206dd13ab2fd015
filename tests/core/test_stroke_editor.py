"""StrokeEditor (issue 16): roof / background strokes and the unlabelled eraser, undo and redo,
the dirty flag, the atomic save and recovery copies of strokes."""

from __future__ import annotations

import numpy as np
import pytest

from core.annotate import StrokeEditor, find_recovery, load_recovery, recovery_path_for
from core.dataset import open_dataset
from core.scribbles import BACKGROUND, ROOF, UNLABELLED, read_scribble, scribble_path_for
from tests.factories import write_dataset


def test_strokes_undo_redo_and_the_dirty_flag():
    editor = StrokeEditor(None, (40, 50))
    editor.begin_stroke(ROOF, 3)
    for x in range(5, 30, 4):
        editor.stroke_to(x, 10)
    assert editor.in_stroke and editor.can_undo
    editor.end_stroke()
    roof = editor.codes.copy()
    assert (roof == ROOF).sum() > 50 and editor.dirty
    region = editor.stamp(20, 10, BACKGROUND, 4)
    assert region is not None and (editor.codes == BACKGROUND).sum() > 20
    both = editor.codes.copy()
    editor.stamp(20, 10, UNLABELLED, 2)
    assert (editor.codes[8:13, 18:23] == UNLABELLED).any()
    editor.undo()
    np.testing.assert_array_equal(editor.codes, both)
    editor.undo()
    np.testing.assert_array_equal(editor.codes, roof)
    editor.undo()
    assert editor.is_empty() and not editor.dirty
    editor.redo()
    np.testing.assert_array_equal(editor.codes, roof)
    editor.begin_stroke(BACKGROUND, 2)
    editor.stroke_to(40, 30)
    assert editor.cancel_stroke() is not None
    np.testing.assert_array_equal(editor.codes, roof)
    assert editor.clear() is not None and editor.is_empty()
    editor.undo()
    np.testing.assert_array_equal(editor.codes, roof)


def test_save_and_recovery_round_trip(tmp_path):
    root = write_dataset(tmp_path / "ds", n_train=2, n_test=0)
    sample = open_dataset(root).train[1]
    target = scribble_path_for(root, "train", sample.name)
    editor = StrokeEditor(None, (64, 64), path=target)
    editor.stamp(10, 12, ROOF, 4)
    editor.stamp(50, 50, BACKGROUND, 4)
    copy_file = recovery_path_for(tmp_path / "rec", target)
    copy_file.parent.mkdir()
    editor.save_recovery(copy_file, {"name": sample.name})
    copy = load_recovery(copy_file)
    assert copy.kind == "strokes" and copy.label_path == target
    np.testing.assert_array_equal(copy.mask, editor.codes)
    restored = StrokeEditor.from_recovery(copy_file)
    assert restored.dirty
    np.testing.assert_array_equal(restored.codes, editor.codes)
    [entry] = find_recovery(tmp_path / "rec", root, open_dataset(root).train)
    assert entry.kind == "strokes" and entry.sample.name == sample.name
    assert "(strokes)" in entry.describe()
    editor.save()
    assert not editor.dirty
    np.testing.assert_array_equal(read_scribble(target, (64, 64)), editor.codes)
    assert open_dataset(root).train[1].scribble_path == target
    with pytest.raises(ValueError):
        StrokeEditor(np.full((4, 4), 5, np.uint8))
