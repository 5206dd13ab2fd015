"""Brush strokes as undo steps: only the tiles a stroke changed are stored, and undo, redo and
cancel restore the mask exactly (core.annotate.MaskEditor, Edit.from_parts)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.annotate import Edit, MaskEditor, Region, paint_stroke


def random_mask(seed: int, shape=(300, 340), p: float = 0.3) -> np.ndarray:
    return np.random.default_rng(seed).random(shape) < p


def covered(parts, shape) -> np.ndarray:
    out = np.zeros(shape, bool)
    for part in parts:
        out[part.slices] = True
    return out


def test_a_long_diagonal_stroke_stores_its_tiles_not_its_bounding_box():
    start = random_mask(0, (1024, 1024), 0.05)
    editor = MaskEditor(start)
    editor.begin_stroke(True, 12)
    points = [(40 + 19 * i, 30 + 19 * i) for i in range(50)]
    regions = [editor.stroke_to(x, y) for x, y in points]
    painted = editor.mask.copy()
    total = editor.end_stroke()
    edit = editor.undo_stack.peek_undo()
    assert edit.region == total and editor.undo_stack.undo_count == 1
    assert len(edit.parts) > 1
    # the parts are disjoint, inside the region, and hold every changed pixel
    assert sum(p.area for p in edit.parts) == covered(edit.parts, start.shape).sum()
    assert all(p.intersection(total) == p for p in edit.parts)
    changed = start != painted
    assert not (changed & ~covered(edit.parts, start.shape)).any()
    # far less than two bit-packed copies of the bounding box (a diagonal covers little of it)
    assert edit.nbytes < 0.25 * 2 * total.area / 8
    assert editor.undo() == total
    np.testing.assert_array_equal(editor.mask, start)
    assert not editor.dirty
    assert editor.redo() == total
    np.testing.assert_array_equal(editor.mask, painted)
    assert all(r is not None for r in regions)


def test_erasing_stroke_round_trips_and_cancel_restores_exactly():
    start = random_mask(1, (260, 300), 0.7)
    editor = MaskEditor(start)
    editor.begin_stroke(False, 9)
    for x, y in [(-20, 10), (150, 130), (290, 250), (10, 250)]:
        editor.stroke_to(x, y)
    erased = editor.mask.copy()
    assert (erased <= start).all() and (erased != start).any()
    editor.end_stroke()
    editor.undo()
    np.testing.assert_array_equal(editor.mask, start)
    editor.redo()
    np.testing.assert_array_equal(editor.mask, erased)

    revision = editor.revision
    editor.begin_stroke(True, 30)
    editor.stroke_to(20, 20)
    editor.stroke_to(280, 240)
    assert editor.cancel_stroke() is not None
    np.testing.assert_array_equal(editor.mask, erased)
    assert editor.revision == revision and editor.undo_stack.undo_count == 1


coordinate = st.floats(-40, 340, allow_nan=False)
stroke = st.tuples(
    st.booleans(),
    st.floats(0, 40),
    st.lists(st.tuples(coordinate, coordinate), min_size=1, max_size=6),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), strokes=st.lists(stroke, min_size=1, max_size=5))
def test_strokes_across_tiles_undo_and_redo_exactly(seed, strokes):
    """Masks bigger than the 64-pixel snapshot tiles, strokes crossing tile and image borders."""
    start = random_mask(seed, (200, 300), 0.4)
    editor = MaskEditor(start)
    states = [start.copy()]
    for value, radius, points in strokes:
        editor.begin_stroke(value, radius)
        for x, y in points:
            editor.stroke_to(x, y)
        expected = states[-1].copy()
        paint_stroke(expected, points, radius, value)
        if editor.end_stroke() is not None:
            states.append(editor.mask.copy())
        np.testing.assert_array_equal(editor.mask, expected)
    assert editor.undo_stack.undo_count == len(states) - 1
    for state in reversed(states[:-1]):
        editor.undo()
        np.testing.assert_array_equal(editor.mask, state)
    assert not editor.dirty
    for state in states[1:]:
        editor.redo()
        np.testing.assert_array_equal(editor.mask, state)


def test_edit_from_parts_checks_its_patches():
    region = Region(0, 10, 0, 20)
    parts = [Region(0, 4, 0, 5), Region(6, 10, 10, 20)]
    before = [np.zeros(p.shape, bool) for p in parts]
    after = [np.ones(p.shape, bool) for p in parts]
    edit = Edit.from_parts(region, parts, before, after, 3, 4)
    assert edit.stored_parts == tuple(parts) and edit.nbytes == 2 * 8  # 60 pixels -> 8 bytes
    mask = np.zeros((12, 24), bool)
    assert edit.apply(mask, after=True) == region
    assert mask.sum() == 60 and mask[parts[0].slices].all() and mask[parts[1].slices].all()
    edit.apply(mask, after=False)
    assert not mask.any()
    with pytest.raises(ValueError):
        edit.before  # noqa: B018 - only whole-region edits have one patch
    with pytest.raises(ValueError):
        Edit.from_parts(region, parts, before[:1], after)
    with pytest.raises(ValueError):
        Edit.from_parts(region, [Region(0, 4, 0, 6), parts[1]], before, after)
    with pytest.raises(ValueError):
        Edit.from_parts(region, [Region(8, 12, 0, 5), parts[1]], before, after)
    # a whole-region edit still has its before / after patches
    whole = Edit.from_patches(region, np.zeros(region.shape, bool), np.ones(region.shape, bool))
    assert whole.stored_parts == (region,) and whole.after.all() and not whole.before.any()
