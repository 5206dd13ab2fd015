"""Patch generation (layout, binary labels, exact rotations, a spatial split without leaks, input
modes, errors, cancel) and reading dataset folders."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import core.generate as generate_module
import core.spatial_split as split_module
from core.dataset import label_path_for, open_dataset, require_labels
from core.errors import ConfigError, DatasetError, ImageReadError, ImageWriteError
from core.generate import (
    DEFAULT_PATCHES,
    GenerateConfig,
    PatchSpec,
    count_windows,
    generate_dataset,
    make_patch,
    patch_name,
    plan_windows,
)
from core.io import image_size
from core.progress import Progress, Stopped
from core.spatial_split import choose_test_region

# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def make_pair(folder, w=240, h=200, seed=0, image_mode="RGB", mask_values=(0, 255)):
    """A random RGB picture and a mask of a few rectangles, saved in ``folder``."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.full((h, w), mask_values[0], np.uint8)
    for _ in range(8):
        y, x = rng.integers(0, max(1, h - 30)), rng.integers(0, max(1, w - 30))
        mask[y : y + rng.integers(8, 30), x : x + rng.integers(8, 30)] = mask_values[1]
    folder.mkdir(parents=True, exist_ok=True)
    suffix = {"JPEG": ".jpg", "TIFF": ".tif"}.get(image_mode, ".png")
    image_path = folder / f"image{suffix}"
    if image_mode == "JPEG":
        Image.fromarray(rgb).save(image_path, quality=95)
    elif image_mode == "TIFF":
        Image.fromarray(rgb).save(image_path)
    elif image_mode == "I;16":
        Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(image_path)
    else:
        Image.fromarray(rgb).convert(image_mode).save(image_path)
    mask_path = folder / "mask.png"
    Image.fromarray(mask).save(mask_path)
    return image_path, mask_path, rgb, mask != mask_values[0]


SMALL = GenerateConfig(
    patches=(PatchSpec(64, 0.5),), resize=32, rotations=(0, 90, 180), test_fraction=0.25
)
EXACT = GenerateConfig(
    patches=(PatchSpec(64, 0.5),), resize=None, rotations=(0,), test_fraction=0.0
)


def manifest(root):
    with open(root / "manifest.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def footprint(rows, shape, split):
    """The source pixels covered by the patches of ``split``."""
    covered = np.zeros(shape, bool)
    for row in rows:
        if row["split"] == split:
            x, y, s = int(row["x"]), int(row["y"]), int(row["size"])
            covered[y : y + s, x : x + s] = True
    return covered


def read(root, row, kind):
    return np.asarray(Image.open(root / row["split"] / kind / row["name"]))


def all_files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------------------------
# layout, manifest, labels
# ----------------------------------------------------------------------------------------------


def test_layout_names_and_manifest_match_the_files(tmp_path):
    image, mask, _, _ = make_pair(tmp_path / "src")
    out = tmp_path / "ds"
    result = generate_dataset(image, mask, out, SMALL)
    rows = manifest(out)
    assert list(rows[0]) == [
        "name",
        "split",
        "source_image",
        "x",
        "y",
        "size",
        "rotation",
        "resize",
        "source_gsd_m",
    ]
    assert {r["source_gsd_m"] for r in rows} == {""}  # a PNG source has no ground resolution
    assert len(rows) == result.n_train + result.n_test
    assert result.n_train > 0 and result.n_test > 0
    assert result.manifest_path == out / "manifest.csv" and result.dataset_dir == out
    assert [r["name"] for r in rows] == [f"{i:05d}.png" for i in range(len(rows))]
    expected = sorted(
        [f"{r['split']}/data/{r['name']}" for r in rows]
        + [f"{r['split']}/label/{r['name']}" for r in rows]
        + ["manifest.csv"]
    )
    assert all_files(out) == expected  # nothing more, nothing hidden left behind
    assert {r["source_image"] for r in rows} == {str(image.resolve())}
    assert {r["size"] for r in rows} == {"64"} and {r["resize"] for r in rows} == {"32"}
    assert {r["rotation"] for r in rows} == {"0", "90", "180"}
    for row in rows:
        data = Image.open(out / row["split"] / "data" / row["name"])
        label = Image.open(out / row["split"] / "label" / row["name"])
        assert data.mode == "RGB" and data.size == (32, 32)
        assert label.mode == "L" and label.size == (32, 32)
        assert set(np.unique(np.asarray(label))) <= {0, 255}


def test_resized_mask_is_the_area_majority(tmp_path):
    image, mask, _, truth = make_pair(tmp_path / "src", 256, 256)
    cfg = GenerateConfig(
        patches=(PatchSpec(128, 1.0),), resize=32, rotations=(0,), test_fraction=0.0
    )
    out = tmp_path / "ds"
    generate_dataset(image, mask, out, cfg)
    for row in manifest(out):
        x, y = int(row["x"]), int(row["y"])
        area = truth[y : y + 128, x : x + 128].reshape(32, 4, 32, 4).mean(axis=(1, 3))
        label = read(out, row, "label")
        assert set(np.unique(label)) <= {0, 255}
        np.testing.assert_array_equal(label == 255, area >= 0.5)


def test_odd_resize_and_upscaling_keep_labels_binary(tmp_path):
    image, mask, _, _ = make_pair(tmp_path / "src", 256, 256)
    cfg = GenerateConfig(
        patches=(PatchSpec(96, 1.0), PatchSpec(32, 1.0)),
        resize=37,
        rotations=(0, 90),
        test_fraction=0.0,
    )
    out = tmp_path / "ds"
    generate_dataset(image, mask, out, cfg)
    for p in (out / "train" / "label").iterdir():
        label = Image.open(p)
        assert label.mode == "L" and label.size == (37, 37)
        assert set(np.unique(np.asarray(label))) <= {0, 255}
    for p in (out / "train" / "data").iterdir():
        assert Image.open(p).size == (37, 37)


@pytest.mark.parametrize("rotation", [0, 90, 180, 270, -90, 360])
def test_rotations_are_exact(tmp_path, rotation):
    image, mask, rgb, truth = make_pair(tmp_path / "src", 160, 128)
    cfg = GenerateConfig(
        patches=(PatchSpec(64, 0.5),), resize=None, rotations=(rotation,), test_fraction=0.0
    )
    out = tmp_path / "ds"
    generate_dataset(image, mask, out, cfg)
    rows = manifest(out)
    assert rows
    for row in rows:
        x, y, s = int(row["x"]), int(row["y"]), int(row["size"])
        assert int(row["rotation"]) == rotation
        k = rotation // 90
        np.testing.assert_array_equal(
            read(out, row, "data"), np.rot90(rgb[y : y + s, x : x + s], k)
        )
        np.testing.assert_array_equal(
            read(out, row, "label") > 0, np.rot90(truth[y : y + s, x : x + s], k)
        )


def test_grid_slides_over_the_rotated_image_and_covers_the_edges():
    windows = plan_windows(150, 100, (PatchSpec(64, 0.5),), (0,))
    assert {(w.x, w.y) for w in windows} == {(x, y) for x in (0, 32, 64, 86) for y in (0, 32, 36)}
    # rotated by 90 the grid starts at another corner of the source
    rotated = plan_windows(150, 100, (PatchSpec(64, 0.5),), (90,))
    assert {(w.x, w.y) for w in rotated} == {(x, y) for x in (86, 54, 22, 0) for y in (0, 32, 36)}
    for ws in (windows, rotated):
        assert max(w.x + w.size for w in ws) == 150 and max(w.y + w.size for w in ws) == 100
        assert min(w.x for w in ws) == 0 and min(w.y for w in ws) == 0
    assert count_windows(150, 100, (PatchSpec(64, 0.5),), (0, 90)) == len(windows) + len(rotated)


def test_make_patch_resizes_then_rotates_consistently():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
    mask = rng.random((100, 100)) > 0.5
    patch, patch_mask = make_patch(image, mask, 10, 20, 64, 90, 32)
    plain, plain_mask = make_patch(image, mask, 10, 20, 64, 0, 32)
    assert patch.shape == (32, 32, 3) and patch_mask.dtype == bool
    np.testing.assert_array_equal(patch, np.rot90(plain))
    np.testing.assert_array_equal(patch_mask, np.rot90(plain_mask))


def test_patch_names_grow_past_99999():
    assert patch_name(7, 10) == "00007.png"
    assert patch_name(99999, 100000) == "99999.png"
    assert patch_name(7, 100001) == "000007.png"


def test_progress_is_reported(tmp_path):
    image, mask, _, _ = make_pair(tmp_path / "src")
    events = []
    result = generate_dataset(image, mask, tmp_path / "ds", SMALL, on_progress=events.append)
    total = result.n_train + result.n_test
    assert all(isinstance(e, Progress) and e.total == total and e.unit == "patches" for e in events)
    assert events[0].done == 0 and events[-1].done == total
    assert [e.done for e in events] == sorted(e.done for e in events)


# ----------------------------------------------------------------------------------------------
# the spatial split
# ----------------------------------------------------------------------------------------------


def test_split_is_spatial_and_close_to_the_requested_share(tmp_path):
    image, mask, rgb, _ = make_pair(tmp_path / "src", 300, 260)
    out = tmp_path / "ds"
    result = generate_dataset(image, mask, out, SMALL)
    rows = manifest(out)
    train, test = footprint(rows, rgb.shape[:2], "train"), footprint(rows, rgb.shape[:2], "test")
    assert test.any() and train.any()
    assert not (train & test).any()
    assert abs(result.test_share - 0.25) < 0.03
    x0, y0, x1, y1 = result.test_region
    region = np.zeros(rgb.shape[:2], bool)
    region[y0:y1, x0:x1] = True
    assert not (train & region).any() and not (test & ~region).any()
    assert result.n_dropped == count_windows(300, 260, SMALL.patches, SMALL.rotations) - len(rows)


@pytest.mark.parametrize(
    ("width", "patches", "fraction", "min_kept"),
    [
        (2048, DEFAULT_PATCHES, 0.15, 0.8),
        (256, (PatchSpec(64, 0.5),), 0.15, 0.8),
        (3000, DEFAULT_PATCHES, 0.15, 0.8),
        (1500, DEFAULT_PATCHES, 0.3, 0.6),  # 1024 windows in a 1500 image: most cross any border
    ],
)
def test_test_share_is_close_for_every_seed(width, patches, fraction, min_kept):
    windows = plan_windows(width, width, patches, (0, 90, 180))
    for seed in range(5):
        region, is_test, is_train = choose_test_region(windows, width, width, fraction, seed)
        share = is_test.sum() / (is_test.sum() + is_train.sum())
        assert abs(share - fraction) < 0.02, (seed, region, share)
        assert (is_test | is_train).mean() > min_kept  # few windows dropped at the border
        assert not (is_test & is_train).any()


@pytest.mark.parametrize("max_edges", [400, 7])
def test_candidate_counts_match_a_direct_count(monkeypatch, max_edges):
    monkeypatch.setattr(split_module, "_MAX_EDGES", max_edges)  # 7: borders off the window edges
    xs, ys, ss, _ = generate_module._plan_arrays(
        150, 110, (PatchSpec(32, 0.5), PatchSpec(48, 0.7)), (0, 90)
    )
    regions, n_test, n_train = split_module._candidates(xs, ys, ss, 150, 110)
    assert len(regions) > 100
    for k in np.random.default_rng(0).choice(len(regions), 200, replace=False):
        inside, outside = split_module._assign(xs, ys, ss, tuple(regions[k]))
        assert (inside.sum(), outside.sum()) == (n_test[k], n_train[k]), regions[k]


def test_split_depends_on_the_seed_and_only_on_it():
    windows = plan_windows(2048, 2048, DEFAULT_PATCHES, (0, 90, 180))
    regions = [choose_test_region(windows, 2048, 2048, 0.15, seed)[0] for seed in range(8)]
    assert regions[3] == choose_test_region(windows, 2048, 2048, 0.15, 3)[0]
    assert len(set(regions)) > 1


def test_no_test_split_when_fraction_is_zero(tmp_path):
    image, mask, _, _ = make_pair(tmp_path / "src")
    result = generate_dataset(image, mask, tmp_path / "ds", EXACT)
    assert result.n_test == 0 and result.n_dropped == 0 and result.test_region is None
    assert list((tmp_path / "ds" / "test" / "data").iterdir()) == []


def test_too_small_to_split(tmp_path):
    image, mask, _, _ = make_pair(tmp_path / "src", 64, 64)
    with pytest.raises(ConfigError, match="too small to split") as info:
        generate_dataset(
            image, mask, tmp_path / "ds", GenerateConfig(patches=(PatchSpec(64, 0.5),))
        )
    assert info.value.path == image
    assert not (tmp_path / "ds").exists()


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGBA", "L", "LA", "P", "I;16", "JPEG", "TIFF"])
def test_image_modes(tmp_path, mode):
    image, mask, _, truth = make_pair(tmp_path / "src", image_mode=mode)
    out = tmp_path / "ds"
    result = generate_dataset(image, mask, out, EXACT)
    assert result.n_train > 0
    row = manifest(out)[0]
    x, y = int(row["x"]), int(row["y"])
    assert read(out, row, "data").shape == (64, 64, 3)
    np.testing.assert_array_equal(read(out, row, "label") > 0, truth[y : y + 64, x : x + 64])


def test_sixteen_bit_tiff_with_tifffile(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    _, mask, _, _ = make_pair(tmp_path / "src")
    data = np.random.default_rng(0).integers(
        0, 2048, (200, 240, 4), dtype=np.uint16
    )  # 11-bit, 4 bands
    tif = tmp_path / "src" / "ortho.tif"
    tifffile.imwrite(tif, data)
    out = tmp_path / "ds"
    assert generate_dataset(tif, mask, out, EXACT).n_train > 0
    assert read(out, manifest(out)[0], "data").shape == (64, 64, 3)


@pytest.mark.parametrize("kind", ["value 3", "rgb blue only", "palette", "16-bit"])
def test_any_nonzero_mask_value_is_roof(tmp_path, kind):
    image, mask, _, truth = make_pair(tmp_path / "src", mask_values=(0, 3))
    values = np.where(truth, 3, 0).astype(np.uint8)
    if kind == "rgb blue only":
        rgb = np.zeros((*truth.shape, 3), np.uint8)
        rgb[..., 2] = values
        Image.fromarray(rgb).save(mask)
    elif kind == "palette":
        Image.fromarray(values).convert("P").save(mask)
    elif kind == "16-bit":
        Image.fromarray(values.astype(np.uint16) * 1000).save(mask)
    out = tmp_path / "ds"
    generate_dataset(image, mask, out, EXACT)
    for row in manifest(out):
        label = read(out, row, "label")
        x, y = int(row["x"]), int(row["y"])
        assert set(np.unique(label)) <= {0, 255}
        np.testing.assert_array_equal(label > 0, truth[y : y + 64, x : x + 64])


def test_ten_thousand_pixel_image_is_within_the_pixel_limit(tmp_path):
    path = tmp_path / "big.png"
    Image.new("L", (10000, 10000)).save(path)
    assert image_size(path) == (10000, 10000)


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "abc",
        "512",
        "512:0",
        "512:1.5",
        "-3:0.5",
        "4:0.5",
        "512:nan",
        "512:0.25:1",
        "",
        "12.5:0.5",
        ":0.5",
    ],
)
def test_bad_patch_text(text):
    with pytest.raises(ConfigError, match="--patch"):
        PatchSpec.parse(text)


def test_good_patch_text():
    assert PatchSpec.parse(" 512:0.25 ") == PatchSpec(512, 0.25)
    assert PatchSpec.parse("256:1") == PatchSpec(256, 1.0)
    assert PatchSpec(512, 0.25).stride == 128 and str(PatchSpec(512, 0.25)) == "512:0.25"


@pytest.mark.parametrize(
    "config",
    [
        GenerateConfig(patches=()),
        GenerateConfig(patches=(PatchSpec(64, 0.0),)),
        GenerateConfig(patches=(PatchSpec(4, 0.5),)),
        GenerateConfig(rotations=(0, 45)),
        GenerateConfig(rotations=()),
        GenerateConfig(test_fraction=1.0),
        GenerateConfig(test_fraction=-0.1),
        GenerateConfig(resize=0),
    ],
)
def test_bad_config_is_refused_before_reading(tmp_path, config):
    with pytest.raises(ConfigError):
        generate_dataset(
            tmp_path / "missing.png", tmp_path / "missing.png", tmp_path / "ds", config
        )
    assert not (tmp_path / "ds").exists()


def test_patch_larger_than_image_names_image_and_sizes(tmp_path):
    image, mask, _, _ = make_pair(tmp_path / "src", 100, 90)
    cfg = GenerateConfig(patches=(PatchSpec(64, 0.5), PatchSpec(128, 0.5)))
    with pytest.raises(ConfigError, match=r"128 is larger than the image \(100 x 90\)") as info:
        generate_dataset(image, mask, tmp_path / "ds", cfg)
    assert info.value.path == image and "image.png" in str(info.value)


def test_too_many_windows(tmp_path, monkeypatch):
    image, mask, _, _ = make_pair(tmp_path / "src")
    monkeypatch.setattr(generate_module, "MAX_WINDOWS", 10)
    with pytest.raises(ConfigError, match="windows"):
        generate_dataset(image, mask, tmp_path / "ds", SMALL)


def test_missing_and_mismatched_files_are_named(tmp_path):
    image, _, _, _ = make_pair(tmp_path / "src")
    small = tmp_path / "src" / "small.png"
    Image.new("L", (20, 20)).save(small)
    with pytest.raises(ImageReadError, match="small.png.*same size"):
        generate_dataset(image, small, tmp_path / "ds", SMALL)
    with pytest.raises(ImageReadError, match="nope.png"):
        generate_dataset(tmp_path / "nope.png", small, tmp_path / "ds", SMALL)
    assert not (tmp_path / "ds").exists()


def test_out_dir_that_is_a_file(tmp_path):
    image, mask, _, _ = make_pair(tmp_path / "src")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ImageWriteError, match="file"):
        generate_dataset(image, mask, tmp_path / "file", SMALL)


def test_existing_dataset_needs_overwrite_and_is_replaced_whole(tmp_path):
    image, mask, _, _ = make_pair(tmp_path / "src")
    out = tmp_path / "ds"
    first = generate_dataset(image, mask, out, SMALL)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="already holds a dataset") as info:
        generate_dataset(image, mask, out, SMALL)
    assert info.value.path == out
    cfg = GenerateConfig(
        patches=SMALL.patches, resize=32, rotations=(0,), test_fraction=0.25, overwrite=True
    )
    second = generate_dataset(image, mask, out, cfg)
    assert second.n_train + second.n_test < first.n_train + first.n_test
    rows = manifest(out)
    assert len(rows) == second.n_train + second.n_test
    assert len(all_files(out)) == 2 * len(rows) + 2  # old patches gone, notes.txt kept
    assert (out / "notes.txt").read_text() == "mine"


def test_existing_empty_folder_is_fine(tmp_path):
    image, mask, _, _ = make_pair(tmp_path / "src")
    (tmp_path / "ds").mkdir()
    assert generate_dataset(image, mask, tmp_path / "ds", SMALL).n_train > 0


def test_cancel_leaves_nothing(tmp_path):
    image, mask, _, _ = make_pair(tmp_path / "src")
    calls = []

    def stop_after_a_few():
        calls.append(1)
        return len(calls) > 5

    with pytest.raises(Stopped):
        generate_dataset(image, mask, tmp_path / "ds", SMALL, should_stop=stop_after_a_few)
    assert not (tmp_path / "ds").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(Stopped):
        generate_dataset(image, mask, tmp_path / "empty", SMALL, should_stop=lambda: True)
    assert list((tmp_path / "empty").iterdir()) == []


def test_cancel_or_failure_keeps_the_old_dataset(tmp_path, monkeypatch):
    image, mask, _, _ = make_pair(tmp_path / "src")
    out = tmp_path / "ds"
    generate_dataset(image, mask, out, SMALL)
    before = {p: (out / p).read_bytes() for p in all_files(out)}
    again = GenerateConfig(patches=SMALL.patches, resize=48, rotations=(0,), overwrite=True)
    with pytest.raises(Stopped):
        generate_dataset(image, mask, out, again, should_stop=lambda: True)
    assert {p: (out / p).read_bytes() for p in all_files(out)} == before

    real = generate_module._write_patch
    written = []

    def failing(*args):
        written.append(1)
        if len(written) > 3:
            raise OSError(28, "No space left on device")
        real(*args)

    monkeypatch.setattr(generate_module, "_write_patch", failing)
    with pytest.raises(ImageWriteError, match="No space left"):
        generate_dataset(image, mask, out, again)
    assert {p: (out / p).read_bytes() for p in all_files(out)} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


# ----------------------------------------------------------------------------------------------
# reading dataset folders
# ----------------------------------------------------------------------------------------------


def test_open_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found.*train/data") as info:
        open_dataset(tmp_path / "missing")
    assert info.value.path == tmp_path / "missing"
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DatasetError, match="not a folder"):
        open_dataset(tmp_path / "file.txt")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "photo.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="not a dataset.*train/data"):
        open_dataset(tmp_path / "plain")
    root = tmp_path / "ds"
    for split in ("train", "test"):
        for kind in ("data", "label"):
            (root / split / kind).mkdir(parents=True)
    (root / "train" / "data" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="empty dataset"):
        open_dataset(root)


def test_open_dataset_pairs_images_and_labels(tmp_path):
    root = tmp_path / "ds"
    (root / "train" / "data").mkdir(parents=True)
    (root / "train" / "label").mkdir(parents=True)
    (root / "test" / "label").mkdir(parents=True)  # test/data missing: allowed
    for name in ("a roof é.png", "b.jpg", "c.png", "d.jpg", ".hidden.png"):
        Image.new("RGB", (8, 8)).save(root / "train" / "data" / name)
    for name in ("a roof é.png", "b.png", "d.jpg", "d.png"):
        Image.new("L", (8, 8)).save(root / "train" / "label" / name)
    Image.new("L", (8, 8)).save(root / "test" / "label" / "orphan.png")
    ds = open_dataset(root)
    assert [s.name for s in ds.train] == ["a roof é.png", "b.jpg", "c.png", "d.jpg"]
    assert ds.test == [] and ds.samples("test") == []
    labels = {s.name: s.label_path for s in ds.train}
    assert labels["a roof é.png"] == root / "train" / "label" / "a roof é.png"
    assert labels["b.jpg"].name == "b.png"  # same stem
    assert labels["c.png"] is None
    assert labels["d.jpg"].name == "d.jpg"  # same name preferred
    assert sorted(p.name for p in ds.orphan_labels) == ["d.png", "orphan.png"]
    assert all(s.split == "train" for s in ds.train)
    with pytest.raises(
        DatasetError, match=r"c.png: has no label.*1 of the 4 images of the train split"
    ):
        require_labels(ds.train, "train split")
    require_labels([s for s in ds.train if s.name != "c.png"], "train split")
    assert label_path_for(root, "train", "c.png") == root / "train" / "label" / "c.png"
    assert label_path_for(root, "train", "b.jpg") == root / "train" / "label" / "b.png"
    assert label_path_for(root, "train", "d.jpg") == root / "train" / "label" / "d.jpg"
    with pytest.raises(ConfigError):
        ds.samples("val")


def test_open_generated_dataset(tmp_path):
    image, mask, _, _ = make_pair(tmp_path / "src")
    result = generate_dataset(image, mask, tmp_path / "ds", SMALL)
    ds = open_dataset(tmp_path / "ds")
    assert (len(ds.train), len(ds.test)) == (result.n_train, result.n_test)
    require_labels(ds.train + ds.test, "dataset")
    assert ds.orphan_labels == []


def test_open_dataset_never_decodes_its_thousands_of_images(tmp_path, monkeypatch):
    """Opening lists files: no image is opened (empty files here would not even decode), so a
    dataset of thousands of patches opens at once. (Its time is not asserted: tests never
    assert on wall-clock time.)"""
    import PIL.Image

    root = tmp_path / "ds"
    for kind in ("data", "label"):
        (root / "train" / kind).mkdir(parents=True)
        for i in range(5000):
            (root / "train" / kind / f"{i:05d}.png").write_bytes(b"")
    opened = []
    real_open = PIL.Image.open
    monkeypatch.setattr(PIL.Image, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    ds = open_dataset(root)
    assert opened == []
    assert len(ds.train) == 5000 and all(s.label_path is not None for s in ds.train)


# ----------------------------------------------------------------------------------------------
# property: any image size and plan
# ----------------------------------------------------------------------------------------------


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    w=st.integers(70, 200),
    h=st.integers(70, 200),
    size=st.sampled_from([32, 48, 64]),
    frac=st.sampled_from([0.25, 0.5, 0.7, 1.0]),
    test_fraction=st.sampled_from([0.0, 0.15, 0.3]),
    rotations=st.sampled_from([(0,), (0, 90), (90, 180, 270)]),
    seed=st.integers(0, 5),
)
def test_property_patches_full_binary_and_disjoint(
    tmp_path_factory, w, h, size, frac, test_fraction, rotations, seed
):
    folder = tmp_path_factory.mktemp("prop")
    image, mask, rgb, truth = make_pair(folder / "src", w, h, seed)
    cfg = GenerateConfig(
        patches=(PatchSpec(size, frac),),
        resize=None,
        rotations=rotations,
        test_fraction=test_fraction,
        seed=seed,
    )
    out = folder / "ds"
    try:
        result = generate_dataset(image, mask, out, cfg)
    except ConfigError as exc:
        assert test_fraction > 0 and "too small to split" in str(exc)
        assert not out.exists()
        return
    rows = manifest(out)
    assert len(rows) == result.n_train + result.n_test > 0
    assert len(all_files(out)) == 2 * len(rows) + 1
    for row in rows[:: max(1, len(rows) // 8)]:
        x, y, s, k = int(row["x"]), int(row["y"]), int(row["size"]), int(row["rotation"]) // 90
        assert s == size and 0 <= x <= w - s and 0 <= y <= h - s
        label = read(out, row, "label")
        assert label.shape == (size, size) and set(np.unique(label)) <= {0, 255}
        np.testing.assert_array_equal(
            read(out, row, "data"), np.rot90(rgb[y : y + s, x : x + s], k)
        )
        np.testing.assert_array_equal(label > 0, np.rot90(truth[y : y + s, x : x + s], k))
    train, test = footprint(rows, (h, w), "train"), footprint(rows, (h, w), "test")
    assert not (train & test).any()
    assert test.any() == (test_fraction > 0)
    if test_fraction == 0:
        assert train.all()  # edges covered by the flush windows
    assert not [p for p in os.listdir(out) if p.startswith(".")]
