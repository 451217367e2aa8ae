"""A small three-stage CNN for quick CPU runs and tests (no pretrained weights)."""

from __future__ import annotations

import torch
from torch import nn


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class SmallCNN(nn.Module):
    normalization = "imagenet"
    default_image_size = 32
    tap_channels = {"L": 32, "M": 64, "H": 128}

    def __init__(self, pretrained: bool = False) -> None:
        super().__init__()
        if pretrained:
            raise ValueError("small_cnn has no pretrained weights; use pretrained=false")
        self.low, self.mid, self.high = _stage(3, 32), _stage(32, 64), _stage(64, 128)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        low = self.low(x)
        mid = self.mid(low)
        return {"L": low, "M": mid, "H": self.high(mid)}
