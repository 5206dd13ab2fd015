"""The demo scene: deterministic, varied enough to learn from, roofs under trees excluded."""

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from core.errors import ConfigError
from core.io import read_image, read_mask
from core.synthetic import make_scene, write_demo


@pytest.fixture(scope="module")
def scene():
    return make_scene(512, seed=1)


def test_same_seed_same_pixels_other_seed_other_scene(scene):
    image, mask = scene
    again_image, again_mask = make_scene(512, seed=1)
    assert np.array_equal(image, again_image) and np.array_equal(mask, again_mask)
    other_image, other_mask = make_scene(512, seed=2)
    assert not np.array_equal(image, other_image)
    assert not np.array_equal(mask, other_mask)


def test_shapes_types_and_roof_share(scene):
    image, mask = scene
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8
    assert mask.shape == (512, 512) and mask.dtype == bool
    assert 0.08 < mask.mean() < 0.35


def test_larger_scene_roof_share():
    image, mask = make_scene(1024, seed=5)
    assert image.shape == (1024, 1024, 3)
    assert 0.12 < mask.mean() < 0.32
    _, count = ndimage.label(mask)
    assert count > 40  # many separate houses, not a few blobs


@pytest.mark.parametrize("seed", range(6))
def test_tiny_scene_still_has_roofs(seed):
    _, mask = make_scene(256, seed=seed)
    assert mask.mean() > 0.05
    _, count = ndimage.label(mask)
    assert count >= 3


def test_non_square_scene():
    image, mask = make_scene(200, seed=0, height=120)
    assert image.shape == (120, 200, 3) and mask.shape == (120, 200)
    image, mask = make_scene(64, seed=3, height=300)
    assert image.shape == (300, 64, 3) and mask.shape == (300, 64)


def test_scene_is_not_flat_vector_art(scene):
    image, mask = scene
    colours = np.unique(image.reshape(-1, 3) // 8, axis=0)
    assert len(colours) > 500
    # roofs are not separable by colour alone: background pixels (concrete, pavers, asphalt)
    # share many roof colours
    roof_colours = {tuple(c) for c in np.unique(image[mask] // 16, axis=0)}
    ground_colours = {tuple(c) for c in np.unique(image[~mask] // 16, axis=0)}
    assert len(roof_colours & ground_colours) > 20


def test_roofs_come_in_several_colours():
    image, mask = make_scene(1024, seed=0)
    roof = image[mask].astype(int)
    r, g, b = roof[:, 0], roof[:, 1], roof[:, 2]
    reddish = np.mean(r > g + 35)
    greyish = np.mean((np.abs(r - b) < 15) & (np.abs(r - g) < 15))
    assert reddish > 0.1 and greyish > 0.1


def test_trees_cover_parts_of_roofs():
    # a tree crown inside a roof leaves a hole in that roof's mask
    holes = 0
    for seed in range(3):
        _, mask = make_scene(512, seed=seed)
        holes += int((ndimage.binary_fill_holes(mask) & ~mask).sum())
    assert holes > 50


def test_write_demo_files(tmp_path):
    image_path, label_path = write_demo(tmp_path / "demo", size=128, seed=0)
    assert image_path == tmp_path / "demo" / "image.png"
    assert label_path == tmp_path / "demo" / "labels.png"
    image, label = Image.open(image_path), Image.open(label_path)
    assert image.mode == "RGB" and label.mode == "L" and image.size == label.size == (128, 128)
    assert set(np.unique(np.asarray(label))) == {0, 255}
    expected_image, expected_mask = make_scene(128, seed=0)
    assert np.array_equal(read_image(image_path), expected_image)
    assert np.array_equal(read_mask(label_path), expected_mask)


@pytest.mark.parametrize("size", [10, 63, 20001, 100.5])
def test_bad_size(size):
    with pytest.raises(ConfigError, match="size"):
        make_scene(size)


def test_bad_height():
    with pytest.raises(ConfigError, match="height"):
        make_scene(128, height=20)


def test_write_demo_bad_size_writes_nothing(tmp_path):
    with pytest.raises(ConfigError, match="size"):
        write_demo(tmp_path / "demo", size=32)
    assert not (tmp_path / "demo").exists()
