"""What the model doubts (issue 16): the uncertainty map, the most uncertain window, and smart select on the demo scene."""

from __future__ import annotations

import numpy as np
import pytest

from core.smart_select import smart_select
from core.uncertainty import (
    image_uncertainty,
    most_uncertain_window,
    uncertainty,
)


def test_uncertainty_is_closeness_to_the_threshold():
    p = np.array([[0.0, 0.25, 0.5, 0.75, 1.0]], np.float32)
    np.testing.assert_allclose(uncertainty(p), [[0, 0.5, 1, 0.5, 0]], atol=1e-6)
    np.testing.assert_allclose(uncertainty(p, 0.25), [[0, 1, 2 / 3, 1 / 3, 0]], atol=1e-6)
    with pytest.raises(ValueError):
        uncertainty(p, 1.0)


def test_image_score_counts_unlabelled_pixels_only():
    p = np.full((10, 10), 0.5, np.float32)
    p[:, 5:] = 1.0
    assert image_uncertainty(p) == pytest.approx(0.5)
    labelled = np.zeros((10, 10), bool)
    labelled[:, :5] = True
    assert image_uncertainty(p, labelled) == pytest.approx(0.0)
    assert image_uncertainty(p, ~labelled) == pytest.approx(1.0)
    assert image_uncertainty(p, np.ones((10, 10), bool)) == 0.0


def test_most_uncertain_window_matches_brute_force():
    rng = np.random.default_rng(1)
    values = rng.random((37, 53))
    values[20:28, 30:40] += 2
    window = most_uncertain_window(values, (8, 10))
    assert (window.y, window.x, window.height, window.width) == (20, 30, 8, 10)
    brute = max(
        (values[y : y + 8, x : x + 10].mean(), -y, -x) for y in range(30) for x in range(44)
    )
    assert window.mean == pytest.approx(brute[0])
    labelled = np.zeros(values.shape, bool)
    labelled[20:28, 30:40] = True
    assert (most_uncertain_window(values, 8, labelled).y,) != (20,)
    assert most_uncertain_window(values, 500).width == 53


def test_smart_select_outlines_a_flat_roof_and_refuses_a_leak():
    image = np.full((120, 120, 3), 90, np.uint8)
    image += np.random.default_rng(2).integers(0, 8, image.shape, dtype=np.uint8)
    roof = np.zeros((120, 120), bool)
    roof[30:70, 40:90] = True
    image[roof] = (190, 70, 50)
    got = smart_select(image, 60, 50)
    assert got is not None and (got & roof).sum() / (got | roof).sum() > 0.95
    assert smart_select(image, 5, 5) is None  # the ground: far over max_fraction
    assert smart_select(image, -3, 5) is None
    prob = np.where(roof, 0.9, 0.1).astype(np.float32)
    assert smart_select(image, 60, 50, prob).sum() == pytest.approx(roof.sum(), rel=0.05)
