"""Crash safety with real processes: SIGKILL in the middle of a save leaves the previous file whole;
Ctrl+C during `rooftop train` saves the model so far; `--resume` continues a run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from core.checkpoint import load_checkpoint, save_checkpoint
from core.dataset import open_dataset
from core.io import STALE_TEMP_SECONDS, is_temp_file_name, read_mask, write_mask
from core.models import build_model
from tests.factories import write_dataset

ROOT = Path(__file__).resolve().parents[2]
KILLS = 6


def _spawn(code: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_line(proc: subprocess.Popen, needle: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if needle in line:
            return
        if proc.poll() is not None:
            raise AssertionError(f"child ended early: {proc.stderr.read()}")
    raise AssertionError(f"child never printed {needle!r}")


def test_sigkill_while_saving_a_label_keeps_a_whole_file(tmp_path):
    rng = np.random.default_rng(0)
    masks = [rng.random((1024, 1024)) > 0.5, rng.random((1024, 1024)) > 0.7]
    np.save(tmp_path / "a.npy", masks[0])
    np.save(tmp_path / "b.npy", masks[1])
    # the label of a dataset, as the window saves it
    root = write_dataset(tmp_path / "ds", n_train=1, n_test=0, size=1024, with_labels=False)
    target = root / "train" / "label" / "00000.png"
    write_mask(target, masks[0])
    for kill in range(KILLS):
        proc = _spawn(f"""
            import numpy as np
            from core.io import write_mask
            masks = [np.load({str(tmp_path / "a.npy")!r}), np.load({str(tmp_path / "b.npy")!r})]
            print("ready", flush=True)
            i = 0
            while True:
                write_mask({str(target)!r}, masks[i % 2])
                i += 1
        """)
        _wait_for_line(proc, "ready")
        time.sleep(0.05 + 0.11 * kill)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        on_disk = read_mask(target)
        assert any(np.array_equal(on_disk, m) for m in masks), f"kill {kill}: label corrupted"

    # a kill inside a write leaves its hidden temporary file; once stale (aged here rather than
    # waited for), reopening the dataset removes it, and only it
    folder = target.parent
    leftovers = [p for p in folder.iterdir() if p != target]
    assert all(is_temp_file_name(p.name) for p in leftovers), leftovers
    old = time.time() - STALE_TEMP_SECONDS - 60
    for path in leftovers:
        os.utime(path, (old, old))
    dataset = open_dataset(root)
    assert sorted(folder.iterdir()) == [target]
    assert dataset.train[0].label_path == target
    assert any(np.array_equal(read_mask(target), m) for m in masks)


def test_sigkill_while_saving_a_checkpoint_keeps_a_loadable_file(tmp_path):
    target = tmp_path / "model_v1.safetensors"
    save_checkpoint(target, build_model("unet", width=8, depth=2), {"threshold": 0.5})
    for kill in range(KILLS):
        proc = _spawn(f"""
            import torch
            from core.checkpoint import save_checkpoint
            from core.models import build_model
            model = build_model("unet", width=16, depth=3)
            print("ready", flush=True)
            i = 0
            while True:
                save_checkpoint({str(target)!r}, model, {{"threshold": 0.25 + (i % 2) * 0.5}})
                i += 1
        """)
        _wait_for_line(proc, "ready")
        time.sleep(0.05 + 0.13 * kill)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        loaded = load_checkpoint(target)  # whole and loadable: old or new, never half
        assert loaded.threshold in (0.5, 0.25, 0.75)


def test_ctrl_c_during_train_saves_the_model_so_far(tmp_path, tiny_dataset):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "core",
            "train",
            "--data",
            str(tiny_dataset),
            "--models",
            str(tmp_path),
            "--epochs",
            "100000",
            "--batch-size",
            "2",
            "--crop-size",
            "64",
            "--json",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until at least one epoch is done
        line = proc.stderr.readline()
        if line.startswith("epoch"):
            break
        assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["stopped"] == "user"
    saved = Path(result["model"])
    assert saved.is_file() and load_checkpoint(saved).metadata["stopped"] == "user"


def test_resume_continues_from_a_checkpoint(tmp_path, tiny_dataset):
    from core.training.config import TrainConfig
    from core.training.loop import train

    config = TrainConfig(epochs=2, batch_size=2, crop_size=64, lr=1e-3)
    first = train(tiny_dataset, tmp_path, config)
    second = train(
        tiny_dataset,
        tmp_path,
        TrainConfig(epochs=1, batch_size=2, crop_size=64, lr=1e-3),
        resume_from=first.model_path,
    )
    assert second.model_path.name == "model_v2.safetensors"
    assert [h.epoch for h in second.history] == [1, 2, 3]
    resumed = load_checkpoint(second.model_path, with_optimizer=True)
    assert resumed.metadata["resumed_from"] == str(first.model_path)
    assert resumed.optimizer_state and resumed.optimizer_state["state"]
