"""BN-Inception (GoogLeNet V2; Ioffe & Szegedy 2015), the paper's backbone, with L/M/H taps.

Layer names, shapes and pooling follow the converted ImageNet weights that PyTorch DML code bases
use (the `bninception` state dict of Cadene's pretrained-models), so that file loads as it is:
flat names such as `inception_3a_1x1.weight`, `inception_3a_1x1_bn.running_mean`, convolutions with
biases. Input: BGR, 0-255, mean (104, 117, 128) subtracted (normalisation "bn_inception").
Taps (SPEC section 4): L = inception-3c output (576 ch), M = inception-4e (1056), H = inception-5b (1024).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# (name, input channels, 1x1, 3x3 reduce, 3x3, double 3x3 reduce, double 3x3, pool, pool proj)
# from the BN-Inception paper's Table 1; stride-2 modules (3c, 4e) have no 1x1 and no projection.
INCEPTION_TABLE = [
    ("3a", 192, 64, 64, 64, 64, 96, "avg", 32),
    ("3b", 256, 64, 64, 96, 64, 96, "avg", 64),
    ("3c", 320, 0, 128, 160, 64, 96, "max", 0),
    ("4a", 576, 224, 64, 96, 96, 128, "avg", 128),
    ("4b", 576, 192, 96, 128, 96, 128, "avg", 128),
    ("4c", 576, 160, 128, 160, 128, 160, "avg", 128),
    ("4d", 608, 96, 128, 192, 160, 192, "avg", 128),
    ("4e", 608, 0, 128, 192, 192, 256, "max", 0),
    ("5a", 1056, 352, 192, 320, 160, 224, "avg", 128),
    ("5b", 1024, 352, 192, 320, 192, 224, "max", 128),
]
TAPS = {"3c": "L", "4e": "M", "5b": "H"}
TAP_CHANNELS = {"L": 576, "M": 1056, "H": 1024}


class _ConvBN(nn.Module):
    """conv (with bias, as converted) -> BN -> ReLU; registered under the converted names."""

    def __init__(self, owner: nn.Module, name: str, cin: int, cout: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)
        self.bn = nn.BatchNorm2d(cout)
        owner.add_module(name, self.conv)
        owner.add_module(f"{name}_bn", self.bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class _Inception(nn.Module):
    def __init__(self, owner: nn.Module, row: tuple) -> None:
        super().__init__()
        name, cin, c1, r3, c3, rd, d, pool, proj = row
        self.reduction = c1 == 0  # 3c / 4e: stride-2 module
        stride = 2 if self.reduction else 1
        p = f"inception_{name}"
        # Branch modules live on `owner` (flat state-dict names); keep plain references here.
        self.__dict__["branches"] = [
            [_ConvBN(owner, f"{p}_3x3_reduce", cin, r3, 1), _ConvBN(owner, f"{p}_3x3", r3, c3, 3, stride)],
            [
                _ConvBN(owner, f"{p}_double_3x3_reduce", cin, rd, 1),
                _ConvBN(owner, f"{p}_double_3x3_1", rd, d, 3),
                _ConvBN(owner, f"{p}_double_3x3_2", d, d, 3, stride),
            ],
        ]
        if not self.reduction:
            self.branches.insert(0, [_ConvBN(owner, f"{p}_1x1", cin, c1, 1)])
        if pool == "max":
            self.pool = nn.MaxPool2d(3, stride=stride, padding=0 if self.reduction else 1, ceil_mode=True)
        else:
            self.pool = nn.AvgPool2d(3, stride=1, padding=1, ceil_mode=True, count_include_pad=True)
        self.__dict__["proj"] = _ConvBN(owner, f"{p}_pool_proj", cin, proj, 1) if proj else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for branch in self.branches:
            y = x
            for layer in branch:
                y = layer(y)
            outs.append(y)
        pooled = self.pool(x)
        outs.append(self.proj(pooled) if self.proj is not None else pooled)
        return torch.cat(outs, dim=1)


class BNInception(nn.Module):
    """BN-Inception trunk returning {"L", "M", "H"} feature maps (the classifier is not built)."""

    normalization = "bn_inception"
    default_image_size = 227
    tap_channels = TAP_CHANNELS

    def __init__(self) -> None:
        super().__init__()
        self.__dict__["stem"] = [
            _ConvBN(self, "conv1_7x7_s2", 3, 64, 7, 2),
            nn.MaxPool2d(3, stride=2, ceil_mode=True),
            _ConvBN(self, "conv2_3x3_reduce", 64, 64, 1),
            _ConvBN(self, "conv2_3x3", 64, 192, 3),
            nn.MaxPool2d(3, stride=2, ceil_mode=True),
        ]
        self.__dict__["inceptions"] = [(row[0], _Inception(self, row)) for row in INCEPTION_TABLE]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        for layer in self.stem:
            x = layer(x)
        taps = {}
        for name, module in self.inceptions:
            x = module(x)
            if name in TAPS:
                taps[TAPS[name]] = x
        return taps


def load_bn_inception_weights(model: BNInception, path: str | Path) -> None:
    """Load a converted `bninception` ImageNet state dict strictly (its classifier is ignored).

    Raises ValueError naming the file and every key that did not fit (missing, unexpected,
    wrong shape).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BN-Inception weights not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle/zip errors of a corrupt file
        raise ValueError(f"cannot read BN-Inception weights from {path}: {error}") from error
    state = {k: v for k, v in state.items() if not k.startswith(("last_linear.", "fc."))}
    own = model.state_dict()
    missing = sorted(set(own) - set(state) - {k for k in own if k.endswith("num_batches_tracked")})
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        details = [f"{label} ({len(keys)}): {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
                   for label, keys in (("missing", missing), ("unexpected", unexpected),
                                       ("wrong shape", wrong)) if keys]
        raise ValueError(f"{path} is not a BN-Inception state dict: " + "; ".join(details))
    model.load_state_dict(state, strict=False)
