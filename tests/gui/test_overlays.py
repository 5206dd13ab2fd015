"""The canvas's fast overlay maths equals core.postprocess (what you see is what you export)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from core.postprocess import dilate, to_mask
from rooftop_gui import overlays


@pytest.mark.parametrize("kernel", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 31])
def test_max_filter_equals_core_dilate(kernel):
    rng = np.random.default_rng(kernel)
    prob = rng.random((37, 53)).astype(np.float32)
    assert np.array_equal(overlays.max_filter(prob, kernel), dilate(prob, kernel))
    codes = (prob > 0.7).view(np.uint8)
    assert np.array_equal(overlays.max_filter(codes, kernel),
                          ndimage.maximum_filter(codes, kernel, mode="nearest") if kernel > 1 else codes)


@pytest.mark.parametrize("threshold", [0.1, 0.5, 0.93])
@pytest.mark.parametrize("kernel", [0, 3, 5, 8])
def test_dilating_the_thresholded_mask_equals_to_mask(threshold, kernel):
    prob = np.random.default_rng(3).random((64, 48)).astype(np.float32)
    shown = overlays.max_filter((prob >= threshold).view(np.uint8), kernel).view(bool)
    assert np.array_equal(shown, to_mask(prob, threshold, kernel))


def test_heat_codes_commute_with_dilation():
    prob = np.random.default_rng(4).random((40, 40)).astype(np.float32)
    assert np.array_equal(overlays.max_filter(overlays.heat_codes(prob), 5),
                          overlays.heat_codes(dilate(prob, 5)))
    assert overlays.heat_codes(np.array([[0.0, 1.0]], np.float32)).tolist() == [[0, 255]]


def test_error_codes():
    pred = np.array([[1, 1, 0, 0]], bool)
    truth = np.array([[1, 0, 1, 0]], bool)
    assert overlays.error_codes(pred, truth).tolist() == [[3, 1, 2, 0]]
    assert len(overlays.heat_table()) == 256
