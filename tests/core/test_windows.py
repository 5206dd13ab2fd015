"""The window planner (core.windows): both kinds of windows cover every pixel, as documented."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.windows import axis_starts, grid_starts, plan_tiles


def test_documented_examples():
    assert axis_starts(10, 4, 3) == [0, 3, 6]
    assert axis_starts(11, 4, 3) == [0, 3, 6, 7]
    assert axis_starts(4, 4, 3) == [0]
    assert axis_starts(3, 4, 3) == []
    assert grid_starts(11, 4, 3) == (13, [0, 3, 6, 9])
    assert grid_starts(10, 4, 3) == (10, [0, 3, 6])
    assert grid_starts(3, 4, 3) == (4, [0])
    assert grid_starts(4, 4, 3) == (4, [0])


@given(length=st.integers(1, 600), size=st.integers(1, 128), step=st.integers(1, 128))
def test_axis_starts_whole_windows_cover_every_pixel(length, size, step):
    starts = axis_starts(length, size, step)
    if length < size:
        assert starts == []
        return
    assert starts == sorted(set(starts)) and starts[0] == 0
    assert starts[-1] == length - size  # flush with the end, never past it
    assert starts[:-1] == list(range(0, length - size + 1, step))[: len(starts) - 1]
    if step <= size:  # windows that overlap or touch (a stride fraction up to 1) cover it all
        covered = set()
        for s in starts:
            covered.update(range(s, s + size))
        assert covered == set(range(length))


@given(length=st.integers(1, 600), size=st.integers(1, 128), step=st.integers(1, 128))
def test_grid_starts_are_regular_and_the_fewest_that_cover(length, size, step):
    step = min(step, size)  # tiles that overlap or touch, as prediction uses them
    reach, starts = grid_starts(length, size, step)
    assert starts == [i * step for i in range(len(starts))]
    assert reach == starts[-1] + size and reach >= length
    assert len(starts) == 1 or starts[-1] < length - size + step  # one fewer would not cover


def test_plan_tiles_is_the_grid_on_both_axes():
    plan = plan_tiles(300, 420, 128, 64)
    assert (plan.padded_height, list(plan.ys)) == grid_starts(300, 128, 64)
    assert (plan.padded_width, list(plan.xs)) == grid_starts(420, 128, 64)
    assert plan.tiles()[:2] == [(0, 0), (0, 64)] and len(plan.tiles()) == len(plan) == 4 * 6
    assert plan.padded_height == 320 and plan.padded_width == 448


@pytest.mark.parametrize("size,step", [(0, 1), (4, 0)])
def test_a_window_or_step_of_no_pixels_is_refused(size, step):
    with pytest.raises(ValueError):
        axis_starts(10, size, step)
