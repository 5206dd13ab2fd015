"""Generation without a mask (images to label in the window) and a patch plan fitted to the image."""

from __future__ import annotations

import numpy as np
from PIL import Image

from core.dataset import open_dataset
from core.generate import (
    DEFAULT_PATCHES,
    GenerateConfig,
    PatchSpec,
    fitting_patches,
    generate_dataset,
)


def test_fitting_patches_keeps_what_fits():
    assert fitting_patches(650, 650) == (PatchSpec(512, 0.25), PatchSpec(256, 0.5))
    assert fitting_patches(5000, 4000) == DEFAULT_PATCHES
    assert fitting_patches(200, 150) == (PatchSpec(128, 0.5),)
    assert fitting_patches(40, 40) == (PatchSpec(40, 0.5),)


def test_a_dataset_of_images_only(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (192, 192, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    config = GenerateConfig(patches=(PatchSpec(64, 0.5),), resize=None, rotations=(0,))
    result = generate_dataset(tmp_path / "a.png", None, tmp_path / "ds", config)
    dataset = open_dataset(result.dataset_dir)
    assert len(dataset.train) == result.n_train > 0
    assert all(s.label_path is None or not s.label_path.exists() for s in dataset.train)
