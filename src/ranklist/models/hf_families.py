"""How ranklist taps each Hugging Face `transformers` vision family: a registry keyed by model_type.

Two kinds of family:

"tokens" (ViT, DINOv2 with or without registers, CLIP's vision tower): a stack of N equal blocks
  over [CLS, registers..., patch tokens]. L and M are the outputs of blocks round(N/3) and
  round(2N/3) (a third and two thirds of the way up; ViT-S/B: blocks 4 and 8 of 12), CLS and register
  tokens dropped and the patch tokens laid back on their grid (side = image side // patch size).
  H is the CLS token after the final norm (CLIP: its post-layernorm "pooled" output), as a
  [B, C, 1, 1] map, rather than the mean of patch tokens: the CLS token is what these models were
  pretrained to summarise an image with (DINO's self-distillation heads and CLIP's contrastive
  projection read it) and what ViT retrieval work fine-tunes as the embedding (El-Nouby et al. 2021,
  "Training Vision Transformers for Image Retrieval"; Ermolov et al., Hyp-ViT, CVPR 2022).
"stages" (ConvNeXt / ConvNeXt V2, Swin, ResNet): a pyramid of stages. L and M are the ends of the
  last three stages but one: the stride-8 and stride-16 stages (Swin: before the patch merging that
  ends a stage, so the maps are the stage's own resolution). H is the model's own pooled output of
  the stride-32 stage (ConvNeXt: global mean then its final LayerNorm; Swin: final LayerNorm then
  mean; ResNet: global mean) as a [B, C, 1, 1] map, so every pretrained parameter is used.

HighHead global-pools its input, which is the identity on these [B, C, 1, 1] H maps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass(frozen=True)
class HFFamily:
    """How one Hugging Face model_type is tapped: token or stage blocks, where they are, how to load it."""

    kind: str  # "tokens" | "stages"
    block_paths: tuple[str, ...]  # where the blocks are (first path that resolves; "*" = every stage)
    stage_channels: Callable[[Any], list[int]] | None = None  # stages: output channels of every stage
    model_class: str | None = None  # a transformers class to load instead of AutoModel (a tower of a bigger model)
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # to from_pretrained / from_config
    forward_kwargs: dict[str, Any] = field(default_factory=dict)
    unused: tuple[str, ...] = ()  # parameters the taps never reach: kept frozen (DDP needs every trainable one used)


def _hidden_sizes(config: Any) -> list[int]:
    return list(config.hidden_sizes)


def _swin_channels(config: Any) -> list[int]:
    return [int(config.embed_dim * 2**i) for i in range(len(config.depths))]


_VIT = HFFamily(
    "tokens",
    ("layers", "encoder.layer"),
    model_kwargs={"add_pooling_layer": False},
    forward_kwargs={"interpolate_pos_encoding": True},
    unused=("embeddings.mask_token",),
)
_DINOV2 = HFFamily("tokens", ("encoder.layer",), unused=("embeddings.mask_token",))  # interpolates by itself
_CLIP = HFFamily(
    "tokens",
    ("encoder.layers", "vision_model.encoder.layers"),
    model_class="CLIPVisionModel",
    forward_kwargs={"interpolate_pos_encoding": True},
)
_CONVNEXT = HFFamily("stages", ("encoder.stages.*.layers",), _hidden_sizes)

HF_FAMILIES: dict[str, HFFamily] = {
    "vit": _VIT,
    "dinov2": _DINOV2,
    "dinov2_with_registers": _DINOV2,
    "clip_vision_model": _CLIP,
    "clip": _CLIP,  # a whole CLIP checkpoint: its vision tower is loaded
    "convnext": _CONVNEXT,
    "convnextv2": _CONVNEXT,
    "swin": HFFamily(
        "stages",
        ("encoder.layers.*.blocks",),
        _swin_channels,
        forward_kwargs={"interpolate_pos_encoding": True, "output_hidden_states_before_downsampling": True},
    ),
    "resnet": HFFamily("stages", ("encoder.stages.*.layers",), _hidden_sizes),
}


def hf_family(model_type: str) -> HFFamily:
    """How to tap a Hugging Face model_type; a ValueError naming the supported ones otherwise."""
    if model_type not in HF_FAMILIES:
        raise ValueError(f"hf backbone of model_type {model_type!r} is not supported; supported: {sorted(HF_FAMILIES)}")
    return HF_FAMILIES[model_type]


def token_tap_blocks(num_blocks: int) -> tuple[int, int]:
    """The blocks (1-based) whose outputs are the L and M taps of an N-block transformer."""
    if num_blocks < 3:
        raise ValueError(f"a transformer backbone needs at least 3 blocks for L/M/H taps, got {num_blocks}")
    return max(1, round(num_blocks / 3)), max(2, round(2 * num_blocks / 3))


def resolve_blocks(model: nn.Module, paths: tuple[str, ...]) -> list[nn.Module]:
    """The blocks at the first of `paths` that names modules in `model` ("*" expands every child)."""
    for path in paths:
        modules = [model]
        try:
            for part in path.split("."):
                modules = [child for m in modules for child in (m.children() if part == "*" else [getattr(m, part)])]
        except AttributeError:
            continue
        blocks = [block for m in modules for block in m.children()]
        if blocks:
            return blocks
    raise ValueError(f"{type(model).__name__} has no blocks at any of {list(paths)}")
