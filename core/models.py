"""Model architectures.

Every model maps an ``(N, 3, H, W)`` float image in [0, 1] to ``(N, 1, H, W)`` roof *logits*;
probabilities are ``torch.sigmoid(logits)``. Each class has:

* ``arch``: its registry name (stored in checkpoints);
* ``size_multiple``: H and W must be multiples of it (prediction pads to it, then crops);
* ``bf16_on_cpu``: whether ``precision="auto"`` runs it in bfloat16 on a CPU with native
  bfloat16 (core.device.resolve_precision): measured faster for the U-Nets (1.3-1.7x in
  prediction, 1.6x in training), slower for the prescribed model, whose 16- and 32-channel
  convolutions lose more to the conversions than they gain;
* ``params()``: the constructor arguments, stored in checkpoints so that the model can be rebuilt
  from plain metadata, without unpickling code.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from core.errors import CheckpointError


class PixelClassifier(nn.Module):
    """The prescribed architecture of the original exercise, layer for layer (about 22.6 k weights).

    conv 3->16 k3 p1, ReLU; conv 16->16 k5 p2, ReLU; max-pool 2; conv 16->32 k3 p1, ReLU;
    transposed conv 32->32 k2; conv 32->16 k3; transposed conv 16->16 k3 stride 2, ReLU;
    conv 16->1 k2 p1; sigmoid.

    The final sigmoid is the one difference in *form*: ``forward`` returns the logits before it,
    and the sigmoid is applied by prediction (``probabilities``) or fused into the loss
    (``BCEWithLogits`` = sigmoid + BCE, computed stably). The function computed is identical.
    """

    arch = "prescribed"
    size_multiple = 2
    bf16_on_cpu = False

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(32, 32, kernel_size=2, stride=1),
            nn.Conv2d(32, 16, kernel_size=3),
            nn.ConvTranspose2d(16, 16, kernel_size=3, stride=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 1, kernel_size=2, padding=1),
        )
        self.final_activation = nn.Sigmoid()

    def params(self) -> dict[str, Any]:
        return {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(_conv_bn_relu(cin, cout), _conv_bn_relu(cout, cout))


class _ResidualBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1) shortcut, as in ResNet."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = (
            nn.Identity()
            if cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


def _encode_decode(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The U-Net pass shared by UNet and LiteUNet: stem, encoder levels, then decoder levels
    that upsample bilinearly and concatenate the skip of their level."""
    skips = [net.stem(x)]
    for down in net.down:
        skips.append(down(skips[-1]))
    y = skips.pop()
    for up in net.up:
        skip = skips.pop()
        y = nn.functional.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        y = up(torch.cat([y, skip], dim=1))
    return y


class UNet(nn.Module):
    """A compact U-Net: encoder/decoder with skip connections, batch norm, bilinear upsampling.

    ``width`` is the channel count of the first level (doubled at each of ``depth`` levels).
    ``residual=True`` uses residual blocks in the encoder (a "ResUNet").
    """

    arch = "unet"
    bf16_on_cpu = True

    def __init__(self, width: int = 16, depth: int = 4, residual: bool = False) -> None:
        super().__init__()
        if not 1 <= depth <= 6 or not 4 <= width <= 128:
            raise CheckpointError(f"unsupported U-Net shape (width {width}, depth {depth})")
        self.width, self.depth, self.residual = width, depth, residual
        self.size_multiple = 2**depth
        block = _ResidualBlock if residual else _DoubleConv
        chans = [width * 2**i for i in range(depth + 1)]
        self.stem = block(3, chans[0])
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), block(chans[i], chans[i + 1])) for i in range(depth)
        )
        self.up = nn.ModuleList(
            _DoubleConv(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(chans[0], 1, 1)

    def params(self) -> dict[str, Any]:
        return {"width": self.width, "depth": self.depth, "residual": self.residual}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(_encode_decode(self, x))


class ResUNet(UNet):
    """U-Net with a residual encoder (``UNet(residual=True)``), registered under its own name."""

    arch = "resunet"

    def __init__(self, width: int = 16, depth: int = 4, residual: bool = True) -> None:
        super().__init__(width=width, depth=depth, residual=True)


class _SeparableBlock(nn.Module):
    """Two depthwise-separable 3x3 conv-BN-ReLU layers (depthwise 3x3, then pointwise 1x1),
    with an identity (or 1x1) shortcut when ``residual``."""

    def __init__(self, cin: int, cout: int, residual: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, groups=cout, bias=False),
            nn.Conv2d(cout, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut: nn.Module | None = None
        if residual:
            self.shortcut = (
                nn.Identity()
                if cin == cout
                else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
            )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        return self.act(y)


def _plain_block(cin: int, cout: int, residual: bool) -> nn.Module:
    return _ResidualBlock(cin, cout) if residual else _DoubleConv(cin, cout)


class LiteUNet(nn.Module):
    """A U-Net sized for a CPU: most of the work happens at half resolution or less.

    * stem: a stride-2 3x3 conv-BN-ReLU (full resolution -> half), so no block runs at full size;
    * encoder: ``depth`` levels, each a stride-2 downsample (max-pool) and a block; channels
      ``width * 2**level``; blocks are two conv-BN-ReLU layers, depthwise-separable when
      ``separable``, with identity shortcuts when ``residual`` (a residual encoder);
    * decoder: bilinear upsampling, concatenation with the skip, one block per level;
    * head: the half-resolution features are upsampled bilinearly to full resolution,
      concatenated with the input image, and refined by one 3x3 conv-BN-ReLU (``width // 2``
      channels) and a 1x1 conv to the logits, so edges follow the full-resolution image.
    """

    arch = "liteunet"
    bf16_on_cpu = True

    def __init__(
        self, width: int = 8, depth: int = 4, residual: bool = False, separable: bool = False
    ) -> None:
        super().__init__()
        if not 1 <= depth <= 5 or not 4 <= width <= 128:
            raise CheckpointError(f"unsupported LiteUNet shape (width {width}, depth {depth})")
        self.width, self.depth = width, depth
        self.residual, self.separable = residual, separable
        self.size_multiple = 2 ** (depth + 1)

        def block(cin: int, cout: int, res: bool = residual) -> nn.Module:
            return _SeparableBlock(cin, cout, res) if separable else _plain_block(cin, cout, res)

        chans = [width * 2**i for i in range(depth + 1)]
        self.stem = nn.Sequential(
            nn.Conv2d(3, chans[0], 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(chans[0]),
            nn.ReLU(inplace=True),
            block(chans[0], chans[0]),
        )
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), block(chans[i], chans[i + 1])) for i in range(depth)
        )
        self.up = nn.ModuleList(
            block(chans[i + 1] + chans[i], chans[i], False) for i in reversed(range(depth))
        )
        refine = max(8, width // 2)
        self.refine = nn.Sequential(
            nn.Conv2d(chans[0] + 3, refine, 3, padding=1, bias=False),
            nn.BatchNorm2d(refine),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Conv2d(refine, 1, 1)

    def params(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "depth": self.depth,
            "residual": self.residual,
            "separable": self.separable,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _encode_decode(self, x)
        y = nn.functional.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(self.refine(torch.cat([y, x], dim=1)))


ARCHITECTURES: dict[str, type[nn.Module]] = {
    PixelClassifier.arch: PixelClassifier,
    UNet.arch: UNet,
    ResUNet.arch: ResUNet,
    LiteUNet.arch: LiteUNet,
}

# The names, help texts and the default (torch-free, for the window and ``--help``) are
# core.training.config.ARCHITECTURE_CHOICES and DEFAULT_ARCH; a test checks they match.


def build_model(arch: str, **params: Any) -> nn.Module:
    """Build an untrained model of a registered architecture."""
    try:
        cls = ARCHITECTURES[arch]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise CheckpointError(f"unknown architecture {arch!r} (known: {known})") from None
    try:
        return cls(**params)
    except TypeError as exc:
        raise CheckpointError(f"bad parameters for architecture {arch!r}: {exc}") from exc


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
