"""Optimiser parameter groups: new layers at a learning-rate multiple (10x in the paper, CVPR 2019 3.4)."""

from __future__ import annotations

from typing import Any

from ranklist.models.embedding_model import EmbeddingModel


def parameter_groups(
    model: EmbeddingModel, *, lr: float, new_layer_lr_mult: float = 10.0, weight_decay: float = 0.0
) -> list[dict[str, Any]]:
    """Backbone parameters at lr, heads at lr * new_layer_lr_mult.

    Weight decay applies to conv/linear weights only: BN scales/shifts and biases are left
    undecayed (decaying BN scales only shrinks them against the next layer's weights).
    Groups are named "backbone", "backbone_no_decay", "heads", "heads_no_decay"; empty ones are left out.
    """
    if lr <= 0 or new_layer_lr_mult <= 0 or weight_decay < 0:
        raise ValueError(
            f"need lr > 0, new_layer_lr_mult > 0, weight_decay >= 0; got {lr}, {new_layer_lr_mult}, {weight_decay}")
    groups = []
    for name, module, group_lr in (("backbone", model.backbone, lr), ("heads", model.heads, lr * new_layer_lr_mult)):
        params = [p for p in module.parameters() if p.requires_grad]
        groups.append({"name": name, "params": [p for p in params if p.dim() > 1],
                       "lr": group_lr, "weight_decay": weight_decay})
        groups.append({"name": f"{name}_no_decay", "params": [p for p in params if p.dim() <= 1],
                       "lr": group_lr, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]
