"""Which image to label next: the ones the model doubts most, weighed by how typical they look
of the images given (or by how new). Torch-free and Qt-free.

The window's "label next" weighs the doubt by *density* (:data:`WINDOW_WEIGHTS`, below): on
``../shared/devdata`` (``benchmarks/sparse_labels.py --active``, 1 CPU minute per model, 3
seeds; docs/sparse-labels.md) it reached 0.416 test IoU at 4 labelled tiles and 0.416 at 8,
against 0.381 and 0.411 in random order, where the doubt alone had been level with random at 4
(0.348 against 0.357). The weighting by novelty alone, and density with novelty, scored *below*
random order: novelty's first pick is the most unusual image (the coarse potsdam tiles, each
time), which teaches least about the rest. They stay for experiments and batch selection.

Doubt alone (:func:`core.uncertainty.image_uncertainty`) ranks first the images of a kind the
model has not learnt yet, but all of them: five tiles of the same unseen town come before any of
another, and a user who labels down the list labels the same scene five times. So the order
weighs each image's doubt by its *novelty*, how far it looks from the images already labelled
and those ranked before it (the greedy farthest-first traversal of core-set selection, Sener and
Savarese 2018, weighted by doubt as in Settles' information density):

    pick next  argmax  doubt(c) * novelty(c),   novelty(c) = min(1, d(c) / D)

where ``d(c)`` is the distance from ``c``'s look to the nearest look labelled or picked so far
and ``D`` the median distance between two of the looks given.
An image at least as far from everything labelled as two images typically are from each other
is wholly new (novelty 1), and among those doubt decides: the order covers the kinds of image
first, the most doubtful of each kind. An image like one labelled already weighs less, by how
like it is. With no look known yet every novelty is 1, so the first pick is the most doubtful.

Novelty makes the most unusual image the first pick (on devdata, a coarse potsdam tile each
time), which teaches least about the rest. ``weigh=("density",)`` (alone or with novelty)
weighs the doubt instead, or as well, by how *typical* the image's look is of all those given
(:func:`density`: the mean Gaussian similarity to them; the information density of Settles and
Craven 2008), so a doubted image like many others comes before a doubted outlier.

A *look* (:func:`appearance`) is 8 numbers: each band's mean and spread (sensor, season, light),
the mean grey-level gradient (texture at the pixel scale) and the ratio of the gradient at half
resolution to it (how sharp the image is for its pixel size: it tells a coarse orthophoto from a
fine one), each in fixed units (:func:`appearance`) rather than standardised over the images
given, so that a number that varies only by noise across a dataset is not blown up to the weight
of one that tells sensors apart. On ``../shared/devdata`` the nearest look of 89 % of the 37 tiles
is a tile of the same source (86 % with standardised looks).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

import numpy as np

#: The length of :func:`appearance`'s vector.
LOOK_SIZE = 8
#: Grey levels (of 255) that make one unit of a band's mean or spread in a look.
LEVEL_STEP = 25.0
#: One unit of the sharpness ratio in a look (it ranges about 1.3 to 1.7 on aerial tiles).
SHARPNESS_STEP = 0.15


def appearance(image: np.ndarray) -> np.ndarray:
    """The look of an ``(H, W, 3)`` 8-bit image (see the module): ``(8,) float64``, in units
    where 1 is a comparable step of each (:data:`LEVEL_STEP` grey levels of a band's mean or
    spread, a doubling of the gradient, :data:`SHARPNESS_STEP` of the sharpness ratio)."""
    x = np.asarray(image)
    if x.ndim != 3 or x.shape[2] < 3 or min(x.shape[:2]) < 4:
        raise ValueError(f"appearance needs an (H, W, 3) image of at least 4 px, got {x.shape}")
    x = x[..., :3].astype(np.float32)
    look = []
    for band in range(3):
        look += [float(x[..., band].mean()) / LEVEL_STEP, float(x[..., band].std()) / LEVEL_STEP]
    grey = x.mean(axis=2)
    fine = max(_mean_gradient(grey), 1e-3)
    coarse = _mean_gradient(grey[::2, ::2])
    look += [float(np.log2(fine)), coarse / fine / SHARPNESS_STEP]
    return np.asarray(look, np.float64)


def _mean_gradient(grey: np.ndarray) -> float:
    return float((np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean()) / 2)


#: What :func:`label_next_order` may weigh the doubt by, given looks.
WEIGHTS = ("novelty", "density")
#: What the window's "label next" weighs the doubt by once it has the images' looks: density
#: (measured against the doubt alone, novelty and both: docs/sparse-labels.md).
WINDOW_WEIGHTS = ("density",)


def label_next_order(
    scores: Mapping[Hashable, float],
    keys: Iterable[Hashable] | None = None,
    looks: Mapping[Hashable, np.ndarray] | None = None,
    known: Iterable[np.ndarray] = (),
    weigh: Iterable[str] = ("novelty",),
) -> list[Hashable]:
    """``keys`` (default: the mapping's) in "label next" order.

    Without ``looks``: the highest doubt (``scores``) first. With ``looks`` (each key's
    :func:`appearance`) and ``known`` (the looks of the images labelled already): doubt weighed
    by what ``weigh`` names (:data:`WEIGHTS`), as the module says: ``novelty`` and/or
    ``density``, their product when both. Keys without a finite score come last; a key without
    a look counts as new (novelty 1) and typical (density 1). Ties keep the order of ``keys``,
    so the order is stable."""
    weigh = tuple(weigh)
    unknown = [w for w in weigh if w not in WEIGHTS]
    if unknown:
        raise ValueError(f"unknown label-next weight {unknown[0]!r} (known: {', '.join(WEIGHTS)})")
    keys = list(scores) if keys is None else list(keys)
    position = {k: i for i, k in enumerate(keys)}

    def finite(key: Hashable) -> bool:
        score = scores.get(key)
        return score is not None and bool(np.isfinite(score))

    ranked = [k for k in keys if finite(k)]
    unscored = [k for k in keys if not finite(k)]
    if not looks or not weigh:
        ranked.sort(key=lambda k: (-float(scores[k]), position[k]))
        return ranked + unscored
    return _weighed_doubt(ranked, scores, looks, list(known), weigh) + unscored


def _weighed_doubt(
    keys: list[Hashable],
    scores: Mapping[Hashable, float],
    looks: Mapping[Hashable, np.ndarray],
    known: list[np.ndarray],
    weigh: tuple[str, ...],
) -> list[Hashable]:
    given = np.asarray([looks[k] for k in keys if k in looks] + known, np.float64)
    given = given.reshape(-1, LOOK_SIZE)
    typical = _typical_distance(given)
    # one row per key; NaN for a key without a look (it stays new: novelty 1)
    points = np.full((len(keys), LOOK_SIZE), np.nan)
    for i, key in enumerate(keys):
        if key in looks:
            points[i] = looks[key]
    doubt = np.asarray([max(float(scores[k]), 0.0) for k in keys])
    if "density" in weigh:
        doubt = doubt * density(points, given, typical)
    # each key's distance to the nearest look labelled or picked so far (inf: none yet)
    nearest = np.full(len(keys), np.inf)

    def seen(point: np.ndarray) -> None:
        distance = np.linalg.norm(points - point, axis=1)
        np.fmin(nearest, np.where(np.isnan(distance), np.inf, distance), out=nearest)

    for look in known:
        seen(np.asarray(look, np.float64))
    left = np.ones(len(keys), bool)
    order: list[Hashable] = []
    for _ in range(len(keys)):
        if "novelty" not in weigh:
            novelty = np.ones(len(keys))
        elif typical > 0:
            novelty = np.minimum(nearest / typical, 1.0)
        else:
            novelty = (nearest > 0).astype(np.float64)
        value = np.where(left, doubt * novelty, -1.0)
        # the best value; ties: the higher doubt, then the earlier key
        candidates = np.flatnonzero(value == value.max())
        pick = int(candidates[np.argmax(doubt[candidates])])
        left[pick] = False
        order.append(keys[pick])
        if not np.isnan(points[pick]).any():
            seen(points[pick])
    return order


def density(points: np.ndarray, given: np.ndarray, typical: float) -> np.ndarray:
    """How typical each of ``points`` (K, LOOK_SIZE; a NaN row: no look) is of the looks
    ``given`` (M, LOOK_SIZE): the mean Gaussian similarity ``exp(-d^2 / 2 D^2)`` to them, ``D``
    the ``typical`` distance between two looks, scaled so that the most typical point has 1
    (information density, Settles and Craven 2008). A row without a look, or no spread among
    the looks, gets 1."""
    out = np.ones(len(points))
    has = ~np.isnan(points).any(axis=1)
    if typical <= 0 or not has.any() or not len(given):
        return out
    d2 = ((points[has, None, :] - given[None, :, :]) ** 2).sum(axis=2)
    similarity = np.exp(-d2 / (2 * typical**2)).mean(axis=1)
    out[has] = similarity / similarity.max()
    return out


#: At most this many looks are compared pairwise for the typical distance (evenly spaced).
TYPICAL_SAMPLE = 400


def _typical_distance(points: np.ndarray) -> float:
    """The median distance between two of ``points`` (of an even sample of at most
    :data:`TYPICAL_SAMPLE` of them); 0.0 for fewer than two."""
    if len(points) > TYPICAL_SAMPLE:
        points = points[np.linspace(0, len(points) - 1, TYPICAL_SAMPLE).astype(int)]
    if len(points) < 2:
        return 0.0
    pairs = np.linalg.norm(points[:, None] - points[None], axis=2)
    return float(np.median(pairs[np.triu_indices(len(points), 1)]))


__all__ = ["LOOK_SIZE", "WEIGHTS", "WINDOW_WEIGHTS", "appearance", "density", "label_next_order"]
