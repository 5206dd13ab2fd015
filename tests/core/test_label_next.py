"""The "label next" order (issue 16): doubt first, stable for a fixed model, and spread over
what the images look like so that one unseen kind of image does not fill the head of the list."""

from __future__ import annotations

import numpy as np
import pytest

from core.label_next import LOOK_SIZE, appearance, density, label_next_order
from core.uncertainty import image_uncertainty


def _scene(rng, mean: float, size: int = 32, blur: int = 1) -> np.ndarray:
    """A noisy grey-ish image of a given brightness; ``blur`` > 1 makes it coarse-looking."""
    noise = rng.normal(0, 30, (size // blur, size // blur, 3))
    noise = np.repeat(np.repeat(noise, blur, axis=0), blur, axis=1)
    return np.clip(mean + noise, 0, 255).astype(np.uint8)


def test_label_next_order_is_stable_for_a_fixed_model():
    rng = np.random.default_rng(0)
    probs = {f"{i:03d}": rng.random((16, 16)).astype(np.float32) ** (i % 4 + 1) for i in range(12)}
    probs["tie-a"] = probs["tie-b"] = np.full((16, 16), 0.5, np.float32)
    keys = sorted(probs)
    scores = {k: image_uncertainty(p) for k, p in probs.items()}
    first = label_next_order(scores, keys)
    assert first == label_next_order(dict(reversed(list(scores.items()))), keys)
    assert first[:2] == ["tie-a", "tie-b"]  # the most doubtful first, ties by the given order
    values = [scores[k] for k in first]
    assert values == sorted(values, reverse=True)
    assert label_next_order({"a": 0.1}, ["b", "a", "c"]) == ["a", "b", "c"]


def test_appearance_tells_bright_from_dark_and_coarse_from_fine():
    rng = np.random.default_rng(1)
    dark, bright = appearance(_scene(rng, 60)), appearance(_scene(rng, 180))
    assert dark.shape == (LOOK_SIZE,)
    assert bright[0] > dark[0] + 4 and bright[4] > dark[4] + 4  # band means, 25 levels a unit
    fine, coarse = appearance(_scene(rng, 120)), appearance(_scene(rng, 120, blur=4))
    assert coarse[6] < fine[6]  # less gradient per pixel ...
    assert coarse[7] > fine[7]  # ... and relatively more at half resolution
    with pytest.raises(ValueError, match="appearance needs"):
        appearance(np.zeros((2, 2, 3), np.uint8))


def test_looks_spread_the_order_over_kinds_of_image():
    # Three dark tiles the model doubts most, three bright ones a little less; one dark tile is
    # labelled already. Doubt alone lists the dark ones first; with looks, a bright one comes
    # second, because the dark kind is what the first pick already covers.
    rng = np.random.default_rng(2)
    images = {f"dark{i}": _scene(rng, 50) for i in range(3)}
    images |= {f"bright{i}": _scene(rng, 200) for i in range(3)}
    scores = {
        "dark0": 0.9,
        "dark1": 0.89,
        "dark2": 0.88,
        "bright0": 0.7,
        "bright1": 0.69,
        "bright2": 0.68,
    }
    keys = list(scores)
    looks = {k: appearance(v) for k, v in images.items()}
    assert label_next_order(scores, keys)[:3] == ["dark0", "dark1", "dark2"]
    order = label_next_order(scores, keys, looks)
    assert order[:2] == ["dark0", "bright0"]  # nothing known: the first pick is the most doubted
    assert sorted(order) == sorted(keys)
    known = [appearance(_scene(rng, 50))]
    assert label_next_order(scores, keys, looks, known)[0] == "bright0"
    # stable: the same inputs give the same order, whatever the mapping's order
    assert order == label_next_order(dict(reversed(list(scores.items()))), keys, looks)


def test_unscored_images_come_last_and_images_without_a_look_count_as_new():
    rng = np.random.default_rng(3)
    same = appearance(_scene(rng, 50))
    looks = {"a": same, "b": same, "f": appearance(_scene(rng, 200))}
    scores = {"a": 0.5, "b": 0.6, "c": 0.4, "d": float("nan")}
    order = label_next_order(scores, ["a", "b", "c", "d", "e"], looks, [same])
    assert order[-2:] == ["d", "e"]  # no finite score
    assert order[0] == "c"  # no look: novelty 1; "a" and "b" look like the labelled image
    # a fully labelled image (doubt 0) never comes before one with something left to label
    assert label_next_order({"x": 0.0, "y": 0.01}, None, looks={})[0] == "y"


def test_density_puts_a_doubtful_outlier_after_doubtful_typical_images():
    # Five mid-grey tiles and one very bright outlier that the model doubts most (a coarse,
    # unusual tile): weighed by density, a typical tile comes first and the outlier last.
    rng = np.random.default_rng(4)
    images = {f"grey{i}": _scene(rng, 100 + 3 * i) for i in range(5)} | {"odd": _scene(rng, 240)}
    scores = {"odd": 0.9, "grey0": 0.6, "grey1": 0.7, "grey2": 0.65, "grey3": 0.5, "grey4": 0.55}
    keys = list(images)
    looks = {k: appearance(v) for k, v in images.items()}
    assert label_next_order(scores, keys)[0] == "odd"
    dense = label_next_order(scores, keys, looks, weigh=("density",))
    # the most typical tile (the middle grey) beats a slightly more doubted, less typical one
    assert dense[:2] == ["grey2", "grey1"] and dense[-1] == "odd"
    assert sorted(dense) == sorted(keys)
    points = np.asarray([looks[k] for k in keys])
    weights = density(points, points, 1.0)
    assert weights.max() == 1.0 and weights[keys.index("odd")] == weights.min() < 0.5
    assert np.all(density(np.full((2, LOOK_SIZE), np.nan), points, 1.0) == 1.0)  # no look
    # with novelty too, the outlier comes back before grey tiles like those picked already
    both = label_next_order(scores, keys, looks, weigh=("density", "novelty"))
    assert both[0] == "grey2" and both.index("odd") < 5 and sorted(both) == sorted(keys)
    assert both == label_next_order(
        dict(reversed(list(scores.items()))), keys, looks, (), ("density", "novelty")
    )
    with pytest.raises(ValueError, match="unknown label-next weight"):
        label_next_order(scores, keys, looks, weigh=("typicality",))
