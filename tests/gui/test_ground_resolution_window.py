"""The window predicts an image at the model's ground resolution, as the command line does."""

from __future__ import annotations

import numpy as np

from core.checkpoint import load_checkpoint
from core.dataset import open_dataset
from core.predict import predict_probabilities
from rooftop_gui.main_window import MainWindow
from rooftop_gui.settings import make_settings
from tests.factories import save_untrained_model, write_geotiff, write_geotiff_dataset


def test_the_current_image_is_predicted_at_the_models_resolution(qtbot, tmp_path, messages):
    data = write_geotiff_dataset(tmp_path / "ds", [0.3, 0.3])
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (96, 80, 3), dtype=np.uint8)
    write_geotiff(data / "test" / "data" / "coarse.tif", image, 0.9)
    model_path = save_untrained_model(
        tmp_path, "liteunet", {"resolution_cm": 30.0}, width=8, depth=2
    )
    model = load_checkpoint(model_path).model
    expected = predict_probabilities(model, image, ground_resolution=90.0)
    as_it_is = predict_probabilities(model, image)
    assert not np.allclose(expected, as_it_is, atol=1e-3)  # the resampling shows

    win = MainWindow(settings=make_settings())
    qtbot.addWidget(win)
    win.open_dataset(data)
    assert win.prediction.set_model(model_path)
    win.browser.select("test", "coarse.tif")
    with qtbot.waitSignal(win.prediction.prediction_shown, timeout=30_000):
        win.prediction.predict_image_action.trigger()
    assert win.prediction.wait(30_000)
    np.testing.assert_allclose(win.canvas.probability(), expected, atol=1e-5)
    assert not messages.calls

    # the live preview of a training run sees it the same way
    from rooftop_gui.active_learning import LiveWeights, predict_with_weights

    weights = LiveWeights(1, model.state_dict(), "liteunet", {"width": 8, "depth": 2}, "none", 30.0)
    sample = next(s for s in open_dataset(data).test if s.name == "coarse.tif")
    model.input_stretch = "none"
    plain = LiveWeights(1, model.state_dict(), "liteunet", {"width": 8, "depth": 2}, "none")
    np.testing.assert_allclose(
        predict_with_weights(plain, image, sample), predict_with_weights(plain, image), atol=0
    )
    preview = predict_with_weights(weights, image, sample)
    assert preview.shape == image.shape[:2]
    assert not np.allclose(preview, predict_with_weights(plain, image), atol=1e-3)
