"""core.scores: an image's confusion against its label, a split re-scored, the split's total."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import ImageReadError
from core.metrics import Confusion
from core.postprocess import to_mask
from core.progress import Stopped
from core.scores import SplitScores, label_confusion, score_all


def _label(path: Path, mask: np.ndarray) -> Path:
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(path)
    return path


def test_label_confusion_is_the_shown_mask_against_the_label(tmp_path):
    rng = np.random.default_rng(0)
    prob = rng.random((20, 30)).astype(np.float32)
    truth = rng.random((20, 30)) > 0.6
    label = _label(tmp_path / "a.png", truth)
    assert label_confusion(prob, label, 0.3, 3) == Confusion.from_masks(
        to_mask(prob, 0.3, 3), truth
    )
    assert label_confusion(prob, None, 0.5, 0) is None
    assert label_confusion(prob, tmp_path / "none.png", 0.5, 0) is None
    with pytest.raises(ImageReadError, match="20 x 10 but the prediction is 30 x 20"):
        label_confusion(prob, _label(tmp_path / "b.png", np.zeros((10, 20), bool)), 0.5, 0)


def test_score_all_and_the_split_total(tmp_path):
    rng = np.random.default_rng(1)
    jobs = []
    for i in range(3):
        prob = rng.random((16, 16)).astype(np.float32)
        label = _label(tmp_path / f"{i}.png", rng.random((16, 16)) > 0.5) if i != 1 else None
        jobs.append((("test", f"{i}.png"), prob, label))
    scored = score_all(jobs, 0.5, 0)
    assert list(scored) == [("test", "0.png"), ("test", "2.png")]  # 1.png has no label
    split = SplitScores("test", Path("m.safetensors"), tmp_path, 0.5, 0, dict(scored))
    assert split.total() == scored[("test", "0.png")] + scored[("test", "2.png")]
    assert SplitScores("test", Path("m"), None, 0.5, 0).total() == Confusion()
    with pytest.raises(Stopped, match="scoring stopped"):
        score_all(jobs, 0.5, 0, should_stop=lambda: True)
