"""Tiled prediction: no seams, edges covered, equal to a whole-image pass away from the borders."""

import numpy as np
import pytest
import torch

from core.dataset import Sample
from core.errors import ConfigError, ImageReadError
from core.image_collection import collect_inputs, find_label_for
from core.models import build_model
from core.predict import predict_probabilities, predict_samples, predict_whole
from core.progress import Progress, Stopped
from core.windows import plan_tiles


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (300, 420, 3), dtype=np.uint8)


def _model(arch, **params):
    torch.manual_seed(0)
    model = build_model(arch, **params).eval()
    if arch == "prescribed":  # random weights give near-constant output; sharpen them
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(3.0)
    return model


def test_tiled_equals_whole_image_for_the_prescribed_model(image):
    model = _model("prescribed")
    whole = predict_whole(model, image, precision="fp32")
    # the prescribed model's receptive-field radius is 13 px, under overlap / 4 = 16
    tiled = predict_probabilities(model, image, tile=128, overlap=64, precision="fp32")
    assert tiled.shape == image.shape[:2] and tiled.dtype == np.float32
    # at the image's own right/bottom border the tiles see reflected context where the single pass
    # sees zero padding, so compare one receptive field away from the borders
    np.testing.assert_allclose(tiled[16:-16, 16:-16], whole[16:-16, 16:-16], atol=1e-5)


def test_tiled_unet_is_close_to_whole_image_away_from_borders(image):
    model = _model("unet", width=8, depth=2)
    whole = predict_whole(model, image)
    tiled = predict_probabilities(model, image, tile=128, overlap=48)
    assert np.abs(tiled - whole).max() < 0.05


def test_edges_are_covered_for_sizes_that_do_not_fit_the_tile():
    model = _model("prescribed")
    for shape in [(130, 257), (64, 64), (33, 200), (517, 70)]:
        img = np.full((*shape, 3), 200, np.uint8)
        prob = predict_probabilities(model, img, tile=96, overlap=48, precision="fp32")
        assert prob.shape == shape
        assert np.isfinite(prob).all()
        # a constant image: the prescribed model's output is periodic (period 2, from its stride-2
        # transposed conv); tiling must keep that pattern exactly, with no seam anywhere inside
        whole = predict_whole(model, img, precision="fp32")
        np.testing.assert_allclose(prob[16:-16, 16:-16], whole[16:-16, 16:-16], atol=1e-5)


@pytest.mark.parametrize("arch,params", [("prescribed", {}), ("liteunet", {})])
def test_bfloat16_prediction_stays_close_to_float32(image, arch, params):
    # bf16 is what `auto` picks on CPUs with native bfloat16; forced here so that every machine
    # runs it (emulated where the CPU lacks it)
    model = _model(arch, **params)
    exact = predict_probabilities(model, image, tile=128, overlap=32, precision="fp32")
    mixed = predict_probabilities(model, image, tile=128, overlap=32, precision="bf16")
    assert mixed.dtype == np.float32 and mixed.shape == exact.shape
    assert np.abs(mixed - exact).max() < 0.03
    assert np.abs(mixed - exact).mean() < 0.003
    assert ((mixed > 0.5) == (exact > 0.5)).mean() > 0.99


def test_unknown_precision_is_a_clear_error(image):
    with pytest.raises(ConfigError, match="precision"):
        predict_probabilities(_model("prescribed"), image, precision="fp16")


def test_tiny_images_predict_in_one_pass():
    model = _model("unet", width=8, depth=3)
    img = np.random.default_rng(1).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    assert predict_probabilities(model, img, tile=64, overlap=16).shape == (17, 23)


def test_tta_gives_a_valid_probability_map(image):
    model = _model("prescribed")
    prob = predict_probabilities(model, image[:96, :96], tile=64, overlap=16, tta=True)
    assert prob.shape == (96, 96) and (prob >= 0).all() and (prob <= 1).all()


@pytest.mark.parametrize("tile,overlap", [(16, 0), (100, 10), (128, 66), (128, -2), (128, 7)])
def test_bad_tiling_is_a_clear_error(tile, overlap):
    with pytest.raises(ConfigError):
        predict_probabilities(
            _model("unet", width=8, depth=3),
            np.zeros((200, 200, 3), np.uint8),
            tile=tile,
            overlap=overlap,
        )


def test_collect_inputs(tmp_path):
    from PIL import Image

    (tmp_path / "d").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "d" / "b.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "d" / "a.jpg")
    (tmp_path / "d" / "notes.txt").write_text("x")
    assert [p.name for p in collect_inputs([tmp_path / "d"])] == ["a.jpg", "b.png"]
    with pytest.raises(ImageReadError, match="not found"):
        collect_inputs([tmp_path / "missing.png"])
    with pytest.raises(ImageReadError, match="not an image"):
        collect_inputs([tmp_path / "d" / "notes.txt"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageReadError, match="no images"):
        collect_inputs([tmp_path / "empty"])


def test_find_label_for_dataset_layout(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "label").mkdir()
    (tmp_path / "data" / "00001.png").touch()
    (tmp_path / "label" / "00001.png").touch()
    (tmp_path / "x.png").touch()
    (tmp_path / "x_mask.png").touch()
    assert find_label_for(tmp_path / "data" / "00001.png") == tmp_path / "label" / "00001.png"
    assert find_label_for(tmp_path / "x.png") == tmp_path / "x_mask.png"
    assert find_label_for(tmp_path / "label" / "00001.png") is None
    (tmp_path / "image.png").touch()
    (tmp_path / "labels.png").touch()
    assert find_label_for(tmp_path / "image.png") == tmp_path / "labels.png"


def test_tiles_are_reported_as_progress_and_a_stop_is_stopped(image):
    model = _model("prescribed")
    events = []
    predict_probabilities(
        model,
        image,
        tile=128,
        overlap=32,
        batch_size=2,
        precision="fp32",
        on_progress=events.append,
    )
    plan = plan_tiles(300, 420, 128, 96)
    tiles = len(plan)
    assert all(isinstance(e, Progress) and e.unit == "tiles" and e.total == tiles for e in events)
    # one event per batch of at most 2 tiles, batches cut within each row of tiles
    per_row = [min(2, len(plan.xs) - start) for start in range(0, len(plan.xs), 2)]
    expected = np.cumsum(per_row * len(plan.ys)).tolist()
    assert [e.done for e in events] == expected and expected[-1] == tiles
    with pytest.raises(Stopped, match="prediction stopped"):
        predict_probabilities(model, image, tile=128, overlap=32, should_stop=lambda: True)


def _samples(tmp_path, count=3, broken=1):
    from PIL import Image

    rng = np.random.default_rng(2)
    (tmp_path / "data").mkdir()
    (tmp_path / "label").mkdir()
    samples = []
    for i in range(count):
        path = tmp_path / "data" / f"{i:05d}.png"
        label = tmp_path / "label" / path.name
        if i == broken:
            path.write_text("not a picture")
        else:
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)
        Image.fromarray(np.zeros((40, 48), np.uint8)).save(label)
        samples.append(Sample(path.name, "test", path, label))
    return samples


def test_predict_samples_yields_one_result_per_image_and_carries_on(tmp_path):
    model = _model("prescribed")
    samples = _samples(tmp_path)
    events = []
    results = list(predict_samples(model, samples, precision="fp32", on_progress=events.append))
    assert [r.sample for r in results] == samples
    assert results[1].prob is None and isinstance(results[1].error, ImageReadError)
    assert "00001.png" in str(results[1].error)
    for r in (results[0], results[2]):
        assert r.error is None and r.label is None
        from core.io import read_image

        expected = predict_probabilities(model, read_image(r.sample.image_path), precision="fp32")
        np.testing.assert_array_equal(r.prob, expected)
    assert [(e.done, e.total, e.item) for e in events] == [
        (i + 1, 3, s.name) for i, s in enumerate(samples)
    ]
    with_labels = list(predict_samples(model, samples[:1], with_labels=True))
    assert with_labels[0].label.shape == (40, 48) and not with_labels[0].label.any()


def test_predict_samples_stops_and_checks_the_tiling_first(tmp_path):
    model = _model("prescribed")
    samples = _samples(tmp_path, broken=-1)
    calls = iter([False, True])
    got = []
    with pytest.raises(Stopped, match="evaluation stopped"):
        for result in predict_samples(
            model, samples, should_stop=lambda: next(calls, True), what="evaluation"
        ):
            got.append(result)
    assert len(got) == 1
    with pytest.raises(ConfigError, match="tile"):
        next(predict_samples(model, samples, tile=100))
