"""The multi-level embedding model (RLL-(L,M,H), SPEC section 4) and what goes with it.

    model = build_model("efficientnet_lite0", embedding_dim=128, levels=("L", "M", "H"))
    outputs = model(images)                      # {"L": [B, D], "M": ..., "H": ...}, raw
    emb = evaluation_embedding(outputs)          # concatenated, then L2-normalised as a whole
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ranklist.atomic import atomic_torch_save
from ranklist.models.bn_inception import BNInception, load_bn_inception_weights
from ranklist.models.efficientnet_lite import EfficientNetLite0
from ranklist.models.heads import HighHead, LowMidHead, paper_pool_grid
from ranklist.models.small_cnn import SmallCNN

LEVELS = ("L", "M", "H")


def _bn_inception(pretrained: bool | str) -> nn.Module:
    model = BNInception()
    if pretrained is True:
        raise ValueError(
            "BN-Inception ImageNet weights cannot be downloaded here: give the path of a converted "
            "`bninception` state dict as model.pretrained (or pretrained=false)"
        )
    if pretrained:
        load_bn_inception_weights(model, pretrained)
    return model


def _no_path(name: str, constructor: Callable[[bool], nn.Module]) -> Callable[[bool | str], nn.Module]:
    def build(pretrained: bool | str) -> nn.Module:
        if isinstance(pretrained, str):
            raise ValueError(f"{name} takes pretrained=true/false, not a path ({pretrained!r})")
        return constructor(pretrained)

    return build


BACKBONES: dict[str, Callable[[bool | str], nn.Module]] = {
    "bn_inception": _bn_inception,
    "efficientnet_lite0": _no_path("efficientnet_lite0", lambda p: EfficientNetLite0(pretrained=p)),
    "small_cnn": _no_path("small_cnn", lambda p: SmallCNN(pretrained=p)),
}


def _levels(levels: Sequence[str]) -> tuple[str, ...]:
    levels = tuple(levels)
    unknown = [lvl for lvl in levels if lvl not in LEVELS]
    if not levels or unknown or len(set(levels)) != len(levels):
        raise ValueError(f"levels must be a non-empty subset of {LEVELS} without repeats, got {list(levels)}")
    return tuple(lvl for lvl in LEVELS if lvl in levels)  # canonical order


def _dims(embedding_dim: int | Mapping[str, int], levels: tuple[str, ...]) -> dict[str, int]:
    dims = {lvl: embedding_dim for lvl in levels} if isinstance(embedding_dim, int) else dict(embedding_dim)
    if set(dims) != set(levels) or any(int(d) < 1 for d in dims.values()):
        raise ValueError(f"embedding_dim must be a positive int or one per level {list(levels)}, got {embedding_dim}")
    return {lvl: int(dims[lvl]) for lvl in levels}


class EmbeddingModel(nn.Module):
    """A backbone with one embedding head per chosen level; forward returns raw embeddings."""

    def __init__(
        self, backbone: str, *, embedding_dim: int | Mapping[str, int] = 512,
        levels: Sequence[str] = LEVELS, pretrained: bool | str = True, freeze_bn: bool = False,
        image_size: int | None = None,
    ) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {sorted(BACKBONES)}")
        self.levels = _levels(levels)
        dims = _dims(embedding_dim, self.levels)
        self.backbone = BACKBONES[backbone](pretrained)
        self.normalization: str = self.backbone.normalization
        self.default_image_size = int(image_size or self.backbone.default_image_size)
        if self.default_image_size < 16:
            raise ValueError(f"image_size must be at least 16, got {self.default_image_size}")
        self.freeze_bn = bool(freeze_bn)
        self.config: dict[str, Any] = dict(
            backbone=backbone, embedding_dim=dims, levels=list(self.levels),
            pretrained=pretrained, freeze_bn=self.freeze_bn, image_size=self.default_image_size,
        )
        # Map sizes at the taps for this image size decide the low/mid heads' pooled grids.
        with torch.no_grad():
            was_training = self.backbone.training
            self.backbone.eval()
            probe = self.backbone(torch.zeros(1, 3, self.default_image_size, self.default_image_size))
            self.backbone.train(was_training)
        heads = {}
        for lvl in self.levels:
            channels = self.backbone.tap_channels[lvl]
            if lvl == "H":
                heads[lvl] = HighHead(channels, dims[lvl])
            else:
                heads[lvl] = LowMidHead(channels, dims[lvl], paper_pool_grid(probe[lvl].shape[-1]))
        self.heads = nn.ModuleDict(heads)

    @property
    def embedding_dims(self) -> dict[str, int]:
        return dict(self.config["embedding_dim"])

    def train(self, mode: bool = True) -> "EmbeddingModel":
        super().train(mode)
        if mode and self.freeze_bn:  # backbone BN keeps its ImageNet statistics
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        taps = self.backbone(images)
        return {lvl: self.heads[lvl](taps[lvl]) for lvl in self.levels}


def build_model(backbone: str, **options: Any) -> EmbeddingModel:
    return EmbeddingModel(backbone, **options)


def evaluation_embedding(outputs: Mapping[str, torch.Tensor], levels: Sequence[str] | None = None) -> torch.Tensor:
    """The chosen levels' raw embeddings concatenated, then L2-normalised as a whole (SPEC 4)."""
    levels = _levels(levels) if levels is not None else tuple(lvl for lvl in LEVELS if lvl in outputs)
    missing = [lvl for lvl in levels if lvl not in outputs]
    if missing:
        raise ValueError(f"levels {missing} are not among the model's outputs {sorted(outputs)}")
    return F.normalize(torch.cat([outputs[lvl].float() for lvl in levels], dim=1), dim=1)


def parameter_groups(
    model: EmbeddingModel, *, lr: float, new_layer_lr_mult: float = 10.0, weight_decay: float = 0.0
) -> list[dict[str, Any]]:
    """Backbone at lr, new layers (heads) at lr x new_layer_lr_mult (the paper's 10x); weight
    decay on weights only (not on BN parameters or biases)."""
    if lr <= 0 or new_layer_lr_mult <= 0 or weight_decay < 0:
        raise ValueError(f"need lr > 0, new_layer_lr_mult > 0, weight_decay >= 0; got {lr}, {new_layer_lr_mult}, {weight_decay}")
    groups = []
    for name, module, group_lr in (("backbone", model.backbone, lr), ("heads", model.heads, lr * new_layer_lr_mult)):
        decay, no_decay = [], []
        for param in module.parameters():
            if param.requires_grad:
                (decay if param.dim() > 1 else no_decay).append(param)
        groups.append({"name": f"{name}", "params": decay, "lr": group_lr, "weight_decay": weight_decay})
        groups.append({"name": f"{name}_no_decay", "params": no_decay, "lr": group_lr, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


def model_checkpoint(model: EmbeddingModel) -> dict[str, Any]:
    config = dict(model.config)
    config["pretrained"] = False  # the weights are in the checkpoint
    return {"model_config": config, "model_state": model.state_dict()}


def save_model(model: EmbeddingModel, path: str | Path) -> None:
    atomic_torch_save(model_checkpoint(model), path)


def load_model(checkpoint: str | Path | Mapping[str, Any], map_location: str | torch.device = "cpu") -> EmbeddingModel:
    """Re-create a model from a checkpoint holding "model_config" and "model_state"."""
    source = checkpoint if isinstance(checkpoint, Mapping) else Path(checkpoint)
    if isinstance(source, Path):
        if not source.is_file():
            raise FileNotFoundError(f"checkpoint not found: {source}")
        try:
            source = torch.load(source, map_location=map_location, weights_only=False)
        except Exception as error:
            raise ValueError(f"cannot read checkpoint {checkpoint}: {error}") from error
    where = checkpoint if not isinstance(checkpoint, Mapping) else "checkpoint"
    if not isinstance(source, Mapping) or "model_config" not in source or "model_state" not in source:
        raise ValueError(f"{where} is not a ranklist model checkpoint (needs model_config and model_state)")
    config = dict(source["model_config"])
    config["pretrained"] = False
    try:
        model = build_model(config.pop("backbone"), **config)
        model.load_state_dict(source["model_state"])
    except (TypeError, RuntimeError, ValueError, KeyError) as error:
        raise ValueError(f"{where} does not fit its model config: {error}") from error
    return model.to(map_location)
