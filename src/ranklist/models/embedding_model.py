"""The multi-level embedding model RLL-(L,M,H) (docs/models.md).

model = build_model("efficientnet_lite0", embedding_dim=128, levels=("L", "M", "H"))
outputs = model(images)                      # {"L": [B, D], "M": ..., "H": ...}, raw
emb = evaluation_embedding(outputs)          # concatenated, then L2-normalised as a whole
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ranklist.data.preprocessing import Preprocessing
from ranklist.data.transforms import normalization
from ranklist.models.backbones import backbone_spec
from ranklist.models.heads import HighHead, LowMidHead, paper_pool_grid
from ranklist.models.inference import Inference

LEVELS = ("L", "M", "H")


def canonical_levels(levels: Sequence[str]) -> tuple[str, ...]:
    """A non-empty subset of ("L", "M", "H") without repeats, in that order."""
    levels = tuple(levels)
    unknown = [lvl for lvl in levels if lvl not in LEVELS]
    if not levels or unknown or len(set(levels)) != len(levels):
        raise ValueError(f"levels must be a non-empty subset of {LEVELS} without repeats, got {list(levels)}")
    return tuple(lvl for lvl in LEVELS if lvl in levels)


def _dims(embedding_dim: int | Mapping[str, int], levels: tuple[str, ...]) -> dict[str, int]:
    """One size for every level, or a size per level (entries for levels not chosen are ignored)."""
    if isinstance(embedding_dim, int) and not isinstance(embedding_dim, bool):
        embedding_dim = {lvl: embedding_dim for lvl in levels}
    ok = (
        isinstance(embedding_dim, Mapping)
        and set(levels) <= set(embedding_dim) <= set(LEVELS)
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in embedding_dim.values())
    )
    if not ok:
        raise ValueError(f"embedding_dim must be a positive int or one per level {list(levels)}, got {embedding_dim!r}")
    return {lvl: embedding_dim[lvl] for lvl in levels}


class EmbeddingModel(nn.Module):
    """A backbone with one embedding head per chosen level; forward returns raw embeddings.

    `config` holds the constructor's arguments (build_model(**model.config) rebuilds it), and
    `backbone_config` when the backbone describes itself (hf: its architecture config, so a
    checkpoint rebuilds it offline); `preprocessing` says how its input images are made: the
    backbone's normalisation at `image_size` until a run sets its own record (saved with the model
    in every checkpoint). `freeze_blocks` fixes the backbone's stem and first blocks;
    `gradient_checkpointing` recomputes block activations in the backward pass (less memory).
    """

    def __init__(
        self,
        backbone: str,
        *,
        embedding_dim: int | Mapping[str, int] = 512,
        levels: Sequence[str] = LEVELS,
        pretrained: bool | str = True,
        freeze_bn: bool = False,
        image_size: int | None = None,
        freeze_blocks: int = 0,
        gradient_checkpointing: bool = False,
        backbone_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        spec = backbone_spec(backbone, backbone_config)
        self.levels = canonical_levels(levels)
        dims = _dims(embedding_dim, self.levels)
        size = spec.default_image_size if image_size is None else image_size
        if not isinstance(size, int) or size < 16:
            raise ValueError(f"image_size must be an int >= 16, got {image_size!r}")
        if isinstance(pretrained, Path):
            pretrained = str(pretrained)  # configs stay plain data
        self.backbone = spec.build(pretrained)
        _backbone_options(self.backbone, backbone, freeze_blocks, gradient_checkpointing)
        # A backbone instance may carry its own (e.g. read from a model's image-processor config).
        self.normalization = normalization(getattr(self.backbone, "normalization", spec.normalization))
        self.preprocessing = Preprocessing.create(size, self.normalization)
        self.inference = Inference()  # how its forward runs when it embeds; a run records its own
        self.default_image_size = size
        self.freeze_bn = bool(freeze_bn)
        self.config: dict[str, Any] = dict(
            backbone=backbone,
            embedding_dim=dims,
            levels=list(self.levels),
            pretrained=pretrained,
            freeze_bn=self.freeze_bn,
            image_size=size,
            freeze_blocks=freeze_blocks,
            gradient_checkpointing=bool(gradient_checkpointing),
        )
        if hasattr(self.backbone, "saved_config"):
            self.config["backbone_config"] = self.backbone.saved_config
        tap_channels = getattr(self.backbone, "tap_channels", spec.tap_channels)
        sides = self._tap_sides(size)
        self.heads = nn.ModuleDict(
            {
                lvl: HighHead(tap_channels[lvl], dims[lvl])
                if lvl == "H"
                else LowMidHead(tap_channels[lvl], dims[lvl], paper_pool_grid(sides[lvl]))
                for lvl in self.levels
            }
        )
        self.train()  # applies freeze_bn

    def _tap_sides(self, size: int) -> dict[str, int]:
        """Side of each tap's feature map for size x size images (fixes the low/mid FC input)."""
        was_training = self.backbone.training
        self.backbone.eval()  # the probe must not touch BN running statistics
        with torch.no_grad():
            taps = self.backbone(torch.zeros(1, 3, size, size))
        self.backbone.train(was_training)
        return {lvl: taps[lvl].shape[-1] for lvl in self.levels}

    @property
    def embedding_dims(self) -> dict[str, int]:
        return dict(self.config["embedding_dim"])

    def train(self, mode: bool = True) -> EmbeddingModel:
        super().train(mode)
        if mode and self.freeze_bn:  # backbone BN keeps its (ImageNet) running statistics
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        taps = self.backbone(images)
        return {lvl: self.heads[lvl](taps[lvl]) for lvl in self.levels}


def _backbone_options(backbone: nn.Module, name: str, freeze_blocks: int, gradient_checkpointing: bool) -> None:
    """Apply freeze_blocks / gradient_checkpointing, or say which backbone cannot take them."""
    if not isinstance(freeze_blocks, int) or isinstance(freeze_blocks, bool) or freeze_blocks < 0:
        raise ValueError(f"freeze_blocks must be an int >= 0, got {freeze_blocks!r}")
    for wanted, method in ((freeze_blocks, "freeze"), (gradient_checkpointing, "set_gradient_checkpointing")):
        if wanted and not hasattr(backbone, method):
            option = "freeze_blocks" if method == "freeze" else "gradient_checkpointing"
            raise ValueError(f"backbone {name!r} does not support {option}")
    if freeze_blocks:
        backbone.freeze(freeze_blocks)
    if gradient_checkpointing:
        backbone.set_gradient_checkpointing(True)


def build_model(
    backbone: str,
    *,
    embedding_dim: int | Mapping[str, int] = 512,
    levels: Sequence[str] = LEVELS,
    pretrained: bool | str = True,
    freeze_bn: bool = False,
    image_size: int | None = None,
    freeze_blocks: int = 0,
    gradient_checkpointing: bool = False,
    backbone_config: Mapping[str, Any] | None = None,
) -> EmbeddingModel:
    """Backbone name (see BACKBONES, or hf:<hub id or directory>) -> EmbeddingModel. `pretrained` may
    be a weights path (bn_inception); `image_size` defaults to the backbone's and fixes the low/mid
    heads' grids; `backbone_config` is a backbone's saved description (checkpoints pass it back)."""
    return EmbeddingModel(
        backbone,
        embedding_dim=embedding_dim,
        levels=levels,
        pretrained=pretrained,
        freeze_bn=freeze_bn,
        image_size=image_size,
        freeze_blocks=freeze_blocks,
        gradient_checkpointing=gradient_checkpointing,
        backbone_config=backbone_config,
    )


def evaluation_embedding(outputs: Mapping[str, torch.Tensor], levels: Sequence[str] | None = None) -> torch.Tensor:
    """The chosen levels' raw embeddings concatenated, then L2-normalised as a whole (docs/models.md).

    levels=None takes every level present in `outputs`.
    """
    levels = canonical_levels(levels if levels is not None else [lvl for lvl in LEVELS if lvl in outputs])
    missing = [lvl for lvl in levels if lvl not in outputs]
    if missing:
        raise ValueError(f"levels {missing} are not among the model's outputs {sorted(outputs)}")
    return F.normalize(torch.cat([outputs[lvl] for lvl in levels], dim=1), dim=1)
