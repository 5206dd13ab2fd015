"""``--adapt``: a model's batch-norm statistics adapted to the imagery it predicts
(core.imagery_adaptation, ``rooftop evaluate --adapt`` and ``rooftop predict --adapt``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
rasterio = pytest.importorskip("rasterio")

from core.batch_norm_adaptation import batch_norm_layers  # noqa: E402
from core.checkpoint import load_checkpoint  # noqa: E402
from core.cli import main  # noqa: E402
from core.errors import ConfigError  # noqa: E402
from core.evaluate import evaluate  # noqa: E402
from core.imagery_adaptation import (  # noqa: E402
    ImagerySample,
    adapted_model,
    image_samples,
    raster_samples,
    spread,
)
from core.predict_files import predict_files  # noqa: E402
from tests.factories import save_untrained_model, write_dataset, write_geotiff  # noqa: E402


@pytest.fixture()
def model_path(tmp_path):
    return save_untrained_model(tmp_path / "m", "liteunet", width=4, depth=2)


def _dark(seed: int, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 60, (size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("count", [0, 1, 2, 5, 8, 13])
def test_spread_covers_the_list_once_and_starts_with_its_ends_and_middle(count):
    order = spread(count)
    assert sorted(order) == list(range(count))
    if count >= 5:
        assert order[:2] == [0, 8 if count > 8 else 4]


def test_image_samples_stay_within_the_pixels_and_spread_over_the_list(tmp_path, model_path):
    model = load_checkpoint(model_path).model
    paths = []
    for i in range(8):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(_dark(i)).save(paths[-1])
    taken = image_samples(paths, model, pixels=3 * 64 * 64)
    assert len(taken) == 3
    assert [s.image.tobytes() for s in taken] == [_dark(i).tobytes() for i in (0, 4, 2)]
    # one image is always taken, however small the budget
    assert len(image_samples(paths, model, pixels=1)) == 1


def test_image_samples_take_a_dataset_samples_resolution_from_its_manifest(tmp_path):
    from types import SimpleNamespace

    model = load_checkpoint(
        save_untrained_model(tmp_path / "m", "liteunet", {"resolution_cm": 30.0}, width=4, depth=2)
    ).model
    path = tmp_path / "patch.png"
    Image.fromarray(_dark(0)).save(path)
    sample = SimpleNamespace(image_path=path, ground_resolution_cm=60.0)
    assert image_samples([sample], model)[0].ground_resolution == 60.0
    assert image_samples([path], model, given_resolution=45.0)[0].ground_resolution == 45.0


def test_raster_samples_are_windows_on_a_grid_that_skip_no_data(tmp_path, model_path):
    model = load_checkpoint(model_path).model
    image = _dark(0, 300)
    path = write_geotiff(tmp_path / "ortho.tif", image, 0.3)
    windows = raster_samples(path, model, tile=64, pixels=4 * 64 * 64)
    assert len(windows) == 4
    assert all(w.image.shape == (64, 64, 3) for w in windows)
    assert windows[0].image.tobytes() == image[:64, :64].tobytes()
    assert windows[-1].image.tobytes() == image[-64:, -64:].tobytes()
    assert windows[0].ground_resolution == pytest.approx(30.0)
    # a raster whose left half is no data: only the right half's windows are taken
    with rasterio.open(path, "r+") as dst:
        dst.nodata = 0
        data = dst.read()
        data[:, :, :150] = 0
        dst.write(data)
    kept = raster_samples(path, model, tile=64, pixels=4 * 64 * 64)
    right = [image[:64, -64:].tobytes(), image[-64:, -64:].tobytes()]
    assert [w.image.tobytes() for w in kept] == right


def test_adapted_model_changes_the_statistics_not_the_model_given(model_path):
    model = load_checkpoint(model_path).model
    before = batch_norm_layers(model)[0].running_mean.clone()
    copy = adapted_model(model, [ImagerySample(_dark(1)), ImagerySample(_dark(2))], device="cpu")
    assert torch.equal(batch_norm_layers(model)[0].running_mean, before)
    mean = batch_norm_layers(copy)[0].running_mean
    assert not torch.allclose(mean, before)
    with pytest.raises(ConfigError, match="no imagery to adapt"):
        adapted_model(model, [])


def test_evaluate_and_predict_with_adapt(tmp_path, capsys, model_path):
    data = write_dataset(tmp_path / "ds", n_train=1, n_test=3)
    plain = evaluate(data, model_path, device="cpu")
    adapted = evaluate(data, model_path, device="cpu", adapt=True)
    assert adapted.adapted and not plain.adapted
    assert adapted.loss != pytest.approx(plain.loss)
    assert (
        main(["evaluate", "--data", str(data), "--model", str(model_path), "--adapt", "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["adapted"] is True

    ortho = write_geotiff(tmp_path / "in" / "ortho.tif", _dark(3, 200), 0.3)
    picture = tmp_path / "in" / "picture.png"
    Image.fromarray(_dark(4, 96)).save(picture)
    results = predict_files(
        model_path, [ortho, picture], tmp_path / "out", device="cpu", adapt=True
    )
    assert {r.mask_path.name for r in results} == {"ortho.tif", "picture.png"}
    with pytest.raises(ConfigError, match="torch engine only"):
        predict_files(model_path, [picture], tmp_path / "out2", engine="onnxruntime", adapt=True)
    assert not (tmp_path / "out2").exists()
