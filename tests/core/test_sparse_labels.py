"""Partial labels in the dataset (issue 16): ``Sample.scribble_path`` filled by open_dataset, a
dataset of strokes only trains and saves, and a bad stroke file is an error naming it."""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
import pytest
from PIL import Image

from core.dataset import open_dataset
from core.errors import ImageReadError
from core.io import atomic_output
from core.scribbles import BACKGROUND, ROOF, read_scribble, scribble_path_for, simulate_strokes
from tests.factories import bright_squares, write_dataset


def test_open_dataset_fills_scribble_paths_cleans_temps_and_lists_orphans(tmp_path):
    root = write_dataset(
        tmp_path / "ds", n_train=3, n_test=1, with_labels=False, with_strokes="train"
    )
    folder = root / "train" / "scribble"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(folder / "nobody.png")
    with atomic_output(folder / "00001.png") as tmp:  # the name a killed write leaves
        name = tmp.name
        tmp.write_bytes(b"x")
    leftover = folder / name
    leftover.write_bytes(b"half a file")
    old = time.time() - 7200
    os.utime(leftover, (old, old))
    dataset = open_dataset(root)
    assert [s.scribble_path for s in dataset.train] == [
        scribble_path_for(root, "train", s.name) for s in dataset.train
    ]
    assert all(s.partly_labelled and s.label_path is None for s in dataset.train)
    assert dataset.test[0].scribble_path is None and not dataset.test[0].partly_labelled
    assert dataset.orphan_scribbles == [folder / "nobody.png"]
    assert not any(p.name.startswith(".") for p in folder.iterdir())


def test_simulated_strokes_stay_inside_their_class_and_the_budget():
    rng = np.random.default_rng(3)
    _image, mask = bright_squares(rng, 128)
    mask = mask > 0
    codes = simulate_strokes(mask, 1, max_fraction=0.02)
    assert np.count_nonzero(codes) <= 0.02 * mask.size
    assert (codes == ROOF).any() and (codes == BACKGROUND).any()
    assert mask[codes == ROOF].all() and not mask[codes == BACKGROUND].any()
    assert np.array_equal(codes, simulate_strokes(mask, 1, max_fraction=0.02))


def test_simulated_strokes_grow_with_the_image_and_label_both_classes_within_the_budget():
    """A user paints about as densely on a large tile as on a small one, and paints the ground
    as well as the roofs: roof and ground strokes take turns until the budget is used."""
    yy, xx = np.mgrid[0:512, 0:512]
    mask = ((yy // 32) % 2 == 0) & ((xx // 32) % 2 == 0)  # 64 roofs of 32 px, a quarter roof
    small = simulate_strokes(mask[:256, :256], 0, max_fraction=0.01)
    large = simulate_strokes(mask, 0, max_fraction=0.01)
    for codes in (small, large):
        roof, ground = np.count_nonzero(codes == ROOF), np.count_nonzero(codes == BACKGROUND)
        assert roof + ground <= 0.01 * codes.size
        assert roof + ground >= 0.009 * codes.size  # the counts for the area fill the budget
        assert 0.6 < roof / ground < 1.6  # neither class takes the whole budget
    # with room to spare: 48 + 48 strokes on 512 px, against 12 + 12 counted per image
    dense = simulate_strokes(mask, 0, max_fraction=0.2)
    fixed = simulate_strokes(mask, 0, max_fraction=0.2, per_area=None)
    assert np.count_nonzero(fixed) < 0.5 * np.count_nonzero(dense)


torch = pytest.importorskip("torch")


def _config(**kw):
    from core.training.config import TrainConfig

    base = dict(
        arch="liteunet",
        arch_params={"width": 8, "depth": 2},
        epochs=2,
        batch_size=4,
        crop_size=64,
        samples_per_epoch=8,
        val_fraction=0.25,
        device="cpu",
        seed=0,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("affinity", [0.0, 0.5])
def test_a_dataset_of_strokes_only_trains_and_saves(tmp_path, affinity):
    from core.checkpoint import load_checkpoint
    from core.training.loop import train

    root = write_dataset(
        tmp_path / "ds",
        n_train=6,
        n_test=0,
        with_labels=False,
        with_strokes="train",
        draw=bright_squares,
    )
    weights = []
    result = train(
        root,
        tmp_path / "models",
        dataclasses.replace(_config(), stroke_affinity=affinity),
        on_weights=lambda epoch, state: weights.append((epoch, state)),
    )
    assert result.model_path.is_file() and len(result.history) == 2
    assert all(np.isfinite(h.train_loss) for h in result.history)
    assert load_checkpoint(result.model_path).metadata["metrics"]["train_images"] >= 4
    assert [e for e, _ in weights] == [1, 2]
    state = weights[-1][1]
    assert all(t.device.type == "cpu" for t in state.values())


@pytest.mark.parametrize("problem", ["corrupt", "wrong size", "bad codes"])
def test_a_bad_stroke_file_is_an_error_naming_it(tmp_path, problem):
    from core.training.loop import train

    root = write_dataset(
        tmp_path / "ds",
        n_train=4,
        n_test=0,
        with_labels=False,
        with_strokes="train",
        draw=bright_squares,
    )
    bad = scribble_path_for(root, "train", "00002.png")
    if problem == "corrupt":
        bad.write_bytes(b"\x89PNG not really")
    elif problem == "wrong size":
        Image.fromarray(np.ones((32, 48), np.uint8)).save(bad)
    else:
        Image.fromarray(np.full((64, 64), 9, np.uint8)).save(bad)
    with pytest.raises(ImageReadError) as info:
        train(root, tmp_path / "models", _config(val_fraction=0.0))
    assert "00002.png" in str(info.value) and "scribble" in str(info.value)
    if problem == "wrong size":
        assert "48 x 32 but the image is 64 x 64" in str(info.value)
    with pytest.raises(ImageReadError):
        read_scribble(bad, (64, 64))


def test_pseudo_labels_fill_only_unlabelled_pixels_the_model_is_sure_of(tmp_path):
    from core.training.data import ImageCache

    root = write_dataset(
        tmp_path / "ds", n_train=2, n_test=0, with_labels=False, with_strokes="train"
    )
    cache = ImageCache(open_dataset(root).train)
    assert cache.partly_labelled() == [0, 1]
    _image, before = cache.get(0)
    before, known_before = before.copy(), cache.known(0).copy()
    probability = np.full(before.shape, 0.5, np.float32)
    probability[:, :20] = 0.97  # sure: roof
    probability[:, 40:] = 0.02  # sure: background
    added = cache.add_pseudo_labels(0, probability, 0.9)
    _image, after = cache.get(0)
    known = cache.known(0)
    # the strokes keep their labels, even where the model is sure of the other class
    assert np.array_equal(after[known_before], before[known_before])
    fresh = known & ~known_before
    assert added == np.count_nonzero(fresh) > 0
    assert after[:, :20][fresh[:, :20]].all() and not after[:, 40:][fresh[:, 40:]].any()
    assert not fresh[:, 20:40].any()  # unsure pixels stay unlabelled


def test_pseudo_labels_are_added_once_at_half_the_run(tmp_path, monkeypatch):
    from core.training import loop

    root = write_dataset(
        tmp_path / "ds", n_train=6, n_test=0, with_labels=False, with_strokes="train"
    )
    calls = []
    real = loop.add_pseudo_labels

    def spy(model, cache, device, config):
        calls.append(len(calls))
        added = real(model, cache, device, config)
        assert model.training  # training goes on in train mode
        return added

    monkeypatch.setattr(loop, "add_pseudo_labels", spy)
    result = loop.train(root, tmp_path / "models", _config(epochs=4, pseudo_labels=0.9))
    assert calls == [0] and len(result.history) == 4
    with pytest.raises(Exception, match="pseudo-label confidence"):
        _config(pseudo_labels=0.3).validate()
