"""core.overview_cache: the window's kept overviews of rasters without overviews of their own."""

from __future__ import annotations

import os

import numpy as np

from core import overview_cache


def _overview(seed: int = 0, side: int = 40):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 255, (side, side + 5, 3), dtype=np.uint8)
    valid = rng.random((side, side + 5)) > 0.1
    return rgb, valid


def test_round_trip_and_keyed_by_the_file_bands_and_size(tmp_path):
    raster = tmp_path / "ortho.tif"
    raster.write_bytes(b"pixels")
    folder = tmp_path / "cache"
    rgb, valid = _overview()
    overview_cache.save(folder, raster, "rgb", 2048, rgb, valid, 15)
    kept = overview_cache.load(folder, raster, "rgb", 2048)
    assert kept is not None and kept.factor == 15
    assert np.array_equal(kept.rgb, rgb) and np.array_equal(kept.valid, valid)
    assert overview_cache.load(folder, raster, "mask", 2048) is None
    assert overview_cache.load(folder, raster, "rgb", 1024) is None
    # a changed file is another file
    raster.write_bytes(b"other pixels")
    assert overview_cache.load(folder, raster, "rgb", 2048) is None
    assert overview_cache.load(folder, tmp_path / "gone.tif", "rgb", 2048) is None


def test_a_damaged_entry_reads_as_missing_and_is_removed(tmp_path):
    raster = tmp_path / "ortho.tif"
    raster.write_bytes(b"pixels")
    folder = tmp_path / "cache"
    path = overview_cache.save(folder, raster, "rgb", 2048, *_overview(), 4)
    path.write_bytes(path.read_bytes()[:100])
    assert overview_cache.load(folder, raster, "rgb", 2048) is None
    assert not path.exists()
    # arrays of the wrong kind are damaged too
    with open(path, "wb") as handle:
        np.savez(handle, rgb=np.zeros((4, 4), np.uint8), valid=np.ones((4, 4)), factor=2)
    assert overview_cache.load(folder, raster, "rgb", 2048) is None


def test_the_folder_is_trimmed_least_recently_used_first(tmp_path):
    folder = tmp_path / "cache"
    paths = []
    for i in range(4):
        raster = tmp_path / f"r{i}.tif"
        raster.write_bytes(b"x" * (i + 1))
        paths.append(overview_cache.save(folder, raster, "rgb", 2048, *_overview(i, 200), 2))
        os.utime(paths[-1], ns=(i * 10**9, i * 10**9))  # r0 oldest
    assert overview_cache.load(folder, tmp_path / "r0.tif", "rgb", 2048) is not None  # used now
    size = paths[0].stat().st_size
    overview_cache.trim(folder, max_bytes=int(2.5 * size))
    left = sorted(p.name for p in folder.glob("*.npz"))
    assert left == sorted([paths[0].name, paths[3].name])
