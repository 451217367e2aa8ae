"""The DINOv2 recipes load, and their backbone's geometry (a ViT-S/14 at 224 px) gives the documented taps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ranklist.models import build_model
from ranklist.training import load_config
from tests.models.hf_fixtures import transformers

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["sop_dinov2_vits14.yaml", "inshop_dinov2_vits14.yaml"])
def test_recipe_loads(name):
    config = load_config(CONFIGS / name)
    assert config.model.backbone == "hf:facebook/dinov2-small" and config.data.image_size == 224
    assert config.model.levels == ["L", "M", "H"] and config.optim.name == "adamw"
    assert config.data.classes_per_batch * config.data.samples_per_class == 900


def test_vits14_at_224_taps_blocks_4_and_8_on_a_16x16_grid():
    """DINOv2-small's architecture (random weights, no hub): hidden 384, 12 blocks, patch 14, 1 CLS."""
    architecture = transformers.Dinov2Config(
        hidden_size=384, num_hidden_layers=12, num_attention_heads=6, patch_size=14, image_size=518
    ).to_dict()
    saved = {
        "architecture": architecture,
        "image_size": 224,
        "normalization": {"scale": 1.0, "channels": "RGB", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    }
    model = build_model("hf:facebook/dinov2-small", pretrained=False, embedding_dim=128, backbone_config=saved).eval()
    assert model.backbone.tap_indices == (4, 8) and model.default_image_size == 224
    with torch.no_grad():
        taps = model.backbone(torch.randn(1, 3, 224, 224))
    assert {k: tuple(v.shape[1:]) for k, v in taps.items()} == {
        "L": (384, 16, 16),
        "M": (384, 16, 16),
        "H": (384, 1, 1),
    }
    assert (model.heads["L"].grid, model.heads["M"].grid) == (4, 4)  # 5x5/3 pooling of the 16 x 16 grid
