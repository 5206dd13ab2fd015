"""The demo scene: deterministic, realistic enough to learn from, roofs under trees excluded."""

import numpy as np
import pytest
from PIL import Image

from core.errors import ConfigError
from core.synthetic import make_scene, write_demo


@pytest.fixture(scope="module")
def scene():
    return make_scene(512, seed=1)


def test_same_seed_same_pixels_other_seed_other_scene(scene):
    image, mask = scene
    again_image, again_mask = make_scene(512, seed=1)
    assert np.array_equal(image, again_image) and np.array_equal(mask, again_mask)
    other, _ = make_scene(512, seed=2)
    assert not np.array_equal(image, other)


def test_shapes_types_and_roof_share(scene):
    image, mask = scene
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8
    assert mask.shape == (512, 512) and mask.dtype == bool
    assert 0.08 < mask.mean() < 0.35


@pytest.mark.parametrize("seed", range(4))
def test_tiny_scene_still_has_roofs(seed):
    _, mask = make_scene(256, seed=seed)
    assert mask.mean() > 0.05


def test_non_square_scene():
    image, mask = make_scene(200, seed=0, height=120)
    assert image.shape == (120, 200, 3) and mask.shape == (120, 200)


def test_scene_is_not_flat_vector_art(scene):
    image, mask = scene
    colours = np.unique(image.reshape(-1, 3) // 8, axis=0)
    assert len(colours) > 500
    # roofs are not separable by colour alone: some background pixels share roof colours
    roof_colours = {tuple(c) for c in np.unique(image[mask] // 16, axis=0)}
    ground_colours = {tuple(c) for c in np.unique(image[~mask] // 16, axis=0)}
    assert len(roof_colours & ground_colours) > 20


def test_write_demo_files(tmp_path):
    image_path, label_path = write_demo(tmp_path / "demo", size=128, seed=0)
    image, label = Image.open(image_path), Image.open(label_path)
    assert image.mode == "RGB" and label.mode == "L" and image.size == label.size == (128, 128)
    assert set(np.unique(np.asarray(label))) == {0, 255}


@pytest.mark.parametrize("size", [10, 63, 20001])
def test_bad_size(size):
    with pytest.raises(ConfigError, match="size"):
        make_scene(size)
