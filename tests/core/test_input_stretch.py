"""Per-image input stretch (issue 13): the table, its use in training and in every prediction
path (in memory, windowed orthophoto, ONNX metadata), and what a checkpoint says about it."""

from __future__ import annotations

import os

import numpy as np
import pytest

from core.input_stretch import (
    MIN_RANGE,
    apply_table,
    identity_table,
    raster_ranges_from_source,
    raster_stretch_table,
    stretch,
    stretch_table,
    table_from_ranges,
)


def _ramp_image(low: int, high: int, size: int = 100) -> np.ndarray:
    """Every band runs evenly from ``low`` to ``high``: its percentiles are known."""
    values = np.linspace(low, high, size * size).round().astype(np.uint8).reshape(size, size)
    return np.stack([values] * 3, axis=-1)


def test_each_band_is_cut_at_its_2nd_and_98th_percentile():
    image = _ramp_image(20, 120)
    image[..., 2] = _ramp_image(0, 250)[..., 2]  # a band of another range
    table = stretch_table(image)
    out = apply_table(image, table)
    for band in range(3):
        values = out[..., band].reshape(-1)
        assert np.mean(values == 0) == pytest.approx(0.02, abs=0.012)
        assert np.mean(values == 255) == pytest.approx(0.02, abs=0.012)
    dark = _ramp_image(20, 120)[..., 0]
    assert out[..., 0].mean() > dark.mean() + 40  # the dark bands are brightened
    assert np.all(np.diff(table.astype(int), axis=1) >= 0)  # monotonic: order is kept


def test_a_flat_image_is_not_blown_up_into_noise():
    image = np.full((50, 50, 3), 100, np.uint8)
    image[::2, ::2] = 102  # two levels of noise
    out = stretch(image)
    assert int(out.max()) - int(out.min()) <= 255 * 2 / MIN_RANGE + 1


def test_pixels_without_data_do_not_count():
    image = _ramp_image(50, 150)
    valid = np.ones(image.shape[:2], bool)
    image[:40] = 0  # a black collar of no data
    valid[:40] = False
    with_collar = stretch_table(image, valid)
    without = stretch_table(image[40:])
    assert np.array_equal(with_collar, without)


def test_identity_table_changes_nothing():
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert np.array_equal(apply_table(image, identity_table()), image)


class _FakeRaster:
    """A large raster without overviews: only windows may be read, never the whole."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height, self.overview_factors = width, height, []
        self.windows = []

    def read(self):  # pragma: no cover - the test fails if it is called
        raise AssertionError("a large raster must not be read whole")

    def read_window(self, y, x, h, w, boundless=True):
        assert 0 <= y and y + h <= self.height and 0 <= x and x + w <= self.width
        self.windows.append((y, x, h, w))
        level = np.uint8(40 + (x * 100) // self.width)  # darker on the left
        return np.full((h, w, 3), level, np.uint8), np.ones((h, w), bool)


def test_a_large_raster_without_overviews_is_sampled_in_windows():
    raster = _FakeRaster(30_000, 20_000)
    table = table_from_ranges(raster_ranges_from_source(raster))
    assert len(raster.windows) == 64
    assert {x for _y, x, _h, _w in raster.windows} != {0}  # spread over the raster
    assert table[0, 40] < 30 and table[0, 139] > 225


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_a_raster_table_is_remembered_until_the_file_changes(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    path = tmp_path / "ortho.tif"

    def write(low: int, high: int) -> None:
        image = _ramp_image(low, high, 64)
        with rasterio.open(
            path, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8"
        ) as ds:
            ds.write(np.moveaxis(image, -1, 0))

    write(20, 120)
    first = raster_stretch_table(path)
    assert raster_stretch_table(path) is first  # not sampled again
    write(100, 200)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    second = raster_stretch_table(path)
    assert not np.array_equal(first, second)


# ------------------------------------------------------------------ with torch: models
torch = pytest.importorskip("torch")

from core.checkpoint import LoadedModel, load_checkpoint, read_metadata  # noqa: E402
from core.errors import CheckpointError, ConfigError  # noqa: E402
from core.models import build_model  # noqa: E402
from core.predict import predict_probabilities  # noqa: E402
from core.training.config import TrainConfig  # noqa: E402
from core.training.data import ImageCache  # noqa: E402
from core.training.loop import train  # noqa: E402
from tests.factories import bright_squares, save_untrained_model, write_dataset  # noqa: E402


def _dark(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float32) * 0.4 + 10).astype(np.uint8)


def test_a_stretch_model_predicts_on_the_stretched_image():
    torch.manual_seed(0)
    plain = build_model("liteunet", width=8, depth=2).eval()
    stretched = build_model("liteunet", width=8, depth=2).eval()
    stretched.load_state_dict(plain.state_dict())
    stretched.input_stretch = "percentile"
    image = _dark(np.random.default_rng(1).integers(0, 256, (96, 96, 3), dtype=np.uint8))
    got = predict_probabilities(stretched, image, precision="fp32")
    expected = predict_probabilities(plain, stretch(image), precision="fp32")
    assert np.array_equal(got, expected)
    table = identity_table()  # a given table (an orthophoto's) wins over the image's own
    got = predict_probabilities(stretched, image, precision="fp32", stretch_table=table)
    assert np.array_equal(got, predict_probabilities(plain, image, precision="fp32"))


def test_training_with_a_stretch_learns_on_stretched_images_and_says_so(tmp_path):
    dataset = write_dataset(tmp_path / "ds", n_train=6, n_test=1, draw=bright_squares)
    cache = ImageCache(_samples(dataset), "percentile")
    image, _mask = cache.get(0)
    assert int(image.max()) == 255 and int(image.min()) == 0
    config = TrainConfig(
        arch="liteunet",
        arch_params={"width": 8, "depth": 2},
        epochs=1,
        batch_size=4,
        crop_size=64,
        samples_per_epoch=8,
        val_fraction=0.2,
        device="cpu",
        input_stretch="percentile",
    )
    result = train(dataset, tmp_path / "models", config)
    assert read_metadata(result.model_path)["input_stretch"] == "percentile"
    loaded = load_checkpoint(result.model_path)
    assert loaded.model.input_stretch == "percentile"
    # fine-tuning keeps what the start model's weights learnt on
    again = train(
        dataset,
        tmp_path / "models",
        TrainConfig(**{**config.__dict__, "input_stretch": "none"}),
        init_from=result.model_path,
    )
    assert read_metadata(again.model_path)["input_stretch"] == "percentile"


def _samples(dataset):
    from core.dataset import open_dataset

    return open_dataset(dataset).samples("train")


def test_older_models_predict_the_pixels_as_they_are(tmp_path):
    path = save_untrained_model(tmp_path, "liteunet", width=8, depth=2)
    assert load_checkpoint(path).model.input_stretch == "none"


def test_an_unknown_stretch_is_a_clear_error(tmp_path):
    path = save_untrained_model(tmp_path, "liteunet", {"input_stretch": "histogram-eq"}, width=8)
    with pytest.raises(CheckpointError, match="histogram-eq.*update Rooftop Studio") as err:
        load_checkpoint(path)
    assert path.name in str(err.value)
    with pytest.raises(ConfigError, match="unknown input stretch"):
        TrainConfig(input_stretch="histogram-eq").validate()


def test_a_windowed_orthophoto_is_stretched_by_the_whole_rasters_table(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from core.orthophoto import predict_raster
    from core.synthetic import make_scene

    image = _dark(make_scene(600, seed=2)[0][:500])
    path = tmp_path / "dark.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=600,
        height=500,
        count=3,
        dtype="uint8",
        tiled=True,
        blockxsize=256,
        blockysize=256,
    ) as ds:
        ds.write(np.moveaxis(image, -1, 0))
    torch.manual_seed(0)
    model = build_model("liteunet", width=8, depth=2).eval()
    model.input_stretch = "percentile"
    loaded = LoadedModel(model, "liteunet", {}, {}, None, 0.5)
    result = predict_raster(
        loaded, path, tmp_path / "out", tile=256, overlap=64, precision="fp32", probabilities=True
    )
    from core.raster import decode_probability

    with rasterio.open(result.probability_path) as ds:
        windowed = decode_probability(ds.read(1))
    in_memory = predict_probabilities(model, image, tile=256, overlap=64, precision="fp32")
    assert np.abs(windowed - in_memory).max() <= 0.5 / 254 + 1e-6
