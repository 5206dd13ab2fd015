"""Dilation is the original's max-pool; thresholds and kernels are validated."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.errors import ConfigError
from core.metrics import Confusion
from core.postprocess import dilate, to_mask


@pytest.mark.parametrize("kernel", [2, 3, 4, 5, 7])
def test_dilate_equals_torch_max_pool_same_padding(kernel):
    rng = np.random.default_rng(kernel)
    prob = rng.random((23, 31), dtype=np.float32)
    t = torch.from_numpy(prob)[None, None]
    expected = F.max_pool2d(t, kernel, stride=1, padding=kernel // 2)[0, 0, :23, :31].numpy()
    np.testing.assert_array_equal(dilate(prob, kernel), expected)


@pytest.mark.parametrize("kernel", [0, 1])
def test_kernel_zero_or_one_is_off(kernel):
    prob = np.random.default_rng(0).random((8, 8), dtype=np.float32)
    assert dilate(prob, kernel) is prob


def test_dilation_grows_the_mask_and_fills_gaps():
    prob = np.zeros((20, 20), np.float32)
    prob[10, 5:15:2] = 0.9  # a spotty roof
    plain, dilated = to_mask(prob, 0.5), to_mask(prob, 0.5, dilation=3)
    assert plain.sum() == 5
    assert dilated[10, 5:14].all() and dilated.sum() > plain.sum()
    assert (dilated | plain).sum() == dilated.sum()


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 2])
def test_bad_threshold(bad):
    with pytest.raises(ConfigError, match="threshold"):
        to_mask(np.zeros((2, 2), np.float32), bad)


@pytest.mark.parametrize("bad", [-1, 2.5, 300])
def test_bad_kernel(bad):
    with pytest.raises(ConfigError, match="dilation"):
        dilate(np.zeros((2, 2), np.float32), bad)


def test_confusion_counts_and_scores():
    truth = np.array([[1, 1, 0, 0]], bool)
    pred = np.array([[1, 0, 1, 0]], bool)
    c = Confusion.from_masks(pred, truth)
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 1, 1, 1)
    assert c.iou == pytest.approx(1 / 3)
    assert c.f1 == pytest.approx(0.5)
    assert c.precision == c.recall == c.accuracy == pytest.approx(0.5)
    total = c + c
    assert total.iou == pytest.approx(1 / 3) and total.total == 8


def test_confusion_is_summed_not_averaged():
    a = Confusion.from_masks(np.ones((10, 10), bool), np.ones((10, 10), bool))  # IoU 1, 100 px
    b = Confusion.from_masks(np.array([[True, False]]), np.array([[False, True]]))  # IoU 0, 2 px
    assert (a + b).iou == pytest.approx(100 / 102)


def test_empty_truth_and_prediction_score_one():
    empty = np.zeros((4, 4), bool)
    c = Confusion.from_masks(empty, empty)
    assert c.iou == c.f1 == c.precision == c.recall == c.accuracy == 1.0
