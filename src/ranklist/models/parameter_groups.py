"""Optimiser parameter groups: new layers at a learning-rate multiple (10x in the paper, section 4.1),
optionally with layer-wise learning-rate decay through the backbone (the ViT fine-tuning recipe of
BEiT, Bao et al. ICLR 2022, used by DINOv2-era fine-tuning)."""

from __future__ import annotations

from typing import Any

from torch import nn

from ranklist.models.blocks import parameter_depths
from ranklist.models.embedding_model import EmbeddingModel


def _decay_split(name: str, params: list[nn.Parameter], lr: float, weight_decay: float) -> list[dict[str, Any]]:
    return [
        {"name": name, "params": [p for p in params if p.dim() > 1], "lr": lr, "weight_decay": weight_decay},
        {"name": f"{name}_no_decay", "params": [p for p in params if p.dim() <= 1], "lr": lr, "weight_decay": 0.0},
    ]


def _backbone_groups(backbone: nn.Module, lr: float, layer_decay: float, weight_decay: float) -> list[dict[str, Any]]:
    """One group pair per depth d at lr * layer_decay ** (N - d): the last block (and the final norm)
    at lr, each block below it `layer_decay` times slower, the stem/patch embedding (depth 0) slowest."""
    trainable = {name: p for name, p in backbone.named_parameters() if p.requires_grad}
    if layer_decay == 1.0:
        return _decay_split("backbone", list(trainable.values()), lr, weight_decay)
    depths = parameter_depths(backbone)
    top = max(depths.values(), default=0)
    groups = []
    for depth in range(top + 1):
        params = [p for name, p in trainable.items() if depths[name] == depth]
        groups += _decay_split(f"backbone_{depth}", params, lr * layer_decay ** (top - depth), weight_decay)
    return groups


def parameter_groups(
    model: EmbeddingModel,
    *,
    lr: float,
    new_layer_lr_mult: float = 10.0,
    weight_decay: float = 0.0,
    layer_decay: float = 1.0,
) -> list[dict[str, Any]]:
    """Backbone parameters at lr (with layer_decay < 1: lr * layer_decay ** (N - depth), N the
    backbone's block count, see models/blocks.py), heads at lr * new_layer_lr_mult.

    Weight decay applies to conv/linear weights only: BN scales/shifts and biases are left
    undecayed (decaying BN scales only shrinks them against the next layer's weights).
    Groups are named "backbone", "backbone_no_decay", "heads", "heads_no_decay" (with layer decay:
    "backbone_<depth>" and "backbone_<depth>_no_decay"); empty ones are left out.
    """
    if lr <= 0 or new_layer_lr_mult <= 0 or weight_decay < 0:
        raise ValueError(
            f"need lr > 0, new_layer_lr_mult > 0, weight_decay >= 0; got {lr}, {new_layer_lr_mult}, {weight_decay}"
        )
    if not 0 < layer_decay <= 1:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}")
    groups = _backbone_groups(model.backbone, lr, layer_decay, weight_decay)
    heads = [p for p in model.heads.parameters() if p.requires_grad]
    groups += _decay_split("heads", heads, lr * new_layer_lr_mult, weight_decay)
    return [g for g in groups if g["params"]]
