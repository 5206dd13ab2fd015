"""Cached results are keyed by dataset root and file identity (issue 12, item 1)."""

from __future__ import annotations

import os

import numpy as np

from core.result_cache import FileIdentity, ProbabilityCache, result_key


def _files(root, names=("00009.png",)):
    (root / "test" / "data").mkdir(parents=True)
    for name in names:
        (root / "test" / "data" / name).write_bytes(b"image " + root.name.encode())
    return [root / "test" / "data" / n for n in names]


def test_same_name_in_two_datasets_is_two_keys(tmp_path):
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"weights")
    (a,), (b,) = _files(tmp_path / "demo"), _files(tmp_path / "other")
    cache = ProbabilityCache()
    cache.put(result_key(tmp_path / "demo", model, a), np.zeros((2, 2), np.float32))
    assert cache.get(result_key(tmp_path / "other", model, b)) is None
    assert cache.get(result_key(tmp_path / "demo", model, a)) is not None


def test_a_changed_file_misses_and_its_stale_entry_is_dropped(tmp_path):
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"weights")
    (image,) = _files(tmp_path / "demo")
    cache = ProbabilityCache()
    old = result_key(tmp_path / "demo", model, image)
    cache.put(old, np.zeros((2, 2), np.float32))
    image.write_bytes(b"another image, longer")
    os.utime(image, ns=(5, 5))
    new = result_key(tmp_path / "demo", model, image)
    assert new != old and cache.get(new) is None
    cache.put(new, np.ones((2, 2), np.float32))
    assert len(cache) == 1 and old not in cache  # the old version's result is gone
    model.write_bytes(b"retrained weights")  # a model file overwritten: another model
    assert cache.get(result_key(tmp_path / "demo", model, image)) is None


def test_no_key_without_model_or_file(tmp_path):
    (image,) = _files(tmp_path / "demo")
    assert result_key(tmp_path / "demo", None, image) is None
    assert result_key(tmp_path / "demo", tmp_path / "missing.safetensors", image) is None
    assert FileIdentity.of(tmp_path / "missing.png") is None
    cache = ProbabilityCache()
    cache.put(None, np.zeros(1))
    assert len(cache) == 0 and cache.get(None) is None


def test_the_cache_stays_within_its_byte_bound(tmp_path):
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"weights")
    images = _files(tmp_path / "demo", [f"{i:05d}.png" for i in range(4)])
    cache = ProbabilityCache(max_bytes=2 * 400)
    for image in images:
        cache.put(result_key(tmp_path / "demo", model, image), np.zeros(100, np.float32))
    assert len(cache) == 2
    assert cache.get(result_key(tmp_path / "demo", model, images[0])) is None
    assert cache.get(result_key(tmp_path / "demo", model, images[3])) is not None
