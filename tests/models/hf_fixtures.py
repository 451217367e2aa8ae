"""Tiny randomly initialised Hugging Face vision models, one per supported family, saved to a folder
with a preprocessor_config.json, as `hf:<dir>` loads them (offline; the hub path is the same call)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

transformers = pytest.importorskip("transformers")

MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
VIT = dict(hidden_size=16, num_hidden_layers=6, num_attention_heads=2, image_size=32, patch_size=8)
STAGES = dict(hidden_sizes=[8, 12, 16, 24], depths=[1, 1, 2, 1])


def tiny_configs() -> dict[str, Any]:
    """family -> a tiny config (image side 32, except Swin whose windows need 64)."""
    t = transformers
    return {
        "vit": t.ViTConfig(**VIT, intermediate_size=32),
        "dinov2": t.Dinov2Config(**VIT, mlp_ratio=2),
        "dinov2_with_registers": t.Dinov2WithRegistersConfig(**VIT, mlp_ratio=2, num_register_tokens=4),
        "clip_vision_model": t.CLIPVisionConfig(**VIT, intermediate_size=32),
        "convnext": t.ConvNextConfig(**STAGES),
        "convnextv2": t.ConvNextV2Config(**STAGES),
        "swin": t.SwinConfig(
            image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 2, 1], num_heads=[1, 1, 2, 2], window_size=2
        ),
        "resnet": t.ResNetConfig(embedding_size=8, **STAGES, layer_type="basic"),
    }


FAMILIES = list(tiny_configs())
SIZES = {family: 64 if family == "swin" else 32 for family in FAMILIES}


def save_tiny(family: str, folder: Path, seed: int = 0) -> Path:
    """save_pretrained a tiny random `family` model (and its preprocessor config) into `folder`."""
    import torch

    torch.manual_seed(seed)
    model = transformers.AutoModel.from_config(tiny_configs()[family])
    model.save_pretrained(folder)
    size = SIZES[family]
    processor = {
        "image_mean": MEAN,
        "image_std": STD,
        "do_normalize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "size": {"shortest_edge": size + 8},
        "do_center_crop": True,
        "crop_size": {"height": size, "width": size},
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder
