"""BN-Inception (GoogLeNet V2; Ioffe & Szegedy 2015), the paper's backbone, with L/M/H taps.

Layer names, shapes and pooling follow the converted ImageNet weights that PyTorch DML code bases
use (the `bninception` state dict of Cadene's pretrained-models), so that file loads as it is:
flat names such as `inception_3a_1x1.weight`, `inception_3a_1x1_bn.running_mean`, convolutions with
biases. Input: BGR, 0-255, mean (104, 117, 128) subtracted (normalisation "bn_inception").
Taps (docs/models.md): L = inception-3c output (576 ch), M = inception-4e (1056), H = inception-5b (1024).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# (name, input channels, 1x1, 3x3 reduce, 3x3, double 3x3 reduce, double 3x3, pool, pool proj)
# from the BN-Inception paper's Table 1 as converted; stride-2 modules (3c, 4e) have no 1x1 and
# no projection: their max-pooled input is concatenated as it is.
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
# Classifier of the converted ImageNet model; not built here, ignored when loading.
CLASSIFIER_PREFIXES = ("last_linear.", "fc.")


class BNInception(nn.Module):
    """BN-Inception trunk returning {"L", "M", "H"} feature maps (the classifier is not built).

    Every layer is registered flat on this module under its converted name; `_plan` lists, per
    inception module, the names of each branch's conv units in order.
    """

    normalization = "bn_inception"
    default_image_size = 227
    tap_channels = {"L": 576, "M": 1056, "H": 1024}

    def __init__(self) -> None:
        super().__init__()
        self._conv_bn("conv1_7x7_s2", 3, 64, 7, 2)
        self.pool1_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self._conv_bn("conv2_3x3_reduce", 64, 64, 1)
        self._conv_bn("conv2_3x3", 64, 192, 3)
        self.pool2_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self._plan: list[tuple[str, list[list[str]], str | None]] = []
        for name, cin, c1, r3, c3, rd, d, pool, proj in INCEPTION_TABLE:
            p = f"inception_{name}"
            stride = 1 if c1 else 2  # the modules without a 1x1 branch halve the map
            branches = [
                [self._conv_bn(f"{p}_3x3_reduce", cin, r3, 1), self._conv_bn(f"{p}_3x3", r3, c3, 3, stride)],
                [
                    self._conv_bn(f"{p}_double_3x3_reduce", cin, rd, 1),
                    self._conv_bn(f"{p}_double_3x3_1", rd, d, 3),
                    self._conv_bn(f"{p}_double_3x3_2", d, d, 3, stride),
                ],
            ]
            if c1:
                branches.insert(0, [self._conv_bn(f"{p}_1x1", cin, c1, 1)])
            if pool == "max":
                self.add_module(
                    f"{p}_pool", nn.MaxPool2d(3, stride=stride, padding=1 if stride == 1 else 0, ceil_mode=True)
                )
            else:
                self.add_module(
                    f"{p}_pool", nn.AvgPool2d(3, stride=1, padding=1, ceil_mode=True, count_include_pad=True)
                )
            self._plan.append((name, branches, self._conv_bn(f"{p}_pool_proj", cin, proj, 1) if proj else None))

    def _conv_bn(self, name: str, cin: int, cout: int, kernel: int, stride: int = 1) -> str:
        """Register conv `name` (with bias, as converted) and BN `name_bn`; return the name."""
        self.add_module(name, nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2))
        self.add_module(f"{name}_bn", nn.BatchNorm2d(cout))
        return name

    def _unit(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self._modules[f"{name}_bn"](self._modules[name](x)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.pool1_3x3_s2(self._unit("conv1_7x7_s2", x))
        x = self.pool2_3x3_s2(self._unit("conv2_3x3", self._unit("conv2_3x3_reduce", x)))
        taps = {}
        for name, branches, proj in self._plan:
            outs = []
            for branch in branches:
                y = x
                for unit in branch:
                    y = self._unit(unit, y)
                outs.append(y)
            pooled = self._modules[f"inception_{name}_pool"](x)
            outs.append(self._unit(proj, pooled) if proj else pooled)
            x = torch.cat(outs, dim=1)
            if name in TAPS:
                taps[TAPS[name]] = x
        return taps


def load_bn_inception_weights(model: BNInception, path: str | Path) -> None:
    """Load a converted `bninception` ImageNet state dict strictly (its classifier is ignored).

    Raises FileNotFoundError for a missing file and ValueError naming the file and every key that
    did not fit (missing, unexpected, wrong shape); the model is untouched on failure.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BN-Inception weights not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle/zip errors of a corrupt or foreign file
        raise ValueError(f"cannot read BN-Inception weights from {path}: {error}") from error
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} is not a state dict (a mapping of names to tensors): {type(state).__name__}")
    state = {k: v for k, v in state.items() if not k.startswith(CLASSIFIER_PREFIXES)}
    own = model.state_dict()
    # num_batches_tracked is PyTorch bookkeeping the converted file predates.
    missing = sorted(k for k in set(own) - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if own[k].shape != state[k].shape
    )
    if missing or unexpected or wrong:
        details = [
            f"{label} ({len(keys)}): {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        ]
        raise ValueError(f"{path} does not fit BN-Inception: " + "; ".join(details))
    model.load_state_dict(state, strict=False)
