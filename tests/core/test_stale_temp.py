"""Leftover temporary files of interrupted atomic writes are removed, and nothing else is."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from core.dataset import open_dataset
from core.io import (
    STALE_TEMP_SECONDS,
    atomic_output,
    is_temp_file_name,
    remove_stale_temp_files,
    temp_file_target,
)
from tests.factories import write_dataset

HOUR = 3600.0


def _age(path: Path, seconds: float) -> Path:
    """Set ``path``'s modification time ``seconds`` in the past."""
    when = time.time() - seconds
    os.utime(path, (when, when), follow_symlinks=False)
    return path


def _touch(path: Path, age: float = 0.0, data: bytes = b"half a file") -> Path:
    path.write_bytes(data)
    return _age(path, age)


def _real_temp_name(folder: Path, target: str) -> str:
    """The name atomic_output really gives its temporary file for ``folder/target``."""
    with atomic_output(folder / target) as tmp:
        name = tmp.name
        tmp.write_bytes(b"x")
    return name


def test_names_of_our_temporary_files_are_recognised(tmp_path):
    for target in ("00001.png", "model_v3.safetensors", "a b.c.png", "x"):
        assert is_temp_file_name(_real_temp_name(tmp_path, target)), target
    for other in (
        "00001.png",
        ".00001.png",
        ".00001.png.tmp",
        "00001.png.abcdefgh.tmp",
        ".00001.png.abcdefg.tmp",
        ".00001.png.ABCDEFGH.tmp",
        ".00001.png.abcdefgh.tmp~",
        ".abcdefgh.tmp",
        "..abcdefgh.tmpx",
        ".DS_Store",
        ".generating-abc123",
    ):
        assert not is_temp_file_name(other), other


def test_only_stale_files_of_our_pattern_go(tmp_path):
    old = STALE_TEMP_SECONDS + 60
    stale = [
        _touch(tmp_path / _real_temp_name(tmp_path, name), old)
        for name in ("00001.png", "model_v1.safetensors")
    ]
    fresh = _touch(tmp_path / ".00002.png.k3j9_x0a.tmp", 5)  # a write in progress elsewhere
    kept = [
        fresh,
        _touch(tmp_path / "00001.png", old),  # the targets themselves
        _touch(tmp_path / "model_v1.safetensors", old),
        _touch(tmp_path / "notes.tmp", old),  # not hidden
        _touch(tmp_path / ".00003.png.tmp", old),  # no random part
        _touch(tmp_path / ".00004.png.short.tmp", old),  # not mkstemp's 8 characters
        _touch(tmp_path / ".hidden-user-file", old),
    ]
    folder_like = tmp_path / ".00005.png.abcdefgh.tmp"  # the pattern, but a folder
    folder_like.mkdir()
    _age(folder_like, old)
    target = _touch(tmp_path / "target.png", old)
    link = tmp_path / ".00006.png.abcdefgh.tmp"  # the pattern, but a link
    link.symlink_to(target)
    _age(link, old)

    removed = remove_stale_temp_files(tmp_path)

    assert sorted(removed) == sorted(stale)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    assert folder_like.is_dir() and link.is_symlink() and target.read_bytes() == b"half a file"
    assert remove_stale_temp_files(tmp_path) == []  # nothing left to do


def test_the_age_decides(tmp_path):
    temp = _touch(tmp_path / ".label.png.a1b2c3d4.tmp", 120)
    assert remove_stale_temp_files(tmp_path, older_than_seconds=600) == []
    assert remove_stale_temp_files(tmp_path, older_than_seconds=60) == [temp]
    assert not temp.exists()


def test_only_the_given_names_are_looked_at(tmp_path):
    first = _touch(tmp_path / ".a.png.aaaaaaaa.tmp", HOUR * 2)
    second = _touch(tmp_path / ".b.png.bbbbbbbb.tmp", HOUR * 2)
    assert remove_stale_temp_files(tmp_path, names=[first.name, "b.png", ".gone.abcdefgh.tmp"]) == [
        first
    ]
    assert second.exists()


def test_only_the_temporary_files_of_the_given_targets_are_looked_at(tmp_path):
    mine = _touch(tmp_path / _real_temp_name(tmp_path, "00001.png"), HOUR * 2)
    theirs = _touch(tmp_path / _real_temp_name(tmp_path, "holiday.jpg"), HOUR * 2)
    assert temp_file_target(mine.name) == "00001.png" and temp_file_target("00001.png") is None
    assert remove_stale_temp_files(tmp_path, targets=["00001.png", "00002.png"]) == [mine]
    assert theirs.exists()


def test_missing_or_unwritable_folders_are_skipped_quietly(tmp_path, monkeypatch):
    assert remove_stale_temp_files(tmp_path / "nowhere") == []
    assert remove_stale_temp_files(_touch(tmp_path / "a-file")) == []
    cannot = _touch(tmp_path / ".x.png.abcdefgh.tmp", HOUR * 2)
    can = _touch(tmp_path / ".y.png.abcdefgh.tmp", HOUR * 2)
    real_unlink = Path.unlink

    def unlink(self, *args, **kwargs):
        if self.name == cannot.name:  # a read-only folder, or someone else's file
            raise PermissionError(13, "Permission denied", str(self))
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", unlink)
    assert remove_stale_temp_files(tmp_path) == [can]
    assert cannot.exists() and not can.exists()


def test_a_live_write_is_not_disturbed(tmp_path):
    """A cleaner running while atomic_output writes (another process opening the dataset) leaves
    the write whole, with the default age."""
    target = tmp_path / "label.png"
    started, go_on = threading.Event(), threading.Event()
    mask = np.zeros((32, 32), bool)
    mask[4:20, 8:30] = True

    def writer():
        with atomic_output(target) as tmp:
            Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(tmp, format="PNG")
            started.set()
            go_on.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    assert started.wait(10)
    assert remove_stale_temp_files(tmp_path) == []
    go_on.set()
    thread.join(10)
    assert np.array_equal(np.asarray(Image.open(target)) > 0, mask)
    assert [p.name for p in tmp_path.iterdir()] == ["label.png"]


def test_opening_a_dataset_removes_its_stale_temporary_files(tmp_path):
    root = write_dataset(tmp_path / "ds", n_train=1, n_test=1, size=8)
    old = STALE_TEMP_SECONDS + 60
    stale = [
        _touch(root / split / kind / f".00000.png.{split[:2]}{kind[:2]}abcd.tmp", old)
        for split in ("train", "test")
        for kind in ("data", "label")
    ]
    stale.append(_touch(root / ".manifest.csv.q1w2e3r4.tmp", old))
    fresh = _touch(root / "train" / "label" / ".00001.png.zzzzzzzz.tmp", 1)
    unrelated = [
        _touch(root / "train" / "label" / ".keep", old),
        _touch(root / "train" / "data" / "notes.txt", old),
    ]
    models = root / "models"
    models.mkdir()
    elsewhere = _touch(models / ".model_v1.safetensors.abcdefgh.tmp", old)

    dataset = open_dataset(root)

    assert [s.name for s in dataset.train] == ["00000.png"]
    assert not any(p.exists() for p in stale)
    assert fresh.exists() and all(p.exists() for p in unrelated)
    assert elsewhere.exists()  # not a dataset folder: the models folder is its owner's to clean
    assert dataset.train[0].label_path is not None and not dataset.orphan_labels


def test_model_folders_lose_only_the_leftovers_of_model_files(tmp_path):
    from core.checkpoint import remove_stale_model_temp_files

    old = STALE_TEMP_SECONDS + 60
    stale = _touch(tmp_path / ".model_v2.safetensors.k2j3h4g5.tmp", old)
    fresh = _touch(tmp_path / ".model_v3.safetensors.zzzzzzzz.tmp", 2)
    foreign = _touch(tmp_path / ".notes.txt.abcdefgh.tmp", old)  # the user's folder, not ours
    assert remove_stale_model_temp_files(tmp_path) == [stale]
    assert not stale.exists() and fresh.exists() and foreign.exists()
    assert remove_stale_model_temp_files(tmp_path / "missing") == []


def test_training_cleans_its_models_folder(tmp_path):
    from core.training.config import TrainConfig
    from core.training.loop import train

    root = write_dataset(tmp_path / "ds", n_train=3, n_test=3)
    models = tmp_path / "models"
    models.mkdir()
    stale = _touch(models / ".model_v1.safetensors.abcdefgh.tmp", STALE_TEMP_SECONDS + 60)
    result = train(
        root,
        models,
        TrainConfig(
            arch="prescribed", epochs=1, batch_size=2, crop_size=64, val_fraction=0, device="cpu"
        ),
    )
    assert not stale.exists() and result.model_path.is_file()
