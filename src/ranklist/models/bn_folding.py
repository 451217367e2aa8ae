"""Batch norms in eval mode folded into the convolution before them.

A BatchNorm2d in eval mode (evaluation, frozen blocks, `model.freeze_bn`) is a per-channel affine
map, y = s * (x - mean) + beta with s = gamma / sqrt(var + eps). After a bias-free convolution it
can act on the convolution's weight and bias instead: conv(x, w * s) + (beta - mean * s). That is
the same function, and autograd carries the gradients to w, gamma and beta through the fold. What
disappears is the norm's own pass over the activations, forward and backward. In training mode the
norm normalises with batch statistics and nothing is folded. Modules, parameters and state dicts
stay as they are.
"""

from __future__ import annotations

import torch
from torch import nn


class FoldedBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm2d whose convolution applies it while it is in eval mode (it then passes x through)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) if self.training else x


def fold_into(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    """Let `conv` (bias-free, a class with `folded_weight_bias`) apply `norm` whenever norm is in eval mode."""
    if (
        conv.bias is not None
        or norm.num_features != conv.out_channels
        or not norm.affine
        or not norm.track_running_stats
    ):
        raise ValueError(
            f"cannot fold {norm} into {conv}: needs a bias-free convolution and an affine norm with running statistics"
        )
    norm.__class__ = FoldedBatchNorm2d
    object.__setattr__(conv, "folded_norm", norm)  # a reference, not a submodule: the state dict is unchanged


def folded_weight_bias(conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The weight and bias `conv` computes with: its own, or with its eval-mode norm folded in."""
    norm = getattr(conv, "folded_norm", None)
    if norm is None or norm.training:
        return conv.weight, conv.bias
    scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
    return conv.weight * scale.view(-1, *([1] * (conv.weight.dim() - 1))), norm.bias - norm.running_mean * scale
