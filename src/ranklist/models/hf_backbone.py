"""Hugging Face `transformers` vision models as backbones: `model.backbone: hf:<hub id or local dir>`.

    spec = hf_backbone_spec("facebook/dinov2-small")      # reads config + preprocessor config only
    backbone = spec.build(True)                           # from_pretrained: the weights
    backbone(images) -> {"L": [B, C, h, w], "M": ..., "H": [B, C, 1, 1]}   (taps: hf_families.py)

A built backbone carries `saved_config` = {"architecture": config.to_dict(), "normalization",
"image_size"}, which the embedding model keeps in its config (hence in every checkpoint): given
back with pretrained=False it rebuilds the same architecture with random weights without the hub or
the original directory, and the checkpoint's state dict fills it. Input normalisation and the native
image size come from the model's preprocessor_config.json (ImageNet statistics when it has none).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ranklist.data.transforms import NORMALIZATIONS, Normalization
from ranklist.errors import require
from ranklist.models.blocks import parameter_depths
from ranklist.models.hf_families import HFFamily, hf_family, resolve_blocks, token_tap_blocks


def _transformers() -> Any:
    # a ValueError (MissingExtraError): choosing an hf: backbone without the extra is a configuration error
    return require("transformers", "hf: backbones", extra="hf")


def _processor_normalization(record: Mapping[str, Any]) -> Normalization:
    imagenet = NORMALIZATIONS["imagenet"]
    scale = float(record.get("rescale_factor", 1 / 255)) * 255 if record.get("do_rescale", True) else 255.0
    if not record.get("do_normalize", True):
        return Normalization(scale, "RGB")
    return Normalization(
        scale, "RGB", tuple(record.get("image_mean", imagenet.mean)), tuple(record.get("image_std", imagenet.std))
    )


def _processor_image_size(record: Mapping[str, Any], config: Any) -> int:
    """The crop the model was trained on: crop_size when it centre-crops, else size, else config.image_size."""
    for key, used in (("crop_size", record.get("do_center_crop", False)), ("size", True)):
        value = record.get(key)
        if used and isinstance(value, int):
            return value
        if used and isinstance(value, Mapping):
            for side in ("height", "shortest_edge"):
                if isinstance(value.get(side), int):
                    return int(value[side])
    return int(getattr(config, "image_size", 224))


def _unreachable(source: str, error: Exception) -> ValueError:
    """A hub id that cannot be fetched (offline, unknown) or a folder without the files, in one line."""
    reason = " ".join(str(error).split())[:300]
    return ValueError(
        f"hf:{source} cannot be loaded ({reason}); give a hub id (with network access) "
        "or a local directory written by save_pretrained"
    )


def describe_source(source: str) -> dict[str, Any]:
    """{"architecture", "normalization", "image_size"} of a hub id or local directory (no weights read)."""
    transformers = _transformers()
    try:
        config = transformers.AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as error:  # ValueError: a folder whose config.json names no model_type
        raise _unreachable(source, error) from None
    family = hf_family(config.model_type)
    if family.model_class is not None:  # e.g. CLIP: the vision tower's own config
        config = getattr(transformers, family.model_class).config_class.from_pretrained(source)
    try:
        record, _ = transformers.ImageProcessingMixin.get_image_processor_dict(source)
    except OSError:
        warnings.warn(f"hf:{source} has no preprocessor_config.json: ImageNet normalisation assumed", stacklevel=2)
        record = {}
    norm = _processor_normalization(record)
    return {
        "architecture": config.to_dict(),
        "normalization": {
            "scale": norm.scale,
            "channels": norm.channels,
            "mean": list(norm.mean),
            "std": list(norm.std),
        },
        "image_size": _processor_image_size(record, config),
    }


def saved_normalization(saved: Mapping[str, Any]) -> Normalization:
    """The input normalisation recorded in a saved Hugging Face backbone's description."""
    record = saved["normalization"]
    return Normalization(float(record["scale"]), str(record["channels"]), tuple(record["mean"]), tuple(record["std"]))


def architecture_config(saved: Mapping[str, Any]) -> Any:
    """The transformers config object of a saved description."""
    architecture = dict(saved["architecture"])
    return _transformers().CONFIG_MAPPING[architecture["model_type"]].from_dict(architecture)


class HFBackbone(nn.Module):
    """A transformers vision model returning {"L", "M", "H"} taps (see hf_families.py)."""

    def __init__(self, model: nn.Module, family: HFFamily, saved: Mapping[str, Any]) -> None:
        super().__init__()
        self.model, self.family = model, family
        self.saved_config = dict(saved)
        self.normalization = saved_normalization(saved)
        config = model.config
        self.prefix_tokens = 1 + int(getattr(config, "num_register_tokens", 0) or 0)  # CLS + registers
        self.patch_size = int(getattr(config, "patch_size", 0) or 0)
        self._blocks = resolve_blocks(model, family.block_paths)
        if family.kind == "tokens":
            self.tap_indices = token_tap_blocks(len(self._blocks))
        self.tap_channels = tap_channels(family, config)
        self.frozen_blocks = 0
        names = dict(model.named_parameters())
        for name in family.unused:
            if name in names:
                names[name].requires_grad_(False)

    def layer_blocks(self) -> list[nn.Module]:
        return list(self._blocks)

    def freeze(self, blocks: int) -> HFBackbone:
        """Fix the embeddings and the first `blocks` blocks (weights; dropout and any BN in eval mode)."""
        if not isinstance(blocks, int) or isinstance(blocks, bool) or not 0 <= blocks <= len(self._blocks):
            raise ValueError(f"freeze blocks must be an int in [0, {len(self._blocks)}], got {blocks!r}")
        self.frozen_blocks = blocks
        if blocks:
            for name, depth in parameter_depths(self).items():
                if depth <= blocks:
                    self.get_parameter(name).requires_grad_(False)
        return self.train(self.training)

    def _frozen_modules(self) -> list[nn.Module]:
        if not self.frozen_blocks:
            return []
        depths = parameter_depths(self)
        owned = [
            m
            for name, m in self.named_modules()
            if (params := [f"{name}.{p}" if name else p for p, _ in m.named_parameters(recurse=False)])
            and all(depths[p] <= self.frozen_blocks for p in params)
        ]
        return owned + self._blocks[: self.frozen_blocks]

    def train(self, mode: bool = True) -> HFBackbone:
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        return self

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """transformers' own per-block checkpointing (named activation checkpointing from 5.x on)."""
        model = self.model
        if enabled and not model.supports_gradient_checkpointing:
            raise ValueError(
                f"hf model_type {model.config.model_type!r} does not support gradient checkpointing in transformers"
            )
        if not model.supports_gradient_checkpointing:
            return
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(
                {"use_reentrant": False}
            ) if enabled else model.activation_checkpointing_disable()
        else:
            model.gradient_checkpointing_enable(
                {"use_reentrant": False}
            ) if enabled else model.gradient_checkpointing_disable()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.family.kind == "tokens" and min(x.shape[-2:]) < self.patch_size:
            raise ValueError(f"{x.shape[-2]}x{x.shape[-1]} images are smaller than one {self.patch_size}-pixel patch")
        out = self.model(pixel_values=x, output_hidden_states=True, **self.family.forward_kwargs)
        if self.family.kind == "tokens":
            pooled = out.pooler_output if out.pooler_output is not None else out.last_hidden_state[:, 0]
            low, mid = (self._grid(out.hidden_states[i], x.shape[-2:]) for i in self.tap_indices)
        else:
            maps = getattr(out, "reshaped_hidden_states", None) or out.hidden_states
            low, mid, pooled = maps[-3], maps[-2], out.pooler_output
        return {"L": low, "M": mid, "H": pooled.reshape(pooled.shape[0], -1, 1, 1)}

    def _grid(self, tokens: torch.Tensor, size: torch.Size) -> torch.Tensor:
        """Patch tokens [B, prefix + h*w, C] -> [B, C, h, w] (CLS and registers dropped). A side that is
        not a multiple of the patch size loses its remainder (the patch convolution floors)."""
        h, w = size[0] // self.patch_size, size[1] // self.patch_size
        patches = tokens[:, self.prefix_tokens :]
        if h * w != patches.shape[1] or h == 0 or w == 0:
            raise ValueError(
                f"{size[0]}x{size[1]} images give {patches.shape[1]} patch tokens, not the "
                f"{h}x{w} grid of patch size {self.patch_size}: use a size that is a multiple of {self.patch_size}"
            )
        return patches.transpose(1, 2).reshape(patches.shape[0], patches.shape[2], h, w)


def tap_channels(family: HFFamily, config: Any) -> dict[str, int]:
    """Channels of the L, M and H taps of a Hugging Face model of `family`."""
    if family.kind == "tokens":
        return dict.fromkeys(("L", "M", "H"), int(config.hidden_size))
    channels = family.stage_channels(config)
    if len(channels) < 3:
        raise ValueError(f"hf model_type {config.model_type!r} has {len(channels)} stages; L/M/H taps need at least 3")
    return {"L": channels[-3], "M": channels[-2], "H": channels[-1]}


def build_hf_backbone(source: str, pretrained: bool, saved: Mapping[str, Any] | None) -> HFBackbone:
    """pretrained: from_pretrained(source) (hub or directory); else random weights for `saved`'s
    architecture (or the source's config when nothing was saved)."""
    transformers = _transformers()
    if saved is None:
        saved = describe_source(source)
    config = architecture_config(saved)
    family = hf_family(config.model_type)
    if pretrained:
        loader = getattr(transformers, family.model_class) if family.model_class else transformers.AutoModel
        try:
            model = loader.from_pretrained(source, dtype=torch.float32, **family.model_kwargs)
        except OSError as error:
            raise _unreachable(source, error) from None
    else:  # the saved config is the vision model's own (CLIP: the tower's), which AutoModel maps
        model = transformers.AutoModel.from_config(config, **family.model_kwargs)
    saved = {**saved, "architecture": model.config.to_dict()}
    return HFBackbone(model.float(), family, saved)
