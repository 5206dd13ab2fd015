"""Patch generation: layout, binary labels, exact rotations, a spatial split without leaks."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from core.dataset import (
    GenerateConfig,
    PatchSpec,
    choose_test_region,
    generate_dataset,
    label_path_for,
    open_dataset,
    plan_windows,
    require_labels,
)
from core.errors import ConfigError, DatasetError, ImageReadError, TrainingStopped
from core.io import image_size


def make_pair(folder, w=240, h=200, seed=0, image_mode="RGB", mask_values=(0, 255)):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    for _ in range(6):
        y, x = rng.integers(0, h - 30), rng.integers(0, w - 30)
        mask[y:y + rng.integers(8, 30), x:x + rng.integers(8, 30)] = mask_values[1]
    folder.mkdir(parents=True, exist_ok=True)
    image_path = folder / ("image.png" if image_mode != "JPEG" else "image.jpg")
    if image_mode == "JPEG":
        Image.fromarray(rgb).save(image_path, quality=95)
    elif image_mode == "I;16":
        Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(image_path)
    else:
        Image.fromarray(rgb).convert(image_mode).save(image_path)
    mask_path = folder / "mask.png"
    Image.fromarray(mask).save(mask_path)
    return image_path, mask_path, rgb, mask != 0


SMALL = GenerateConfig(patches=(PatchSpec(64, 0.5),), resize=32, rotations=(0, 90, 180), test_fraction=0.25)


def manifest(dataset):
    return list(csv.DictReader(open(dataset / "manifest.csv", newline="", encoding="utf-8")))


def footprint(rows, shape, split):
    covered = np.zeros(shape, bool)
    for row in rows:
        if row["split"] == split:
            x, y, s = int(row["x"]), int(row["y"]), int(row["size"])
            covered[y:y + s, x:x + s] = True
    return covered


def test_layout_names_and_manifest(tmp_path):
    image, mask, _, _ = make_pair(tmp_path / "src")
    result = generate_dataset(image, mask, tmp_path / "ds", SMALL)
    rows = manifest(tmp_path / "ds")
    assert len(rows) == result.n_train + result.n_test
    assert [r["name"] for r in rows] == [f"{i:05d}.png" for i in range(len(rows))]
    for row in rows:
        data = Image.open(tmp_path / "ds" / row["split"] / "data" / row["name"])
        label = Image.open(tmp_path / "ds" / row["split"] / "label" / row["name"])
        assert data.mode == "RGB" and data.size == (32, 32)
        assert label.mode == "L" and set(np.unique(np.asarray(label))) <= {0, 255}
    assert not [p for p in (tmp_path / "ds").iterdir() if p.name.startswith(".")]


def test_split_is_spatial_and_close_to_the_requested_share(tmp_path):
    image, mask, rgb, _ = make_pair(tmp_path / "src", 300, 260)
    result = generate_dataset(image, mask, tmp_path / "ds", SMALL)
    rows = manifest(tmp_path / "ds")
    train, test = footprint(rows, rgb.shape[:2], "train"), footprint(rows, rgb.shape[:2], "test")
    assert test.any() and train.any()
    assert not (train & test).any()
    share = result.n_test / (result.n_train + result.n_test)
    assert abs(share - 0.25) < 0.08


def test_default_plan_on_2048_square_gives_about_15_percent_test():
    windows = plan_windows(2048, 2048, GenerateConfig().patches, (0, 90, 180))
    _, is_test, is_train = choose_test_region(windows, 2048, 2048, 0.15, 0)
    share = is_test.sum() / (is_test.sum() + is_train.sum())
    assert abs(share - 0.15) < 0.03


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_rotations_are_exact(tmp_path, rotation):
    image, mask, rgb, truth = make_pair(tmp_path / "src", 160, 128)
    cfg = GenerateConfig(patches=(PatchSpec(64, 0.5),), resize=None, rotations=(rotation,), test_fraction=0.0)
    generate_dataset(image, mask, tmp_path / "ds", cfg)
    for row in manifest(tmp_path / "ds"):
        x, y, s = int(row["x"]), int(row["y"]), int(row["size"])
        patch = np.asarray(Image.open(tmp_path / "ds" / "train" / "data" / row["name"]))
        label = np.asarray(Image.open(tmp_path / "ds" / "train" / "label" / row["name"])) > 0
        k = rotation // 90
        np.testing.assert_array_equal(patch, np.rot90(rgb[y:y + s, x:x + s], k))
        np.testing.assert_array_equal(label, np.rot90(truth[y:y + s, x:x + s], k))


def test_edges_are_covered_by_flush_windows(tmp_path):
    windows = plan_windows(150, 100, (PatchSpec(64, 0.5),), (0,))
    assert max(w.x + w.size for w in windows) == 150
    assert max(w.y + w.size for w in windows) == 100


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "I;16", "JPEG"])
def test_image_modes(tmp_path, mode):
    image, mask, _, _ = make_pair(tmp_path / "src", image_mode=mode)
    result = generate_dataset(image, mask, tmp_path / "ds", SMALL)
    assert result.n_train > 0


def test_tiff_input(tmp_path):
    _, mask, rgb, _ = make_pair(tmp_path / "src")
    tif = tmp_path / "src" / "image.tif"
    Image.fromarray(rgb).save(tif)
    assert generate_dataset(tif, mask, tmp_path / "ds", SMALL).n_train > 0


def test_any_nonzero_mask_value_is_roof(tmp_path):
    image, mask, _, truth = make_pair(tmp_path / "src", mask_values=(0, 3))
    cfg = GenerateConfig(patches=(PatchSpec(64, 1.0),), resize=None, rotations=(0,), test_fraction=0.0)
    generate_dataset(image, mask, tmp_path / "ds", cfg)
    row = manifest(tmp_path / "ds")[0]
    label = np.asarray(Image.open(tmp_path / "ds" / "train" / "label" / row["name"]))
    x, y = int(row["x"]), int(row["y"])
    np.testing.assert_array_equal(label > 0, truth[y:y + 64, x:x + 64])
    assert set(np.unique(label)) <= {0, 255}


def test_resized_mask_stays_binary_and_follows_area(tmp_path):
    image, mask, _, _ = make_pair(tmp_path / "src", 256, 256)
    cfg = GenerateConfig(patches=(PatchSpec(128, 1.0),), resize=37, rotations=(0,), test_fraction=0.0)
    generate_dataset(image, mask, tmp_path / "ds", cfg)
    for p in (tmp_path / "ds" / "train" / "label").iterdir():
        assert set(np.unique(np.asarray(Image.open(p)))) <= {0, 255}


@pytest.mark.parametrize("text", ["abc", "512", "512:0", "512:1.5", "-3:0.5", "4:0.5"])
def test_bad_patch_text(text):
    with pytest.raises(ConfigError, match="patch"):
        PatchSpec.parse(text)


def test_patch_larger_than_image(tmp_path):
    image, mask, _, _ = make_pair(tmp_path / "src", 100, 90)
    with pytest.raises(ConfigError, match="larger than the image"):
        generate_dataset(image, mask, tmp_path / "ds", GenerateConfig(patches=(PatchSpec(128, 0.5),)))


def test_size_mismatch_names_the_mask(tmp_path):
    image, _, _, _ = make_pair(tmp_path / "src")
    small = tmp_path / "src" / "small.png"
    Image.new("L", (20, 20)).save(small)
    with pytest.raises(ImageReadError, match="small.png.*same size"):
        generate_dataset(image, small, tmp_path / "ds", SMALL)


def test_existing_dataset_needs_overwrite(tmp_path):
    image, mask, _, _ = make_pair(tmp_path / "src")
    generate_dataset(image, mask, tmp_path / "ds", SMALL)
    with pytest.raises(DatasetError, match="already holds a dataset"):
        generate_dataset(image, mask, tmp_path / "ds", SMALL)
    cfg = GenerateConfig(patches=SMALL.patches, resize=32, rotations=(0,), test_fraction=0.25, overwrite=True)
    result = generate_dataset(image, mask, tmp_path / "ds", cfg)
    assert len(manifest(tmp_path / "ds")) == result.n_train + result.n_test


def test_cancel_leaves_nothing(tmp_path):
    image, mask, _, _ = make_pair(tmp_path / "src")
    with pytest.raises(TrainingStopped):
        generate_dataset(image, mask, tmp_path / "ds", SMALL, should_stop=lambda: True)
    assert list((tmp_path / "ds").iterdir()) == []


def test_too_small_to_split(tmp_path):
    image, mask, _, _ = make_pair(tmp_path / "src", 64, 64)
    with pytest.raises(ConfigError, match="too small to split"):
        generate_dataset(image, mask, tmp_path / "ds", GenerateConfig(patches=(PatchSpec(64, 0.5),)))


def test_open_dataset_errors_and_pairs(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        open_dataset(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DatasetError, match="not a dataset"):
        open_dataset(tmp_path / "plain")
    root = tmp_path / "ds"
    for split in ("train", "test"):
        for kind in ("data", "label"):
            (root / split / kind).mkdir(parents=True)
    with pytest.raises(DatasetError, match="empty"):
        open_dataset(root)
    Image.new("RGB", (8, 8)).save(root / "train" / "data" / "a roof é.png")
    Image.new("L", (8, 8)).save(root / "train" / "label" / "a roof é.png")
    Image.new("RGB", (8, 8)).save(root / "train" / "data" / "b.jpg")
    Image.new("L", (8, 8)).save(root / "train" / "label" / "b.png")
    Image.new("RGB", (8, 8)).save(root / "train" / "data" / "c.png")
    Image.new("L", (8, 8)).save(root / "test" / "label" / "orphan.png")
    ds = open_dataset(root)
    labels = {s.name: s.label_path for s in ds.train}
    assert labels["a roof é.png"].name == "a roof é.png"
    assert labels["b.jpg"].name == "b.png"
    assert labels["c.png"] is None
    assert [p.name for p in ds.orphan_labels] == ["orphan.png"]
    with pytest.raises(DatasetError, match="c.png.*has no label"):
        require_labels(ds.train, "train split")
    assert label_path_for(root, "train", "c.png") == root / "train" / "label" / "c.png"


def test_ten_thousand_pixel_image_is_within_the_limit(tmp_path):
    path = tmp_path / "big.png"
    Image.new("L", (10000, 10000)).save(path)
    assert image_size(path) == (10000, 10000)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(w=st.integers(70, 220), h=st.integers(70, 220), size=st.sampled_from([32, 48, 64]),
       frac=st.sampled_from([0.25, 0.5, 1.0]), test_fraction=st.sampled_from([0.0, 0.2, 0.3]),
       seed=st.integers(0, 5))
def test_property_patches_full_binary_and_disjoint(tmp_path_factory, w, h, size, frac, test_fraction, seed):
    folder = tmp_path_factory.mktemp("prop")
    image, mask, _, _ = make_pair(folder / "src", w, h, seed)
    cfg = GenerateConfig(patches=(PatchSpec(size, frac),), resize=None, rotations=(0, 90),
                         test_fraction=test_fraction, seed=seed)
    try:
        generate_dataset(image, mask, folder / "ds", cfg)
    except ConfigError as exc:
        assert "too small to split" in str(exc)
        return
    rows = manifest(folder / "ds")
    for row in rows[:20]:
        label = np.asarray(Image.open(folder / "ds" / row["split"] / "label" / row["name"]))
        assert label.shape == (size, size) and set(np.unique(label)) <= {0, 255}
    assert not (footprint(rows, (h, w), "train") & footprint(rows, (h, w), "test")).any()
