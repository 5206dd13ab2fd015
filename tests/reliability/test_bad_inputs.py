"""Bad files made by the tests themselves: each gives its documented behaviour.

Either a documented conversion (the file is read) or a clear error naming the file, through the
core API (a ``RooftopError`` subclass, never another exception type) and through the CLI (exit
status 2 and one line naming the file, no traceback).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from core.cli import main
from core.errors import RooftopError
from core.io import read_image, read_mask
from tests.factories import write_dataset

# -- builders of bad (and odd-but-valid) files ---------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_header_png(path: Path) -> Path:
    """A valid PNG header that claims 100000 x 100000 pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )
    return path


def rgb(h=96, w=128, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


BAD_FILES = {
    "zero_bytes.png": (lambda p: p.write_bytes(b""), "empty"),
    "text.png": (lambda p: p.write_text("not an image at all"), "not a readable image"),
    "truncated.png": (
        lambda p: (Image.fromarray(rgb()).save(p), p.write_bytes(p.read_bytes()[:300])),
        "truncated",
    ),
    "truncated.tif": (
        lambda p: (Image.fromarray(rgb(300, 300)).save(p), p.write_bytes(p.read_bytes()[:2000])),
        "truncated",
    ),
    "bomb.png": (huge_header_png, "decompression-bomb"),
}

ODD_BUT_VALID = {
    "sixteen.png": lambda p: Image.fromarray(rgb()[..., 0].astype(np.uint16) * 257).save(p),
    "sixteen_rgb.tif": lambda p: tifffile.imwrite(
        p, rgb().astype(np.uint16) * 16, photometric="rgb"
    ),
    "rgba.png": lambda p: Image.fromarray(rgb()).convert("RGBA").save(p),
    "palette.png": lambda p: Image.fromarray(rgb()).convert("P").save(p),
    "grey.png": lambda p: Image.fromarray(rgb()[..., 0]).save(p),
    "cmyk.jpg": lambda p: Image.fromarray(rgb()).convert("CMYK").save(p, "JPEG"),
    "float.tif": lambda p: tifffile.imwrite(p, rgb().astype(np.float32) / 255.0, photometric="rgb"),
    "name with spaces é ü.png": lambda p: Image.fromarray(rgb()).save(p),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_image_files_raise_a_rooftop_error_naming_the_file(tmp_path, name):
    make, needle = BAD_FILES[name]
    path = tmp_path / name
    make(path)
    for reader in (read_image, read_mask):
        with pytest.raises(RooftopError) as info:
            reader(path)
        assert name in str(info.value) and needle in str(info.value)


@pytest.mark.parametrize("name", sorted(ODD_BUT_VALID))
def test_odd_but_valid_images_are_converted(tmp_path, name):
    path = tmp_path / name
    ODD_BUT_VALID[name](path)
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == (96, 128, 3)
    assert image.std() > 5  # content survived the conversion (16-bit scaled, not clipped to black)
    mask = read_mask(path)
    assert mask.dtype == bool and mask.shape == (96, 128)


def test_mask_values_other_than_0_255_mean_roof_when_non_zero(tmp_path):
    values = np.array([[0, 1, 2, 128], [255, 0, 7, 0]], np.uint8)
    Image.fromarray(values).save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), values != 0)


# -- through the CLI ------------------------------------------------------------------------------


def cli_error(capsys, *args) -> str:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def pair(tmp_path):
    image = tmp_path / "image.png"
    label = tmp_path / "labels.png"
    Image.fromarray(rgb(160, 160)).save(image)
    mask = np.zeros((160, 160), np.uint8)
    mask[20:80, 30:90] = 200  # not 255: still roof
    Image.fromarray(mask).save(label)
    return image, label


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_generate_rejects_bad_image(capsys, tmp_path, pair, name):
    make, needle = BAD_FILES[name]
    bad = tmp_path / name
    make(bad)
    line = cli_error(
        capsys,
        "generate",
        "--image",
        bad,
        "--label",
        pair[1],
        "--out",
        tmp_path / "ds",
        "--patch",
        "64:0.5",
    )
    assert name in line and needle in line
    line = cli_error(
        capsys,
        "generate",
        "--image",
        pair[0],
        "--label",
        bad,
        "--out",
        tmp_path / "ds",
        "--patch",
        "64:0.5",
    )
    assert name in line


@pytest.mark.parametrize("name", sorted(ODD_BUT_VALID))
def test_generate_accepts_odd_images_and_writes_binary_labels(tmp_path, pair, name):
    odd = tmp_path / name
    ODD_BUT_VALID[name](odd)
    # an image of 96 x 128 needs a mask of that size
    mask = tmp_path / "m.png"
    Image.fromarray((np.arange(96 * 128).reshape(96, 128) % 3).astype(np.uint8)).save(mask)
    out = tmp_path / "ds"
    assert (
        main(
            [
                "generate",
                "--image",
                str(odd),
                "--label",
                str(mask),
                "--out",
                str(out),
                "--patch",
                "32:0.5",
                "--resize",
                "32",
            ]
        )
        == 0
    )
    for label in (out / "train" / "label").iterdir():
        assert set(np.unique(np.asarray(Image.open(label)))) <= {0, 255}


def test_output_paths_that_are_files(capsys, tmp_path, pair):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    assert "blocker" in cli_error(capsys, "demo", blocker, "--size", "64")
    assert "blocker" in cli_error(
        capsys,
        "generate",
        "--image",
        pair[0],
        "--label",
        pair[1],
        "--out",
        blocker,
        "--patch",
        "64:0.5",
    )


def _dataset(root: Path, names=("a.png",), labels=("a.png",)) -> Path:
    """The dataset layout with the images ``names`` and the labels ``labels`` in train/: any
    names (spaces, non-ASCII), images without labels and labels without images."""
    write_dataset(root, n_train=0, n_test=0)
    for name in names:
        Image.fromarray(rgb(64, 64)).save(root / "train" / "data" / name)
    for name in labels:
        Image.fromarray(np.zeros((64, 64), np.uint8)).save(root / "train" / "label" / name)
    return root


def test_dataset_problems_through_train(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    assert "not a dataset" in cli_error(
        capsys, "train", "--data", tmp_path / "empty", "--models", tmp_path / "m"
    )
    layout_only = _dataset(tmp_path / "layout", names=(), labels=())
    assert "empty dataset" in cli_error(
        capsys, "train", "--data", layout_only, "--models", tmp_path / "m"
    )
    no_label = _dataset(tmp_path / "nolabel", names=("a.png", "b b é.png"), labels=("a.png",))
    line = cli_error(
        capsys, "train", "--data", no_label, "--models", tmp_path / "m", "--epochs", "1"
    )
    assert "b b é.png" in line and "no label" in line
    blocker = tmp_path / "models_file"
    blocker.write_text("x")
    ok = _dataset(tmp_path / "ok", names=("a.png", "b.png"), labels=("a.png", "b.png"))
    assert "models_file" in cli_error(
        capsys, "train", "--data", ok, "--models", blocker, "--epochs", "1"
    )


def test_label_without_image_is_ignored_and_reported_by_open_dataset(tmp_path):
    from core.dataset import open_dataset

    root = _dataset(tmp_path / "ds", names=("a.png",), labels=("a.png", "ghost.png"))
    ds = open_dataset(root)
    assert [s.name for s in ds.train] == ["a.png"]
    assert [p.name for p in ds.orphan_labels] == ["ghost.png"]


def test_corrupt_image_inside_a_dataset_names_it(capsys, tmp_path):
    root = _dataset(tmp_path / "ds", names=("a.png", "b.png"), labels=("a.png", "b.png"))
    (root / "train" / "data" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    line = cli_error(
        capsys,
        "train",
        "--data",
        root,
        "--models",
        tmp_path / "m",
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--crop-size",
        "64",
        "--val-fraction",
        "0",
    )
    assert "b.png" in line
