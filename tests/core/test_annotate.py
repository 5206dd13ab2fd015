"""Mask editing logic (core.annotate): no window needed."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy import ndimage

from core.annotate import (
    MaskEditor,
    Region,
    UndoStack,
    accept_prediction,
    connected_roof,
    fill_area,
    fill_polygon,
    find_recovery,
    flood_fill,
    label_key,
    label_path_of,
    load_recovery,
    paint_stroke,
    recovery_path_for,
    stamp_disk,
    union_regions,
)
from core.annotate import editor as editor_module
from core.annotate.regions import _bbox
from core.dataset import Sample
from core.errors import ImageReadError, ImageWriteError


def disk(shape, x, y, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx - x) ** 2 + (yy - y) ** 2 <= radius**2


def segment_reference(shape, p, q, radius):
    """Brute force over the whole image: pixels within ``radius`` of segment p-q."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    d = np.subtract(q, p, dtype=float)
    length2 = float(d @ d)
    t = np.clip(((xx - p[0]) * d[0] + (yy - p[1]) * d[1]) / length2, 0, 1)
    return (xx - p[0] - t * d[0]) ** 2 + (yy - p[1] - t * d[1]) ** 2 <= radius**2 + 1e-9


def outside_unchanged(before, after, region):
    diff = before != after
    if region is None:
        return not diff.any()
    inside = np.zeros_like(diff)
    inside[region.slices] = True
    return not (diff & ~inside).any()


# ---------------------------------------------------------------------------------- Region


def test_region_union_slices_and_helpers():
    a, b = Region(1, 3, 2, 5), Region(0, 2, 4, 9)
    assert a.union(b) == Region(0, 3, 2, 9) == a | b
    assert a.union(None) == a
    assert union_regions(None, a, None, b) == Region(0, 3, 2, 9)
    assert union_regions(None, None) is None
    assert a.slices == (slice(1, 3), slice(2, 5))
    assert a.shape == (2, 3) and a.area == 6
    assert a.intersection(b) == Region(1, 2, 4, 5)
    assert a.intersection(Region(5, 6, 5, 6)) is None
    assert Region.full((4, 7, 3)) == Region(0, 4, 0, 7)
    assert a.expanded(2, (4, 6)) == Region(0, 4, 0, 6)
    with pytest.raises(ValueError):
        Region(3, 1, 0, 1)


# ----------------------------------------------------------------------------------- brush


def test_stamp_disk_has_the_right_radius():
    mask = np.zeros((101, 101), bool)
    region = stamp_disk(mask, 50, 50, 10, True)
    np.testing.assert_array_equal(mask, disk(mask.shape, 50, 50, 10))
    assert region == Region(40, 61, 40, 61)
    assert mask[50, 40] and mask[50, 60] and not mask[50, 39] and not mask[50, 61]
    # stamping again changes nothing
    assert stamp_disk(mask, 50, 50, 10, True) is None


def test_stamp_disk_fractional_centre_tiny_radius_and_borders():
    mask = np.zeros((20, 20), bool)
    stamp_disk(mask, 5.5, 7.25, 3.2)
    np.testing.assert_array_equal(mask, disk(mask.shape, 5.5, 7.25, 3.2))

    mask = np.zeros((20, 20), bool)
    assert stamp_disk(mask, 3, 4, 0) == Region(4, 5, 3, 4)  # radius 0 still paints one pixel
    assert mask.sum() == 1 and mask[4, 3]

    mask = np.zeros((20, 20), bool)
    region = stamp_disk(mask, 0, 0, 5)  # clipped at the corner
    np.testing.assert_array_equal(mask, disk(mask.shape, 0, 0, 5))
    assert region == Region(0, 6, 0, 6)
    assert stamp_disk(mask, -50, 10, 5) is None  # entirely outside
    assert stamp_disk(np.zeros((5, 5), bool), 2, 2, 100) == Region(0, 5, 0, 5)

    with pytest.raises(ValueError):
        stamp_disk(mask, 1, 1, -1)
    with pytest.raises(TypeError):
        stamp_disk(np.zeros((5, 5), np.uint8), 1, 1, 1)


def test_stroke_has_no_gaps_between_far_apart_points():
    shape = (160, 200)
    mask = np.zeros(shape, bool)
    p, q = (10, 10), (190, 150)
    region = paint_stroke(mask, [p, q], 3, True)
    np.testing.assert_array_equal(mask, segment_reference(shape, p, q, 3))
    assert ndimage.label(mask)[1] == 1
    assert region == _bbox(mask)
    # a thin (radius 0) fast stroke is still 8-connected
    thin = np.zeros(shape, bool)
    paint_stroke(thin, [(0, 0), (199, 37), (20, 159)], 0)
    assert ndimage.label(thin, structure=np.ones((3, 3)))[1] == 1


def test_polyline_stroke_matches_union_of_segments():
    shape = (64, 64)
    points = [(5, 5), (60, 8), (30, 50), (31, 50.5), (-10, 70)]
    mask = np.zeros(shape, bool)
    paint_stroke(mask, points, 4.5)
    expected = np.zeros(shape, bool)
    for p, q in zip(points[:-1], points[1:], strict=True):
        expected |= segment_reference(shape, p, q, 4.5)
    np.testing.assert_array_equal(mask, expected)


def test_eraser_clears_only_the_stroke():
    mask = np.ones((50, 80), bool)
    region = paint_stroke(mask, [(5, 25), (75, 25)], 4, False)
    expected = ~segment_reference(mask.shape, (5, 25), (75, 25), 4)
    np.testing.assert_array_equal(mask, expected)
    assert region == Region(21, 30, 1, 80)
    assert paint_stroke(mask, [], 4, False) is None


def test_long_stroke_across_a_large_mask_prints_timing():
    mask = np.zeros((2048, 2048), bool)
    rng = np.random.default_rng(1)
    points = np.cumsum(rng.normal(0, 30, (50, 2)), axis=0) + 1024
    start = time.perf_counter()
    region = paint_stroke(mask, points, 20, True)
    elapsed = time.perf_counter() - start
    print(f"\n50-point stroke, radius 20, on 2048x2048: {elapsed * 1000:.1f} ms")
    assert region is not None and outside_unchanged(np.zeros_like(mask), mask, region)
    assert ndimage.label(mask)[1] == 1


# ------------------------------------------------------------------------------- flood fill


def test_flood_fill_fills_exactly_the_inside_of_a_ring():
    shape = (80, 80)
    ring = disk(shape, 40, 40, 20) & ~disk(shape, 40, 40, 15)
    mask = ring.copy()
    region = flood_fill(mask, 40, 40, True)
    np.testing.assert_array_equal(mask, disk(shape, 40, 40, 20))
    inside = disk(shape, 40, 40, 15)
    assert region == _bbox(inside)
    # filling again, or outside the image, changes nothing
    assert flood_fill(mask, 40, 40, True) is None
    assert flood_fill(mask, -1, 5, True) is None
    assert flood_fill(mask, 80, 5, True) is None
    # filling the outside with roof leaves no background at all
    assert flood_fill(mask, 0, 0, True) is not None
    assert mask.all()


def test_flood_fill_is_four_connected_and_can_erase():
    mask = np.eye(10, dtype=bool)  # a diagonal wall: closed for 4-connectivity
    before = mask.copy()
    flood_fill(mask, 9, 0, True)  # the upper-right triangle
    yy, xx = np.mgrid[:10, :10]
    np.testing.assert_array_equal(mask, before | (xx > yy))
    # erasing a roof under the cursor: only that roof
    roofs = np.zeros((10, 10), bool)
    roofs[1:4, 1:4] = True
    roofs[6:9, 6:9] = True
    assert flood_fill(roofs, 2, 2, False) == Region(1, 4, 1, 4)
    assert roofs.sum() == 9 and roofs[6:9, 6:9].all()


def test_fill_area_counts_what_a_fill_would_change_without_changing_it():
    shape = (80, 80)
    ring = disk(shape, 40, 40, 20) & ~disk(shape, 40, 40, 15)
    for x, y, value in (
        (40, 40, True),
        (0, 0, True),
        (40, 22, False),
        (40, 40, False),
        (40, 22, True),
        (-1, 5, True),
        (80, 5, True),
    ):
        mask = ring.copy()
        area = fill_area(mask, x, y, value)
        np.testing.assert_array_equal(mask, ring)  # only counted
        flood_fill(mask, x, y, value)
        assert area == np.count_nonzero(mask != ring), (x, y, value)
    assert fill_area(ring, 40, 40) == np.count_nonzero(disk(shape, 40, 40, 15))
    assert fill_area(ring, 40, 22, True) == 0  # already roof
    with pytest.raises(TypeError):
        fill_area(ring.astype(np.uint8), 1, 1)


# ---------------------------------------------------------------------------------- polygon


def test_fill_polygon_square_and_triangle():
    mask = np.zeros((10, 10), bool)
    region = fill_polygon(mask, [(1, 1), (4, 1), (4, 4), (1, 4)])
    expected = np.zeros((10, 10), bool)
    expected[1:5, 1:5] = True  # boundary pixels included
    np.testing.assert_array_equal(mask, expected)
    assert region == Region(1, 5, 1, 5)

    mask = np.zeros((10, 10), bool)
    fill_polygon(mask, [(0, 0), (6, 0), (0, 6)])
    yy, xx = np.mgrid[:10, :10]
    np.testing.assert_array_equal(mask, xx + yy <= 6)

    # erasing with a polygon, and fractional vertices rounded to pixels
    fill_polygon(mask, [(0.2, -0.4), (2.4, 0), (2, 1.6), (0, 2)], False)
    np.testing.assert_array_equal(mask, (xx + yy <= 6) & ~((xx <= 2) & (yy <= 2)))


def test_fill_polygon_needs_three_points_and_clips():
    mask = np.zeros((20, 20), bool)
    assert fill_polygon(mask, [(1, 1), (5, 5)]) is None
    assert fill_polygon(mask, []) is None
    assert fill_polygon(mask, [(30, 30), (40, 30), (35, 40)]) is None  # entirely outside
    points = [(-10, -5), (15, -8), (25, 12), (3, 30)]
    fill_polygon(mask, points)
    big = np.zeros((60, 60), bool)
    fill_polygon(big, [(x + 20, y + 20) for x, y in points])
    np.testing.assert_array_equal(mask, big[20:40, 20:40])


# --------------------------------------------------------------------- roofs and predictions


def test_connected_roof_is_eight_connected_and_only_the_clicked_one():
    mask = np.zeros((12, 12), bool)
    mask[1:3, 1:3] = True
    mask[3, 3] = True  # touches the first block diagonally: same roof
    mask[8:11, 8:11] = True
    roof = connected_roof(mask, 1, 1)
    expected = np.zeros_like(mask)
    expected[1:3, 1:3] = True
    expected[3, 3] = True
    np.testing.assert_array_equal(roof, expected)
    assert connected_roof(mask, 3.4, 2.6) is not None  # rounds to pixel (3, 3)
    assert connected_roof(mask, 6, 6) is None  # background
    assert connected_roof(mask, 20, 1) is None  # outside


def test_accept_prediction_whole_image():
    label = np.zeros((16, 16), bool)
    label[0:3, 0:3] = True
    prediction = np.zeros((16, 16), bool)
    prediction[5:9, 6:12] = True
    region = accept_prediction(label, prediction)
    np.testing.assert_array_equal(label, prediction)
    assert region == Region(0, 9, 0, 12)
    assert accept_prediction(label, prediction) is None
    with pytest.raises(ValueError):
        accept_prediction(label, np.zeros((4, 4), bool))
    with pytest.raises(TypeError):
        accept_prediction(label, prediction.astype(np.float32))


def test_accept_prediction_at_a_point_adds_only_that_roof():
    label = np.zeros((16, 16), bool)
    label[0:2, 12:16] = True  # an existing label elsewhere stays
    label[5, 6] = True  # part of the roof already labelled
    prediction = np.zeros((16, 16), bool)
    prediction[5:9, 6:10] = True
    prediction[12:15, 1:4] = True
    before = label.copy()
    region = accept_prediction(label, prediction, at=(7, 6))
    expected = before.copy()
    expected[5:9, 6:10] = True
    np.testing.assert_array_equal(label, expected)
    assert region == Region(5, 9, 6, 10)
    assert accept_prediction(label, prediction, at=(7, 6)) is None  # already accepted
    assert accept_prediction(label, prediction, at=(0, 0)) is None  # no roof predicted there
    assert accept_prediction(label, prediction, at=(-3, 0)) is None


# -------------------------------------------------------------------------------- undo stack


def random_edit(editor: MaskEditor, rng: np.random.Generator, prediction: np.ndarray) -> None:
    h, w = editor.shape
    kind = rng.integers(0, 5)
    value = bool(rng.integers(0, 2))
    if kind == 0:
        editor.begin_stroke(value, float(rng.uniform(0, 6)))
        for _ in range(rng.integers(1, 6)):
            editor.stroke_to(*rng.uniform(-5, [w + 5, h + 5]))
        editor.end_stroke()
    elif kind == 1:
        editor.fill(*rng.uniform(0, [w, h]), value)
    elif kind == 2:
        editor.polygon(rng.uniform(-5, [w + 5, h + 5], size=(int(rng.integers(3, 7)), 2)), value)
    elif kind == 3:
        editor.accept_prediction(prediction, at=tuple(rng.uniform(0, [w, h])))
    else:
        editor.stamp(*rng.uniform(0, [w, h]), value=value, radius=float(rng.uniform(0, 8)))


def test_undo_redo_round_trips_150_random_edits_exactly():
    rng = np.random.default_rng(7)
    prediction = rng.random((48, 64)) > 0.8
    editor = MaskEditor(None, (48, 64))
    states = [editor.mask.copy()]
    while len(states) < 151:
        before_steps = editor.undo_stack.undo_count
        random_edit(editor, rng, prediction)
        if editor.undo_stack.undo_count > before_steps:  # no-op edits record no step
            states.append(editor.mask.copy())
        else:
            np.testing.assert_array_equal(editor.mask, states[-1])
    assert editor.undo_stack.undo_count == 150
    for expected in reversed(states[:-1]):
        before = editor.mask.copy()
        region = editor.undo()
        assert region is not None
        np.testing.assert_array_equal(editor.mask, expected)
        assert outside_unchanged(before, editor.mask, region)
    assert not editor.can_undo and editor.undo() is None
    for expected in states[1:]:
        assert editor.redo() is not None
        np.testing.assert_array_equal(editor.mask, expected)
    assert not editor.can_redo and editor.redo() is None


def test_undo_limit_drops_the_oldest_steps():
    editor = MaskEditor(None, (10, 10), undo_limit=5)
    states = [editor.mask.copy()]
    for i in range(8):
        editor.stamp(i, i, True, 0)
        states.append(editor.mask.copy())
    assert editor.undo_stack.undo_count == 5
    while editor.undo() is not None:
        pass
    np.testing.assert_array_equal(editor.mask, states[3])
    assert editor.dirty  # the saved (empty) state is no longer reachable


def test_new_edit_clears_the_redo_branch():
    editor = MaskEditor(None, (10, 10))
    editor.stamp(1, 1, radius=0)
    editor.stamp(5, 5, radius=0)
    editor.undo()
    assert editor.can_redo
    editor.stamp(8, 8, radius=0)
    assert not editor.can_redo and editor.redo() is None
    assert editor.mask[1, 1] and editor.mask[8, 8] and not editor.mask[5, 5]


def test_undo_stack_stores_small_packed_patches():
    stack = UndoStack(limit=3)
    mask = np.zeros((100, 100), bool)
    region = Region(10, 20, 10, 42)
    before = mask[region.slices].copy()
    mask[region.slices] = True
    edit = stack.record(region, before, mask[region.slices])
    assert edit.nbytes == 2 * 40 and stack.nbytes == 80  # 320 pixels, 1 bit each
    assert stack.undo(mask) == region and not mask.any()
    assert stack.redo(mask) == region and mask[region.slices].all()
    with pytest.raises(ValueError):
        UndoStack(limit=0)
    budget = UndoStack(limit=10, max_bytes=100)
    for _ in range(4):
        budget.record(region, before, before)
    assert budget.undo_count == 1  # over the byte budget: only the newest kept


def test_a_stroke_is_one_undo_step():
    editor = MaskEditor(None, (40, 40))
    editor.begin_stroke(True, 2)
    regions = [editor.stroke_to(x, 20) for x in range(0, 40, 7)]
    assert all(r is not None for r in regions)
    assert editor.in_stroke and editor.dirty and editor.can_undo
    total = editor.end_stroke()
    assert total == union_regions(*regions)
    assert editor.undo_stack.undo_count == 1
    assert editor.undo() == total
    assert not editor.mask.any() and not editor.dirty
    # stroke_to without an open stroke is ignored; an empty stroke records nothing
    assert editor.stroke_to(3, 3) is None
    editor.begin_stroke(False, 3)
    editor.stroke_to(10, 10)
    assert editor.end_stroke() is None
    assert editor.undo_stack.undo_count == 0


def test_undo_during_a_stroke_ends_it_first_and_cancel_reverts():
    editor = MaskEditor(None, (30, 30))
    editor.begin_stroke(True, 1)
    editor.stroke_to(5, 5)
    editor.stroke_to(20, 5)
    assert editor.undo() is not None
    assert not editor.mask.any() and not editor.in_stroke and editor.can_redo
    editor.redo()
    painted = editor.mask.copy()
    editor.begin_stroke(False, 4)
    editor.stroke_to(10, 5)
    assert editor.cancel_stroke() is not None
    np.testing.assert_array_equal(editor.mask, painted)
    assert editor.revision == editor.undo_stack.peek_undo().revision_after
    assert editor.undo_stack.undo_count == 1


# ---------------------------------------------------------------------------- dirty and save


def test_dirty_tracks_the_saved_revision(tmp_path):
    path = tmp_path / "label.png"
    editor = MaskEditor(None, (20, 20), path=path)
    assert not editor.dirty and editor.revision == 0
    assert editor.fill(5, 5, False) is None and not editor.dirty  # no-op edit
    editor.stamp(5, 5, radius=2)
    assert editor.dirty
    editor.save()
    assert not editor.dirty and path.is_file()
    editor.undo()
    assert editor.dirty
    editor.redo()
    assert not editor.dirty
    editor.stamp(15, 15, radius=2)
    editor.undo()
    assert not editor.dirty  # back at the saved state
    editor.undo()
    editor.stamp(9, 9, radius=1)  # a different branch: never saved
    assert editor.dirty
    editor.mark_saved()
    assert not editor.dirty
    revision = editor.revision
    editor.stamp(1, 1, radius=0)
    assert editor.revision != revision


def test_save_writes_a_0_255_grey_png_and_creates_the_label(tmp_path):
    rng = np.random.default_rng(3)
    editor = MaskEditor(None, (33, 47))
    editor.accept_prediction(rng.random((33, 47)) > 0.5)
    path = tmp_path / "new_label.png"
    assert not path.exists()
    assert editor.save(path) == path
    with Image.open(path) as im:
        assert im.mode == "L" and im.size == (47, 33)
        data = np.asarray(im)
    assert set(np.unique(data)) <= {0, 255}
    np.testing.assert_array_equal(data, editor.mask.astype(np.uint8) * 255)
    assert editor.path == path and not editor.dirty
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_editor_copies_its_mask_and_checks_shapes():
    original = np.zeros((5, 6), np.uint8)
    original[1, 1] = 255
    editor = MaskEditor(original)
    assert editor.mask.dtype == bool and editor.mask[1, 1] and editor.shape == (5, 6)
    editor.stamp(4, 4, radius=0)
    assert original[4, 4] == 0
    with pytest.raises(ValueError):
        MaskEditor(None)
    with pytest.raises(ValueError):
        MaskEditor(np.zeros((5, 6), bool), (6, 5))


@pytest.mark.parametrize("where", ["missing_folder", "is_a_folder"])
def test_failed_save_raises_and_keeps_the_edit_dirty(tmp_path, where):
    editor = MaskEditor(None, (10, 10))
    editor.stamp(4, 4, radius=2)
    painted = editor.mask.copy()
    if where == "missing_folder":
        path = tmp_path / "nope" / "label.png"
    else:
        path = tmp_path / "label.png"
        path.mkdir()
    with pytest.raises(ImageWriteError) as info:
        editor.save(path)
    assert info.value.path == path and str(path) in str(info.value)
    assert editor.dirty and editor.path is None
    np.testing.assert_array_equal(editor.mask, painted)
    assert editor.undo() is not None  # history intact


def test_unexpected_save_failure_becomes_an_image_write_error(tmp_path, monkeypatch):
    def broken(path, mask):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(editor_module, "write_mask", broken)
    editor = MaskEditor(None, (4, 4))
    editor.stamp(1, 1)
    with pytest.raises(ImageWriteError, match="disk on fire") as info:
        editor.save(tmp_path / "x.png")
    assert info.value.path == tmp_path / "x.png" and editor.dirty


def test_save_mid_stroke_keeps_the_stroke_open(tmp_path):
    editor = MaskEditor(None, (20, 20))
    editor.begin_stroke(True, 1)
    editor.stroke_to(2, 2)
    editor.save(tmp_path / "l.png")
    assert not editor.dirty and editor.in_stroke
    editor.stroke_to(10, 2)
    assert editor.dirty
    editor.end_stroke()
    editor.undo()
    assert not editor.mask.any() and editor.dirty


# ----------------------------------------------------------------------------------- recovery


def test_recovery_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    editor = MaskEditor(rng.random((17, 29)) > 0.5, path=tmp_path / "labels" / "a.png")
    editor.stamp(3, 3, radius=2)
    recovery = tmp_path / "a.recovery.npz"
    assert editor.save_recovery(recovery, {"image": "a.png"}) == recovery
    assert editor.dirty  # a recovery copy is not a save
    copy = load_recovery(recovery)
    np.testing.assert_array_equal(copy.mask, editor.mask)
    assert copy.label_path == tmp_path / "labels" / "a.png"
    assert copy.metadata == {"image": "a.png"}
    restored = MaskEditor.from_recovery(recovery)
    np.testing.assert_array_equal(restored.mask, editor.mask)
    assert restored.dirty and restored.path == copy.label_path and not restored.can_undo
    restored.undo()
    assert restored.dirty


def test_recovery_errors_name_the_file(tmp_path):
    editor = MaskEditor(None, (4, 4))
    with pytest.raises(ImageWriteError):
        editor.save_recovery(tmp_path / "missing" / "r.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ImageReadError) as info:
        load_recovery(bad)
    assert info.value.path == bad
    other = tmp_path / "other.npz"
    np.savez(other, mask=np.zeros(3, np.uint8), meta=np.array('{"format": "x"}'))
    with pytest.raises(ImageReadError, match="not a Rooftop recovery"):
        load_recovery(other)
    with pytest.raises(ImageReadError, match="not found"):
        load_recovery(tmp_path / "none.npz")


def test_find_recovery_returns_the_copies_of_the_given_samples(tmp_path):
    root, folder = tmp_path / "roofs", tmp_path / "recovery"
    assert find_recovery(folder, root, []) == []  # no folder yet
    folder.mkdir()
    samples = [
        Sample(name, "train", root / "train" / "data" / name, None) for name in ("a.png", "b.jpg")
    ]
    labelled = Sample(
        "c.png", "test", root / "test" / "data" / "c.png", tmp_path / "elsewhere" / "c.png"
    )
    assert label_path_of(root, samples[1]) == root / "train" / "label" / "b.png"
    assert label_path_of(None, samples[0]) == root / "train" / "label" / "a.png"
    assert label_path_of(root, labelled) == tmp_path / "elsewhere" / "c.png"

    for sample in (samples[1], labelled):
        label = label_path_of(root, sample)
        copy = recovery_path_for(folder, label)
        assert copy.parent == folder and copy.name.startswith(Path(label).stem + "-")
        MaskEditor(None, (4, 4), path=label).save_recovery(copy)
    other = tmp_path / "other" / "train" / "label" / "a.png"  # a same-named label elsewhere
    assert recovery_path_for(folder, other) != recovery_path_for(
        folder, label_path_of(root, samples[0])
    )
    MaskEditor(None, (4, 4), path=other).save_recovery(recovery_path_for(folder, other))
    MaskEditor(None, (4, 4)).save_recovery(folder / "no-label.npz")
    (folder / "broken.npz").write_bytes(b"not a zip")  # skipped (logged)

    found = find_recovery(folder, root, [*samples, labelled])
    assert sorted(e.sample.name for e in found) == ["b.jpg", "c.png"]
    entry = next(e for e in found if e.sample is samples[1])
    assert entry.file == recovery_path_for(folder, root / "train" / "label" / "b.png")
    assert entry.label_path == root / "train" / "label" / "b.png"
    assert entry.describe().startswith("train/b.jpg") and entry.created
    assert label_key(root / "train" / ".." / "train" / "label" / "b.png") == label_key(
        entry.label_path
    )


# ---------------------------------------------------------------- regions bound the changes

coordinate = st.floats(-8, 40, allow_nan=False)
point = st.tuples(coordinate, coordinate)
operation = st.one_of(
    st.tuples(
        st.just("stroke"), st.lists(point, min_size=1, max_size=5), st.floats(0, 6), st.booleans()
    ),
    st.tuples(st.just("fill"), point, st.booleans()),
    st.tuples(st.just("polygon"), st.lists(point, min_size=0, max_size=6), st.booleans()),
    st.tuples(st.just("accept"), st.one_of(st.none(), point)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), op=operation)
def test_returned_region_bounds_every_change(seed, op):
    rng = np.random.default_rng(seed)
    mask = ndimage.binary_opening(rng.random((31, 37)) > 0.55)
    prediction = ndimage.binary_opening(rng.random((31, 37)) > 0.5)
    before = mask.copy()
    kind = op[0]
    if kind == "stroke":
        region = paint_stroke(mask, op[1], op[2], op[3])
    elif kind == "fill":
        region = flood_fill(mask, *op[1], op[2])
    elif kind == "polygon":
        region = fill_polygon(mask, op[1], op[2])
    else:
        region = accept_prediction(mask, prediction, op[1])
    assert outside_unchanged(before, mask, region)
    if region is not None:
        assert region == _bbox(before != mask)  # tight, and None only when unchanged
        assert 0 <= region.y0 < region.y1 <= 31 and 0 <= region.x0 < region.x1 <= 37


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    strokes=st.lists(st.lists(point, min_size=1, max_size=4), min_size=1, max_size=4),
)
def test_editor_stroke_regions_bound_changes_and_undo_restores(seed, strokes):
    rng = np.random.default_rng(seed)
    start = rng.random((31, 37)) > 0.6
    editor = MaskEditor(start)
    for i, stroke in enumerate(strokes):
        before = editor.mask.copy()
        editor.begin_stroke(bool(i % 2), float(rng.uniform(0, 5)))
        regions = []
        for x, y in stroke:
            step_before = editor.mask.copy()
            regions.append(editor.stroke_to(x, y))
            assert outside_unchanged(step_before, editor.mask, regions[-1])
        total = editor.end_stroke()
        assert total == union_regions(*regions)
        assert outside_unchanged(before, editor.mask, total)
    while editor.undo() is not None:
        pass
    np.testing.assert_array_equal(editor.mask, start)
    assert not editor.dirty
