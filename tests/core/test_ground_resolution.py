"""A model's ground resolution: recorded by training, read from georeferenced images, and the
resampling every prediction path applies so that the model sees images at it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import Affine

from core.checkpoint import load_checkpoint, save_checkpoint
from core.cli import main
from core.errors import CheckpointError, ConfigError
from core.ground_resolution import (
    file_resolution,
    finest_resolution,
    prediction_scale,
    resolution_of_grid,
)
from core.models import build_model
from core.predict import image_resolution, predict_probabilities
from core.training.data import ImageCache
from core.training.loop import train
from tests.factories import (
    tiny_train_config,
    write_dataset,
    write_geotiff,
    write_geotiff_dataset,
)


class RedIsRoof(torch.nn.Module):
    """A pixel-wise 'model': roof where the red channel is bright. Pixel-wise, so resampling an
    image to another scale and the probabilities back must give the same map (up to the
    interpolation at edges): any shift, flip or wrong size shows."""

    size_multiple = 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, :1] - 0.5) * 40


def _half_red(h: int, w: int) -> np.ndarray:
    image = np.zeros((h, w, 3), np.uint8)
    image[:, : w // 3, 0] = 255  # a red band on the left third
    image[h // 2 :, :, 0] = 255  # and the bottom half
    return image


def test_scale_between_resolutions():
    assert prediction_scale(None, 30.0) == 1.0
    assert prediction_scale(30.0, None) == 1.0
    assert prediction_scale(30.0, 31.0) == 1.0  # within 5 %: the same
    assert prediction_scale(30.0, 117.0) == pytest.approx(3.9)
    assert prediction_scale(50.0, 25.0) == pytest.approx(0.5)
    with pytest.raises(ConfigError, match=r"town\.tif.*10\.0 times coarser"):
        prediction_scale(10.0, 100.0, "town.tif")


def test_resolution_of_a_grid_in_its_units():
    assert resolution_of_grid(CRS.from_epsg(32633), Affine(0.3, 0, 0, 0, -0.3, 0)) == pytest.approx(
        30
    )
    # US survey feet: one foot is 30.48 cm
    feet = resolution_of_grid(CRS.from_epsg(2263), Affine(1.0, 0, 0, 0, -1.0, 0))
    assert feet == pytest.approx(30.48, abs=0.01)
    assert resolution_of_grid(CRS.from_epsg(4326), Affine(1e-5, 0, 0, 0, -1e-5, 0)) is None
    assert resolution_of_grid(None, Affine(0.3, 0, 0, 0, -0.3, 0)) is None


def test_file_resolution(tmp_path):
    image = np.zeros((40, 40, 3), np.uint8)
    assert file_resolution(write_geotiff(tmp_path / "a.tif", image, 0.5)) == pytest.approx(50)
    assert file_resolution(write_geotiff(tmp_path / "b.tif", image, 0.5, crs=None)) is None
    Image.fromarray(image).save(tmp_path / "c.png")
    assert file_resolution(tmp_path / "c.png") is None
    (tmp_path / "d.tif").write_bytes(b"not a tiff")
    assert file_resolution(tmp_path / "d.tif") is None  # the reader that decodes it says why
    assert finest_resolution([tmp_path / "a.tif", tmp_path / "c.png"]) == pytest.approx(50)
    assert finest_resolution([tmp_path / "c.png"]) is None


@pytest.mark.parametrize(
    ("shape", "tile", "overlap", "scale_to"),
    [
        ((150, 200), 512, 64, 2.0),  # one pass, enlarged
        ((700, 500), 128, 32, 3.0),  # tiled, enlarged
        ((700, 500), 128, 32, 0.5),  # tiled, shrunk
    ],
)
def test_prediction_at_the_models_resolution_stays_on_the_images_grid(
    shape, tile, overlap, scale_to
):
    model = RedIsRoof()
    model.ground_resolution_cm = 30.0
    image = _half_red(*shape)
    plain = predict_probabilities(model, image, tile=tile, overlap=overlap, device="cpu")
    resampled = predict_probabilities(
        model,
        image,
        tile=tile,
        overlap=overlap,
        device="cpu",
        ground_resolution=30.0 * scale_to,
    )
    assert resampled.shape == image.shape[:2]
    agree = (resampled > 0.5) == (plain > 0.5)
    assert agree.mean() > 0.99
    # away from the red edges the two are the same everywhere (no seams, no shift)
    h, w = shape
    inside = np.ones(shape, bool)
    inside[h // 2 - 4 : h // 2 + 4] = False
    inside[:, w // 3 - 4 : w // 3 + 4] = False
    assert agree[inside].all()


def test_a_model_without_a_resolution_ignores_the_images():
    model = RedIsRoof()
    image = _half_red(100, 100)
    plain = predict_probabilities(model, image, device="cpu")
    same = predict_probabilities(model, image, device="cpu", ground_resolution=120.0)
    np.testing.assert_array_equal(plain, same)


def test_an_images_own_resolution_comes_before_the_users_gsd(tmp_path):
    model = RedIsRoof()
    assert image_resolution(tmp_path / "a.png", 90.0, model) == 90.0  # no model resolution
    model.ground_resolution_cm = 30.0
    geotiff = write_geotiff(tmp_path / "a.tif", _half_red(16, 16), 0.6)
    Image.fromarray(_half_red(16, 16)).save(tmp_path / "a.png")
    assert image_resolution(geotiff, 90.0, model) == pytest.approx(60.0)  # its CRS's
    assert image_resolution(tmp_path / "a.png", 90.0, model) == 90.0  # --gsd for the others
    assert image_resolution(tmp_path / "a.png", None, model) is None


def test_an_absurd_scale_is_refused():
    model = RedIsRoof()
    model.ground_resolution_cm = 10.0
    with pytest.raises(ConfigError, match="times coarser"):
        predict_probabilities(model, _half_red(64, 64), device="cpu", ground_resolution=500.0)


def test_training_learns_at_the_finest_resolution_and_records_it(tmp_path):
    data = write_geotiff_dataset(tmp_path / "ds", [0.3, 0.3, 0.6, 0.6, 0.3, 0.6])
    result = train(data, tmp_path / "models", tiny_train_config(epochs=1))
    loaded = load_checkpoint(result.model_path)
    assert loaded.metadata["resolution_cm"] == pytest.approx(30)
    assert loaded.model.ground_resolution_cm == pytest.approx(30)


def test_the_image_cache_resamples_to_the_models_resolution(tmp_path):
    from core.dataset import open_dataset

    data = write_geotiff_dataset(tmp_path / "ds", [0.3, 0.6])
    samples = open_dataset(data).train
    cache = ImageCache(samples, ground_resolution=30.0)
    assert [cache.size(i) for i in range(2)] == [(64, 64), (128, 128)]
    image, mask = cache.get(1)
    assert image.shape == (128, 128, 3) and mask.shape == (128, 128) and mask.dtype == bool
    # the roof pixels scale with the area
    original = np.asarray(Image.open(samples[1].label_path)) > 0
    assert mask.sum() == pytest.approx(original.sum() * 4, rel=0.1)
    # PNG tiles carry no resolution: taken to be at the model's
    plain = write_dataset(tmp_path / "png", n_train=1, n_test=0)
    cache = ImageCache(open_dataset(plain).train, ground_resolution=30.0)
    assert cache.size(0) == (64, 64)


def test_an_explicit_resolution_wins_and_a_bad_one_is_refused(tmp_path):
    data = write_dataset(tmp_path / "ds", n_train=4, n_test=0)
    result = train(data, tmp_path / "models", tiny_train_config(epochs=1, ground_resolution_cm=25))
    assert load_checkpoint(result.model_path).metadata["resolution_cm"] == 25
    with pytest.raises(ConfigError, match="ground_resolution_cm"):
        tiny_train_config(ground_resolution_cm=-1).validate()


def test_a_checkpoint_with_a_bad_resolution_is_named(tmp_path):
    path = save_checkpoint(
        tmp_path / "m.safetensors", build_model("prescribed"), {"resolution_cm": "x"}
    )
    with pytest.raises(CheckpointError, match="resolution_cm"):
        load_checkpoint(path)


def test_the_command_line_trains_at_a_resolution_and_predicts_an_orthophoto_on_its_grid(
    capsys, tmp_path
):
    import rasterio

    data = write_geotiff_dataset(tmp_path / "ds", [0.3, 0.3, 0.3, 0.3])
    args = ["train", "--data", data, "--models", tmp_path / "m", "--epochs", "1"]
    args += ["--arch", "liteunet", "--width", "8", "--crop-size", "64", "--batch-size", "4"]
    assert main([str(a) for a in args]) == 0
    assert "ground resolution 0.3 m/px" in capsys.readouterr().err
    model = tmp_path / "m" / "model_v1.safetensors"
    coarse = write_geotiff(tmp_path / "town.tif", _half_red(150, 130), 0.9)
    out = tmp_path / "out"
    assert main(["predict", str(coarse), "--model", str(model), "--out", str(out)]) == 0
    with rasterio.open(coarse) as src, rasterio.open(out / "town.tif") as mask:
        assert (mask.width, mask.height, mask.transform) == (src.width, src.height, src.transform)
    # a PNG of a coarser image: --gsd says its resolution; a bad one is named
    Image.fromarray(_half_red(90, 90)).save(tmp_path / "tile.png")
    args = ["predict", tmp_path / "tile.png", "--model", model, "--out", out, "--gsd", "0.6"]
    assert main([str(a) for a in args]) == 0
    assert np.asarray(Image.open(out / "tile.png")).shape == (90, 90)
    capsys.readouterr()
    assert main([str(a) for a in args[:-1]] + ["0"]) == 2
    assert "--gsd" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(data), "--model", str(model), "--split", "train"]) == 0


def test_train_gsd_option(tmp_path):
    from core.cli import build_parser
    from core.cli.train_command import train_config

    def config(*extra):
        args = ["train", "--data", "d", "--models", "m", *extra]
        return train_config(build_parser().parse_args(args))

    assert config().ground_resolution_cm is None
    assert config("--gsd", "0.25").ground_resolution_cm == pytest.approx(25)
    with pytest.raises(ConfigError, match="--gsd"):
        config("--gsd", "-1")


def test_generate_records_the_sources_resolution_and_the_dataset_reads_it(tmp_path):
    from core.dataset import open_dataset
    from core.errors import DatasetError
    from core.generate import GenerateConfig, PatchSpec, generate_dataset

    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)
    source = write_geotiff(tmp_path / "town.tif", image, 0.5)
    label = tmp_path / "label.png"
    Image.fromarray(((image[..., 0] > 128) * 255).astype(np.uint8)).save(label)
    config = GenerateConfig(patches=(PatchSpec.parse("64:0.5"),), resize=32, test_fraction=0.2)
    out = generate_dataset(source, label, tmp_path / "ds", config).dataset_dir
    samples = open_dataset(out).train + open_dataset(out).test
    # 64 source pixels of 0.5 m resized to 32 are generate's scale augmentation: the samples
    # stand for the 0.5 m source, and a model trained on them learns at 0.5 m
    assert [s.ground_resolution_cm for s in samples] == pytest.approx([50.0] * len(samples))
    assert finest_resolution(samples) == pytest.approx(50.0)
    # a PNG source has no resolution: the column is empty, the samples have none
    Image.fromarray(image).save(tmp_path / "plain.png")
    plain = generate_dataset(tmp_path / "plain.png", label, tmp_path / "ds2", config).dataset_dir
    assert {s.ground_resolution_cm for s in open_dataset(plain).train} == {None}
    # a broken value is named with its file and line
    manifest = out / "manifest.csv"
    lines = manifest.read_text().splitlines()
    lines[1] = ",".join(lines[1].split(",")[:-1] + ["-1"])
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"manifest\.csv.*line 2: source_gsd_m"):
        open_dataset(out)
