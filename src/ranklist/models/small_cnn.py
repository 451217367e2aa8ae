"""A small three-stage CNN for quick CPU runs and tests (no pretrained weights).

A stride-2 stem and three stride-2 stages put the taps at strides 4, 8 and 16, so the low head's
5x5/3-pooled grid (hence its first FC) stays small at the 32-64 px sizes it is meant for.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn_relu(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(*_conv_bn_relu(cin, cout, 2), *_conv_bn_relu(cout, cout, 1))


class SmallCNN(nn.Module):
    """Stem + three stages returning {"L", "M", "H"} feature maps (strides 4, 8, 16)."""

    normalization = "imagenet"
    default_image_size = 32
    tap_channels = {"L": 32, "M": 64, "H": 128}

    def __init__(self, pretrained: bool = False) -> None:
        super().__init__()
        if pretrained:
            raise ValueError("small_cnn has no pretrained weights; use pretrained=false")
        self.stem = nn.Sequential(*_conv_bn_relu(3, 16, 2))
        self.low, self.mid, self.high = _stage(16, 32), _stage(32, 64), _stage(64, 128)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        low = self.low(self.stem(x))
        mid = self.mid(low)
        return {"L": low, "M": mid, "H": self.high(mid)}
