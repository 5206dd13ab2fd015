"""The spatial train/test split of the windows cut from one large image (torch-free).

The original drew a random 15 % of the patches as the test set, with replacement, from
overlapping windows and rotated copies of the same ground: test ground leaked into training.
Here the test set is a *region of the source ground*, a rectangle ``x0 <= x < x1, y0 <= y < y1``
(``core.generate.GenerateResult.test_region``): either a strip across the whole image (vertical or
horizontal, anywhere) or a rectangle in one of its four corners. Windows wholly inside the region
go to test, windows wholly outside it go to train, and windows that straddle its border are
dropped (``GenerateResult.n_dropped``), so no source pixel is in both splits, whatever the
rotation.

Every strip and corner rectangle whose borders lie on window edges is a candidate (all of them
are scored at once with cumulative counts, which takes milliseconds even for 40,000 windows).
A candidate must leave both splits non-empty; its cost is ``|test share - test_fraction|`` (the
share of the *kept* patches) plus 0.1 x the share of windows it drops, so a region that drops a
tenth more of the windows must come 0.01 closer to the requested share to be preferred. The seed
picks at random among the candidates within 0.002 of the lowest cost, so a different seed can give
a different test region. Large windows limit what is possible: a 1024 window of a 2048 image fits
only in a test region of a quarter of the image, so with the default plan and ``test_fraction``
0.15 those windows go to train or are dropped; the test share of all kept patches still comes out
at about 0.15 (0.146 to 0.154 depending on the seed). When no region leaves whole windows on both
sides (an image hardly larger than its windows) a ConfigError says so; ``test_fraction`` 0 puts
every window in train.

:func:`choose_test_region` takes windows (anything with ``x``, ``y`` and ``size``, like
``core.generate.Window``); :func:`split_windows` the same as arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from core.errors import ConfigError


class SquareWindow(Protocol):
    """A square window: top-left corner ``x, y`` and ``size``, in source pixels."""

    @property
    def x(self) -> int: ...
    @property
    def y(self) -> int: ...
    @property
    def size(self) -> int: ...


#: at most this many band borders per axis are scored (all of them for usual plans)
_MAX_EDGES = 400
#: a region's cost is |test share - test_fraction| + this x the share of windows it drops at
#: its border: dropping 10 % of the windows weighs like a test share 0.01 further off
_DROP_WEIGHT = 0.1
#: regions whose cost is within this of the best are equally good; the seed picks one
_COST_TIES = 0.002


def _band_scores(
    start: np.ndarray, size: np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Score every band ``[a, b)`` along one axis whose borders are window edges.

    Returns ``(a, b, n_inside, n_outside)`` arrays, one entry per candidate band.
    """
    end = start + size
    edges = _edges(start, end, length)
    g = edges.size
    # window w is inside [edges[i], edges[j]) iff i <= first[w] and j >= last[w]
    first = np.searchsorted(edges, start, side="right") - 1
    last = np.searchsorted(edges, end, side="left")
    hist = np.zeros((g, g), np.int64)
    np.add.at(hist, (first, last), 1)
    # inside[i, j] = sum over p >= i, q <= j of hist[p, q]
    inside = np.cumsum(np.cumsum(hist[::-1], axis=0)[::-1], axis=1)
    # before[i]: windows ending at or before edges[i]; after[j]: windows starting at or after edges[j]
    # (end <= edges[i] iff i >= searchsorted left; start >= edges[j] iff j <= searchsorted right - 1)
    before = np.cumsum(np.bincount(np.searchsorted(edges, end, side="left"), minlength=g))
    after = np.cumsum(
        np.bincount(np.searchsorted(edges, start, side="right") - 1, minlength=g)[::-1]
    )[::-1]
    i, j = np.triu_indices(g, k=1)
    return edges[i], edges[j], inside[i, j], before[i] + after[j]


def _edges(start: np.ndarray, end: np.ndarray, length: int) -> np.ndarray:
    edges = np.unique(np.concatenate([[0, length], start, end]))
    if edges.size > _MAX_EDGES:
        keep = np.unique(np.linspace(0, edges.size - 1, _MAX_EDGES).round().astype(np.int64))
        edges = edges[keep]
    return edges


def _corner_scores(
    xs: np.ndarray, ys: np.ndarray, ss: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score every rectangle ``[0, X) x [0, Y)`` whose far corner lies on window edges.

    Returns ``(regions (n, 4), n_inside, n_outside)``.
    """
    ex, ey = _edges(xs, xs + ss, width), _edges(ys, ys + ss, height)
    gx, gy = ex.size, ey.size
    # inside iff x + s <= X and y + s <= Y
    hist = np.zeros((gx, gy), np.int64)
    np.add.at(hist, (np.searchsorted(ex, xs + ss, "left"), np.searchsorted(ey, ys + ss, "left")), 1)
    inside = hist.cumsum(0).cumsum(1)
    # overlapping iff x < X and y < Y
    hist[:] = 0
    np.add.at(hist, (np.searchsorted(ex, xs, "right"), np.searchsorted(ey, ys, "right")), 1)
    outside = xs.size - hist.cumsum(0).cumsum(1)
    jx, jy = np.meshgrid(np.arange(gx), np.arange(gy), indexing="ij")
    jx, jy = jx.ravel(), jy.ravel()
    zeros = np.zeros(jx.size, np.int64)
    regions = np.stack([zeros, zeros, ex[jx], ey[jy]], 1)
    return regions, inside.ravel(), outside.ravel()


def _candidates(
    xs: np.ndarray, ys: np.ndarray, ss: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every candidate test region: ``(regions (n, 4) as x0, y0, x1, y1, n_test, n_train)``."""
    regions, tests, trains = [], [], []
    for vertical in (True, False):  # strips across the whole image
        a, b, n_in, n_out = _band_scores(xs if vertical else ys, ss, width if vertical else height)
        regions.append(
            np.stack([a, np.zeros_like(a), b, np.full_like(a, height)], 1)
            if vertical
            else np.stack([np.zeros_like(a), a, np.full_like(a, width), b], 1)
        )
        tests.append(n_in)
        trains.append(n_out)
    for flip_x in (False, True):  # rectangles in each corner (mirror the windows, then back)
        for flip_y in (False, True):
            fx = width - xs - ss if flip_x else xs
            fy = height - ys - ss if flip_y else ys
            rect, n_in, n_out = _corner_scores(fx, fy, ss, width, height)
            x0, y0, x1, y1 = rect.T
            if flip_x:
                x0, x1 = width - x1, width - x0
            if flip_y:
                y0, y1 = height - y1, height - y0
            regions.append(np.stack([x0, y0, x1, y1], 1))
            tests.append(n_in)
            trains.append(n_out)
    return np.concatenate(regions), np.concatenate(tests), np.concatenate(trains)


def _choose_region(
    xs: np.ndarray,
    ys: np.ndarray,
    ss: np.ndarray,
    width: int,
    height: int,
    fraction: float,
    seed: int,
) -> tuple[int, int, int, int] | None:
    """The test region (module docstring) as ``(x0, y0, x1, y1)``, or None if none is possible."""
    region, n_test, n_train = _candidates(xs, ys, ss, width, height)
    valid = (n_test > 0) & (n_train > 0)
    if not valid.any():
        return None
    region, n_test, n_train = region[valid], n_test[valid], n_train[valid]
    error = np.abs(n_test / (n_test + n_train) - fraction)
    dropped = 1.0 - (n_test + n_train) / xs.size
    cost = error + _DROP_WEIGHT * dropped
    pool = np.flatnonzero(cost <= cost.min() + _COST_TIES)
    # a region can appear twice (a corner rectangle as wide as the image is a strip): dedupe so
    # that the seed picks among distinct regions with equal odds
    pool = pool[np.unique(region[pool], axis=0, return_index=True)[1]]
    pick = int(pool[np.random.default_rng(seed).integers(pool.size)])
    return tuple(int(v) for v in region[pick])  # type: ignore[return-value]


def _assign(
    xs: np.ndarray, ys: np.ndarray, ss: np.ndarray, region: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean arrays (wholly inside ``region``, wholly outside it) for the windows."""
    x0, y0, x1, y1 = region
    inside = (xs >= x0) & (ys >= y0) & (xs + ss <= x1) & (ys + ss <= y1)
    outside = (xs + ss <= x0) | (xs >= x1) | (ys + ss <= y0) | (ys >= y1)
    return inside, outside


def _too_small(
    width: int, height: int, sizes: Iterable[int], path: str | Path | None
) -> ConfigError:
    return ConfigError(
        f"the image ({width} x {height}) is too small to split spatially with windows of "
        f"{', '.join(str(s) for s in sorted(set(sizes)))} px: no strip of it holds whole test "
        "windows while leaving whole train windows beside it (a window may not cross the split); "
        "use smaller --patch sizes, a larger image, or --test-fraction 0",
        path,
    )


def choose_test_region(
    windows: Sequence[SquareWindow],
    width: int,
    height: int,
    fraction: float,
    seed: int,
    path: str | Path | None = None,
) -> tuple[tuple[int, int, int, int] | None, np.ndarray, np.ndarray]:
    """The test band whose test share is closest to ``fraction`` (see the module docstring).

    Returns ``(region, is_test, is_train)`` (boolean arrays over ``windows``; windows in neither are
    dropped); region None when ``fraction`` is 0. ConfigError (naming ``path``) when no band works.
    """
    xs = np.fromiter((w.x for w in windows), np.int64, len(windows))
    ys = np.fromiter((w.y for w in windows), np.int64, len(windows))
    ss = np.fromiter((w.size for w in windows), np.int64, len(windows))
    return split_windows(xs, ys, ss, width, height, fraction, seed, path)


def split_windows(
    xs: np.ndarray,
    ys: np.ndarray,
    ss: np.ndarray,
    width: int,
    height: int,
    fraction: float,
    seed: int,
    path: str | Path | None = None,
) -> tuple[tuple[int, int, int, int] | None, np.ndarray, np.ndarray]:
    """:func:`choose_test_region` of windows given as arrays: top-left corners ``xs``, ``ys``
    and sizes ``ss`` (int64, source pixels)."""
    if fraction <= 0:
        return None, np.zeros(xs.size, bool), np.ones(xs.size, bool)
    region = _choose_region(xs, ys, ss, width, height, fraction, seed) if xs.size else None
    if region is None:
        raise _too_small(width, height, ss.tolist(), path)
    is_test, is_train = _assign(xs, ys, ss, region)
    return region, is_test, is_train


__all__ = ["SquareWindow", "choose_test_region", "split_windows"]
