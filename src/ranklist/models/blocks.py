"""Backbone depth: which block each parameter belongs to (layer-wise lr decay, freezing the first blocks).

A backbone that supports these lists its blocks in forward order with `layer_blocks()`. A parameter
inside block i has depth i + 1; one outside every block takes the depth of the last block registered
before it, 0 before the first: the stem / patch embedding is depth 0, a downsampling layer between
two stages belongs with the block before it, and a final norm or head conv has the last block's depth.
"""

from __future__ import annotations

from torch import nn


def has_layer_blocks(backbone: nn.Module) -> bool:
    """Whether the backbone exposes `layer_blocks()` (what freezing and layer decay walk)."""
    return callable(getattr(backbone, "layer_blocks", None))


def parameter_depths(backbone: nn.Module) -> dict[str, int]:
    """Parameter name (as in backbone.named_parameters()) -> depth in [0, len(layer_blocks())]."""
    if not has_layer_blocks(backbone):
        raise ValueError(
            f"backbone {type(backbone).__name__} does not list its blocks (layer_blocks): "
            "layer-wise lr decay and freeze_blocks need them"
        )
    owner = {id(p): index + 1 for index, block in enumerate(backbone.layer_blocks()) for p in block.parameters()}
    depths, current = {}, 0
    for name, param in backbone.named_parameters():
        current = owner.get(id(param), current)
        depths[name] = current
    return depths


def num_layer_blocks(backbone: nn.Module) -> int:
    """How many layer blocks the backbone has (0 without `layer_blocks()`)."""
    return len(backbone.layer_blocks()) if has_layer_blocks(backbone) else 0
