"""The prescribed architecture is exactly the original's; the stronger ones build and run."""

import pytest
import torch
from torch import nn

from core.errors import CheckpointError
from core.models import ARCHITECTURES, PixelClassifier, build_model, count_parameters


def test_prescribed_layer_list_is_the_originals():
    model = PixelClassifier()
    layers = list(model.layers)
    expected = [
        (
            nn.Conv2d,
            dict(in_channels=3, out_channels=16, kernel_size=(3, 3), padding=(1, 1), stride=(1, 1)),
        ),
        (nn.ReLU, {}),
        (
            nn.Conv2d,
            dict(
                in_channels=16, out_channels=16, kernel_size=(5, 5), padding=(2, 2), stride=(1, 1)
            ),
        ),
        (nn.ReLU, {}),
        (nn.MaxPool2d, dict(kernel_size=2, stride=2)),
        (
            nn.Conv2d,
            dict(
                in_channels=16, out_channels=32, kernel_size=(3, 3), padding=(1, 1), stride=(1, 1)
            ),
        ),
        (nn.ReLU, {}),
        (
            nn.ConvTranspose2d,
            dict(
                in_channels=32, out_channels=32, kernel_size=(2, 2), padding=(0, 0), stride=(1, 1)
            ),
        ),
        (
            nn.Conv2d,
            dict(
                in_channels=32, out_channels=16, kernel_size=(3, 3), padding=(0, 0), stride=(1, 1)
            ),
        ),
        (
            nn.ConvTranspose2d,
            dict(
                in_channels=16, out_channels=16, kernel_size=(3, 3), padding=(0, 0), stride=(2, 2)
            ),
        ),
        (nn.ReLU, {}),
        (
            nn.Conv2d,
            dict(in_channels=16, out_channels=1, kernel_size=(2, 2), padding=(1, 1), stride=(1, 1)),
        ),
    ]
    assert len(layers) == len(expected)
    for layer, (cls, attrs) in zip(layers, expected, strict=True):
        assert type(layer) is cls
        for name, value in attrs.items():
            assert getattr(layer, name) == value, (layer, name)
    assert isinstance(model.final_activation, nn.Sigmoid)
    assert count_parameters(model) == 22641  # "about 22.6 k parameters"


@pytest.mark.parametrize("shape", [(64, 64), (96, 128), (130, 62)])
def test_prescribed_output_shape_matches_input(shape):
    model = PixelClassifier().eval()
    x = torch.rand(2, 3, *shape)
    assert model(x).shape == (2, 1, *shape)


def test_sigmoid_of_logits_equals_the_originals_final_activation():
    model = PixelClassifier().eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.final_activation(model(x)), torch.sigmoid(model(x)))


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_maps_image_to_one_channel_logits(arch):
    model = build_model(arch).eval()
    size = 2 * model.size_multiple * 2
    with torch.no_grad():
        out = model(torch.rand(1, 3, size, size + model.size_multiple))
    assert out.shape == (1, 1, size, size + model.size_multiple)
    assert model.params() == build_model(arch, **model.params()).params()


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(CheckpointError, match="unknown architecture 'resnet9000'"):
        build_model("resnet9000")


def test_the_torch_free_architecture_names_match_the_registry():
    from core.training.config import ARCHITECTURES as NAMES
    from core.training.config import DEFAULT_ARCH

    assert set(NAMES) == set(ARCHITECTURES)
    assert DEFAULT_ARCH in ARCHITECTURES
