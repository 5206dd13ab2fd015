"""`rooftop` end to end on tiny data, and every bad input of the issue gives a one-line error."""

from __future__ import annotations

import csv
import io
import json
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from core.cli import main
from core.cli.output import ProgressBar, Reporter
from core.errors import ConfigError
from core.progress import Progress, Stopped


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def scene(workdir):
    assert main(["demo", str(workdir / "scene"), "--size", "256", "--seed", "3"]) == 0
    return workdir / "scene"


@pytest.fixture(scope="module")
def dataset(workdir, scene):
    out = workdir / "dataset"
    code = main(
        [
            "generate",
            "--image",
            str(scene / "image.png"),
            "--label",
            str(scene / "labels.png"),
            "--out",
            str(out),
            "--patch",
            "96:0.5",
            "--patch",
            "64:0.5",
            "--resize",
            "64",
            "--rotations",
            "0,90",
            "--test-fraction",
            "0.25",
        ]
    )
    assert code == 0
    return out


@pytest.fixture(scope="module")
def model(workdir, dataset):
    models = workdir / "models"
    code = main(
        [
            "train",
            "--data",
            str(dataset),
            "--models",
            str(models),
            "--arch",
            "prescribed",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--crop-size",
            "64",
            "--samples-per-epoch",
            "8",
            "--lr",
            "1e-3",
        ]
    )
    assert code == 0
    return models / "model_v1.safetensors"


def test_demo_writes_rgb_image_and_binary_mask(scene):
    image = Image.open(scene / "image.png")
    label = Image.open(scene / "labels.png")
    assert image.mode == "RGB" and label.mode == "L" and image.size == label.size == (256, 256)
    assert set(np.unique(np.asarray(label))) == {0, 255}


def test_generate_writes_original_layout_and_manifest(dataset):
    rows = list(csv.DictReader(open(dataset / "manifest.csv", newline="")))
    assert rows and {"name", "split", "source_image", "x", "y", "size", "rotation"} <= set(rows[0])
    for row in rows:
        for kind in ("data", "label"):
            assert (dataset / row["split"] / kind / row["name"]).is_file()
    splits = {row["split"] for row in rows}
    assert splits == {"train", "test"}
    label = np.asarray(Image.open(dataset / rows[0]["split"] / "label" / rows[0]["name"]))
    assert label.ndim == 2 and set(np.unique(label)) <= {0, 255}


def test_train_json_reports_model_and_history(capsys, workdir, dataset, model):
    code, out, err = run_cli(
        capsys,
        "train",
        "--data",
        dataset,
        "--models",
        workdir / "models",
        "--arch",
        "unet",
        "--epochs",
        "2",
        "--batch-size",
        "2",
        "--crop-size",
        "64",
        "--samples-per-epoch",
        "4",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["model"].endswith("model_v2.safetensors")
    assert len(result["history"]) == 2
    assert {"train_loss", "val_loss", "val_iou", "seconds", "eta_seconds"} <= set(
        result["history"][0]
    )
    assert "epoch   1/2" in err


def test_train_stops_at_time_limit_and_still_saves(capsys, workdir, dataset, model):
    code, out, err = run_cli(
        capsys,
        "train",
        "--data",
        dataset,
        "--models",
        workdir / "models_t",
        "--epochs",
        "1000",
        "--batch-size",
        "2",
        "--crop-size",
        "64",
        "--max-minutes",
        "0.02",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["stopped"] == "time" and len(result["history"]) < 1000
    assert (workdir / "models_t" / "model_v1.safetensors").is_file()


def test_evaluate_json_has_summed_metrics(capsys, dataset, model):
    code, out, err = run_cli(
        capsys, "evaluate", "--data", dataset, "--model", model, "--json", "--dilation", "3"
    )
    assert code == 0, err
    result = json.loads(out)
    for key in ("iou", "f1", "precision", "recall", "accuracy", "loss"):
        assert 0.0 <= result[key] <= (10.0 if key == "loss" else 1.0)
    n_test = len(list((dataset / "test" / "data").iterdir()))
    assert result["images"] == n_test
    assert result["tp"] + result["fp"] + result["fn"] + result["tn"] == n_test * 64 * 64


def test_predict_writes_masks_and_composites(capsys, workdir, dataset, model, scene):
    out_dir = workdir / "pred"
    code, out, err = run_cli(
        capsys,
        "predict",
        "--model",
        model,
        "--out",
        out_dir,
        "--composite",
        "--tile",
        "128",
        "--overlap",
        "32",
        "--dilation",
        "3",
        dataset / "test" / "data",
        scene / "image.png",
    )
    assert code == 0, err
    names = sorted(p.name for p in (dataset / "test" / "data").iterdir())
    for name in names:
        mask = Image.open(out_dir / name)
        assert mask.mode == "L" and set(np.unique(np.asarray(mask))) <= {0, 255}
        composite = Image.open(out_dir / name.replace(".png", "_composite.png"))
        assert composite.size[0] > 3 * 64  # input | label | prediction
    big = Image.open(out_dir / "image.png")
    assert big.size == (256, 256)  # the whole scene, right and bottom edges included


def test_evaluate_and_predict_report_progress_events(tmp_path, dataset, model):
    from core.evaluate import evaluate
    from core.predict_files import predict_files

    events = []
    result = evaluate(dataset, model, device="cpu", on_progress=events.append)
    names = [s.name for s in result.per_image]
    assert [(e.done, e.total, e.item, e.unit) for e in events] == [
        (i + 1, len(names), name, "images") for i, name in enumerate(names)
    ]
    with pytest.raises(Stopped, match="evaluation stopped"):
        evaluate(dataset, model, device="cpu", should_stop=lambda: True)

    events = []
    written = predict_files(
        model, [dataset / "test" / "data"], tmp_path / "p", device="cpu", on_progress=events.append
    )
    assert [(e.done, e.total, e.item, e.unit) for e in events] == [
        (i + 1, len(written), str(r.source), "files") for i, r in enumerate(written)
    ]
    with pytest.raises(Stopped, match="prediction stopped"):
        predict_files(
            model,
            [dataset / "test" / "data"],
            tmp_path / "q",
            device="cpu",
            should_stop=lambda: True,
        )


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bars_show_rate_and_eta_on_a_terminal_only():
    def shown(stream, **kwargs):
        with ProgressBar(Reporter(stream=stream, **kwargs), "predicting", "files") as bar:
            bar("a training event: ignored")
            for i in range(3):
                bar(Progress(i + 1, 3, f"/in/img{i}.png", "files"))
        return stream.getvalue()

    text = shown(_Terminal())
    assert "predicting" in text and "/3" in text and "files/s" in text  # count and rate
    assert "<" in text  # elapsed<remaining: the ETA
    assert text.endswith("\r")  # cleared when done: the next line starts clean
    assert shown(io.StringIO()) == ""  # not a terminal (a log, a pipe)
    assert shown(_Terminal(), bars=False) == ""  # --json


def test_an_orthophotos_pixels_get_a_bar_of_their_own_among_the_files():
    stream = _Terminal()
    with ProgressBar(Reporter(stream=stream), "predicting", "files") as bar:
        for done in (250_000, 1_000_000):
            bar(Progress(done, 1_000_000, "/in/town.tif", "pixels"))
        bar(Progress(1, 2, "/in/town.tif", "files"))
        bar(Progress(2, 2, "/in/b.png", "files"))
    text = stream.getvalue()
    assert "/1.00M" in text and "px/s" in text  # megapixels with their rate
    assert "/2 " in text and "files/s" in text  # then the files, counted on their own


@pytest.mark.parametrize(
    "command",
    ["demo", "generate", "train", "evaluate", "predict", "vectorize", "rasterize", "export-onnx"],
)
def test_every_command_has_help(capsys, command):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: rooftop " + command in capsys.readouterr().out


def test_console_entry_point_runs():
    result = subprocess.run(
        [sys.executable, "-m", "core", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "generate" in result.stdout


# -- bad input: exit code 2, one line naming the file and the problem, no traceback -------------


def expect_error(capsys, args, *needles):
    code, out, err = run_cli(capsys, *args)
    assert code == 2, (code, out, err)
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    return lines[0]


def test_generate_missing_image(capsys, tmp_path, scene):
    expect_error(
        capsys,
        [
            "generate",
            "--image",
            tmp_path / "nope.tif",
            "--label",
            scene / "labels.png",
            "--out",
            tmp_path / "d",
        ],
        "nope.tif",
        "not found",
    )


def test_generate_text_file_named_png(capsys, tmp_path, scene):
    fake = tmp_path / "fake.png"
    fake.write_text("this is not an image")
    expect_error(
        capsys,
        ["generate", "--image", fake, "--label", scene / "labels.png", "--out", tmp_path / "d"],
        "fake.png",
        "not a readable image",
    )


def test_generate_truncated_image(capsys, tmp_path, scene):
    data = (scene / "image.png").read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 3])
    expect_error(
        capsys,
        ["generate", "--image", cut, "--label", scene / "labels.png", "--out", tmp_path / "d"],
        "cut.png",
        "truncated",
    )


def test_generate_mask_of_another_size(capsys, tmp_path, scene):
    small = tmp_path / "small_mask.png"
    Image.new("L", (100, 80)).save(small)
    expect_error(
        capsys,
        ["generate", "--image", scene / "image.png", "--label", small, "--out", tmp_path / "d"],
        "small_mask.png",
        "same size",
    )


def test_generate_patch_larger_than_image(capsys, tmp_path, scene):
    expect_error(
        capsys,
        [
            "generate",
            "--image",
            scene / "image.png",
            "--label",
            scene / "labels.png",
            "--out",
            tmp_path / "d",
            "--patch",
            "512:0.5",
        ],
        "512",
    )


def test_generate_bad_patch_text(capsys, tmp_path, scene):
    expect_error(
        capsys,
        [
            "generate",
            "--image",
            scene / "image.png",
            "--label",
            scene / "labels.png",
            "--out",
            tmp_path / "d",
            "--patch",
            "big",
        ],
        "big",
    )


def test_train_empty_dataset(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    expect_error(
        capsys, ["train", "--data", tmp_path / "empty", "--models", tmp_path / "m"], "empty"
    )


def test_train_data_without_label(capsys, tmp_path, dataset):
    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    victim = sorted((copy / "train" / "label").iterdir())[0]
    victim.unlink()
    expect_error(
        capsys,
        ["train", "--data", copy, "--models", tmp_path / "m", "--epochs", "1"],
        victim.name,
        "label",
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_train_cuda_absent(capsys, tmp_path, dataset):
    expect_error(
        capsys, ["train", "--data", dataset, "--models", tmp_path / "m", "--device", "cuda"], "CUDA"
    )


def test_evaluate_corrupt_checkpoint(capsys, tmp_path, dataset, model):
    bad = tmp_path / "model_v9.safetensors"
    bad.write_bytes(model.read_bytes()[:1000])
    expect_error(
        capsys, ["evaluate", "--data", dataset, "--model", bad], "model_v9.safetensors", "truncated"
    )


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_predict_pickled_checkpoint_is_refused_not_run(capsys, tmp_path, scene):
    marker = tmp_path / "executed"
    evil = tmp_path / "model_v1.pth"
    evil.write_bytes(pickle.dumps(_Payload(marker)))
    expect_error(
        capsys,
        ["predict", "--model", evil, "--out", tmp_path / "o", scene / "image.png"],
        "model_v1.pth",
        "pickled",
    )
    assert not marker.exists()


def test_predict_missing_input(capsys, tmp_path, model):
    expect_error(
        capsys,
        ["predict", "--model", model, "--out", tmp_path / "o", tmp_path / "ghost.png"],
        "ghost.png",
        "not found",
    )


def test_predict_output_path_is_a_file(capsys, tmp_path, model, scene):
    blocker = tmp_path / "out.png"
    blocker.write_text("x")
    expect_error(
        capsys,
        ["predict", "--model", model, "--out", blocker, scene / "image.png"],
        "out.png",
        "not a folder",
    )


def test_demo_bad_size(capsys, tmp_path):
    expect_error(capsys, ["demo", tmp_path / "s", "--size", "10"], "size")


def test_train_arguments_map_onto_the_config():
    """``rooftop train``'s options reach ``TrainConfig``: nothing but the budget given is the
    default recipe; ``--keep best`` and the original recipe's flags are what they say."""
    from core.cli import build_parser
    from core.cli.train_command import train_config
    from core.training.config import ORIGINAL_RECIPE, TrainConfig

    def config(*extra):
        args = ["train", "--data", "d", "--models", "m", *extra]
        return train_config(build_parser().parse_args(args))

    assert config("--max-minutes", "5") == TrainConfig(max_minutes=5.0)
    assert config("--epochs", "3", "--keep", "best").keep == "best"
    original = config(
        *"--arch prescribed --optimizer adam --lr 1e-4 --loss bce --schedule constant "
        "--batch-size 32 --no-augment --balance 0 --no-tune-threshold --weight-decay 0 "
        "--warmup 0 --keep best --input-stretch none".split()
    )
    assert original == TrainConfig(**ORIGINAL_RECIPE)
    assert config("--tune-threshold").tune_threshold is True
    assert config("--width", "16").arch_params == {"width": 16}
    for bad in (["--arch", "prescribed", "--width", "16"], ["--width", "200"]):
        with pytest.raises(ConfigError, match="width"):
            config(*bad).validate()
    assert config("--loss", "bce+lovasz").loss == "bce+lovasz"
