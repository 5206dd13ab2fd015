"""Property tests over the image reader and tiled prediction (patch generation has its own in
tests/core/test_dataset.py)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from core.errors import RooftopError
from core.io import read_image, read_mask
from core.predict import predict_probabilities

FAST = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FAST
@given(
    h=st.integers(1, 48),
    w=st.integers(1, 48),
    mode=st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F", "CMYK"]),
    fmt=st.sampled_from(["PNG", "TIFF", "JPEG", "BMP"]),
    seed=st.integers(0, 1000),
)
def test_reader_returns_rgb_uint8_and_bool_masks_or_a_clear_error(
    tmp_path_factory, h, w, mode, fmt, seed
):
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    if mode in ("I;16", "I", "F"):
        array = rng.integers(0, 65536, (h, w)).astype(
            {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
        )
        image = Image.fromarray(array)
    else:
        image = base.convert(mode)
    path = tmp_path_factory.mktemp("img") / f"x.{fmt.lower()}"
    try:
        image.save(path, format=fmt)
    except (OSError, ValueError, KeyError):
        return  # Pillow cannot write this mode in this format; nothing to read
    try:
        rgb = read_image(path)
        mask = read_mask(path)
    except RooftopError as exc:  # allowed: a clear error naming the file
        assert path.name in str(exc)
        return
    assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
    assert mask.shape == (h, w) and mask.dtype == bool


class PixelwiseModel(torch.nn.Module):
    """A 1x1 convolution: every output pixel depends on its own input pixel only, so a correct
    tiling must reproduce ``sigmoid(conv(pixel))`` exactly at every pixel."""

    size_multiple = 1

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[[[4.0]], [[-3.0]], [[2.0]]]]))
            self.conv.bias.fill_(-1.0)

    def forward(self, x):
        return self.conv(x)


@FAST
@given(
    h=st.integers(1, 260),
    w=st.integers(1, 260),
    tile=st.sampled_from([32, 48, 64, 96]),
    overlap_half=st.integers(0, 16),
    seed=st.integers(0, 100),
)
def test_tiling_covers_every_pixel_exactly(h, w, tile, overlap_half, seed):
    overlap = min(2 * overlap_half, tile // 2)
    overlap -= overlap % 2
    model = PixelwiseModel().eval()
    image = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    prob = predict_probabilities(
        model, image, tile=tile, overlap=overlap, batch_size=3, precision="fp32"
    )
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        expected = torch.sigmoid(model(x))[0, 0].numpy()
    assert prob.shape == (h, w)
    np.testing.assert_allclose(prob, expected, atol=1e-5)
