"""hf:<dir> backbones: taps per family against references written from the models' own hidden states,
self-contained checkpoints, freezing, gradient checkpointing and layer-wise lr decay."""

from __future__ import annotations

import re
import shutil
import sys

import pytest
import torch

from ranklist.models import build_model, load_model, model_checkpoint, parameter_groups
from ranklist.models.hf_families import token_tap_blocks
from tests.models.hf_fixtures import FAMILIES, MEAN, SIZES, STD, save_tiny, transformers

TOKENS = ["vit", "dinov2", "dinov2_with_registers", "clip_vision_model"]
# family -> {level: (channels, side)} at SIZES[family]: tokens on a 32/8 = 4 grid; stages at strides 8, 16; H pooled.
EXPECTED = {
    **{f: {"L": (16, 4), "M": (16, 4), "H": (16, 1)} for f in TOKENS},
    **{f: {"L": (12, 4), "M": (16, 2), "H": (24, 1)} for f in ("convnext", "convnextv2", "resnet")},
    "swin": {"L": (16, 8), "M": (32, 4), "H": (64, 1)},
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """family -> folder of a tiny saved model (made once for the module)."""
    root = tmp_path_factory.mktemp("hf")
    return {family: save_tiny(family, root / family) for family in FAMILIES}


def _build(folder, family, **options):
    return build_model(f"hf:{folder}", embedding_dim={"L": 4, "M": 5, "H": 6}, image_size=SIZES[family], **options)


def _reference_grid(tokens: torch.Tensor, prefix: int, h: int, w: int) -> torch.Tensor:
    """[B, prefix + h*w, C] -> [B, C, h, w], one position at a time (row-major patches)."""
    grid = torch.empty(tokens.shape[0], tokens.shape[2], h, w)
    for r in range(h):
        for c in range(w):
            grid[:, :, r, c] = tokens[:, prefix + r * w + c]
    return grid


def _reference_taps(hf: torch.nn.Module, family: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """L/M/H from the model's own outputs, following docs/models.md's table."""
    kwargs = {"output_hidden_states_before_downsampling": True} if family == "swin" else {}
    out = hf(pixel_values=x, output_hidden_states=True, **kwargs)
    if family in TOKENS:
        prefix = 1 + (4 if family == "dinov2_with_registers" else 0)
        low, mid = token_tap_blocks(6)
        side = x.shape[-1] // 8
        norm = hf.post_layernorm if family == "clip_vision_model" else hf.layernorm
        cls = norm(out.hidden_states[-1][:, 0])  # the CLS token after the final norm
        return {
            "L": _reference_grid(out.hidden_states[low], prefix, side, side),
            "M": _reference_grid(out.hidden_states[mid], prefix, side, side),
            "H": cls[:, :, None, None],
        }
    maps = out.reshaped_hidden_states if family == "swin" else out.hidden_states
    by_stride = {x.shape[-1] // m.shape[-1]: m for m in maps}  # the last map at each stride
    last = maps[-1]
    if family == "swin":
        pooled = hf.layernorm(last.flatten(2).transpose(1, 2)).mean(1)
    elif family == "resnet":
        pooled = last.mean((2, 3))
    else:
        pooled = hf.layernorm(last.mean((2, 3)))
    return {"L": by_stride[8], "M": by_stride[16], "H": pooled[:, :, None, None]}


@pytest.mark.parametrize("family", FAMILIES)
def test_taps_channels_heads_and_preprocessing(saved, family):
    model = _build(saved[family], family).eval()
    size = SIZES[family]
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        taps = model.backbone(x)
        reference = _reference_taps(model.backbone.model, family, x)
        out = model(x)
    assert {k: (v.shape[1], v.shape[-1]) for k, v in taps.items()} == EXPECTED[family]
    assert model.backbone.tap_channels == {k: c for k, (c, _) in EXPECTED[family].items()}
    for level in "LMH":
        torch.testing.assert_close(taps[level], reference[level])
    assert {k: tuple(v.shape) for k, v in out.items()} == {"L": (2, 4), "M": (2, 5), "H": (2, 6)}
    record = model.preprocessing.normalization
    assert (
        record.mean == pytest.approx(MEAN) and record.std == pytest.approx(STD) and record.scale == pytest.approx(1.0)
    )
    assert build_model(f"hf:{saved[family]}", embedding_dim=4).default_image_size == size  # processor crop_size


def test_whole_clip_checkpoint_loads_its_vision_tower(tmp_path):
    vision = dict(
        hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32, image_size=32, patch_size=8
    )
    text = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, vocab_size=50)
    transformers.CLIPModel(transformers.CLIPConfig(vision_config=vision, text_config=text)).save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="no preprocessor_config.json"):
        model = build_model(f"hf:{tmp_path}", embedding_dim=4, image_size=32)
    assert model.config["backbone_config"]["architecture"]["model_type"] == "clip_vision_model"
    assert model.backbone.tap_indices == (1, 2)  # blocks 1 and 2 of 3


@pytest.mark.parametrize("family", FAMILIES)
def test_checkpoint_rebuilds_without_the_source(saved, family, tmp_path, monkeypatch):
    folder = shutil.copytree(saved[family], tmp_path / family)
    model = _build(folder, family, freeze_blocks=1).eval()
    checkpoint = model_checkpoint(model)
    shutil.rmtree(folder)

    def offline(*args, **kwargs):
        raise AssertionError("loading a checkpoint must not read the hub or the source directory")

    for name in ("AutoConfig", "AutoModel", "CLIPVisionModel", "ImageProcessingMixin"):
        monkeypatch.setattr(getattr(transformers, name), "from_pretrained", offline, raising=False)
    again = load_model(checkpoint).eval()
    assert again.config["backbone_config"] == model.config["backbone_config"]
    assert again.config["freeze_blocks"] == 1 and again.preprocessing == model.preprocessing
    x = torch.randn(2, 3, SIZES[family], SIZES[family])
    with torch.no_grad():
        expected, got = model(x), again(x)
    assert all(torch.equal(expected[k], got[k]) for k in expected)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_trainable_parameter_gets_a_gradient(saved, family):
    """What DistributedDataParallel needs; frozen blocks get none and stay in eval mode."""
    model = _build(saved[family], family, freeze_blocks=2).train()
    blocks = model.backbone.layer_blocks()
    assert all(not b.training for b in blocks[:2]) and all(b.training for b in blocks[2:])
    size = SIZES[family]
    sum(v.sum() for v in model(torch.randn(3, 3, size, size)).values()).backward()
    for name, param in model.named_parameters():
        assert (param.grad is not None) == param.requires_grad, name
    frozen = {n for n, p in model.backbone.named_parameters() if not p.requires_grad}
    assert any("embed" in n for n in frozen) and not any(p.requires_grad for p in blocks[1].parameters())
    assert all(p.requires_grad for p in blocks[2].parameters())


@pytest.mark.parametrize("family", TOKENS)
def test_token_grids_follow_the_image_shape(saved, family):
    model = _build(saved[family], family).eval()
    with torch.no_grad():
        assert model.backbone(torch.randn(1, 3, 32, 48))["L"].shape[-2:] == (4, 6)  # positions interpolated
        assert model.backbone(torch.randn(1, 3, 36, 36))["M"].shape[-2:] == (4, 4)  # remainder dropped
        with pytest.raises(ValueError, match="4x4 images are smaller than one 8-pixel patch"):
            model.backbone(torch.randn(1, 3, 4, 4))


@pytest.mark.parametrize("family", ["vit", "swin"])
def test_gradient_checkpointing_gives_the_same_gradients(saved, family):
    size = SIZES[family]
    x = torch.randn(2, 3, size, size)
    grads = []
    for enabled in (False, True):
        torch.manual_seed(0)  # the same heads
        model = _build(saved[family], family, gradient_checkpointing=enabled).train()
        hf = model.backbone.model
        active = (
            hf.is_activation_checkpointing
            if hasattr(hf, "is_activation_checkpointing")
            else hf.is_gradient_checkpointing
        )
        assert model.config["gradient_checkpointing"] is enabled and active is enabled
        sum(v.square().sum() for v in model(x).values()).backward()
        grads.append({n: p.grad for n, p in model.backbone.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], msg=name)


def test_unsupported_options_are_named(saved):
    with pytest.raises(ValueError, match="'convnext' does not support gradient checkpointing"):
        _build(saved["convnext"], "convnext", gradient_checkpointing=True)
    with pytest.raises(ValueError, match=re.escape("freeze blocks must be an int in [0, 6], got 7")):
        _build(saved["vit"], "vit", freeze_blocks=7)
    with pytest.raises(ValueError, match="backbone 'small_cnn' does not support freeze_blocks"):
        build_model("small_cnn", pretrained=False, embedding_dim=4, freeze_blocks=1)
    with pytest.raises(ValueError, match="names no source after 'hf:'"):
        build_model("hf:", embedding_dim=4)
    with pytest.raises(ValueError, match="hf:.* takes pretrained=true/false"):
        build_model(f"hf:{saved['vit']}", pretrained="/weights.pth")


def test_missing_transformers_names_the_extra(saved, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ValueError, match=re.escape("pip install 'ranklist[hf]'")):
        build_model(f"hf:{saved['vit']}", embedding_dim=4)


def _reference_depth(name: str, blocks: int) -> int:
    """ViT parameter names: embeddings.* -> 0, layers.i.* -> i + 1, the final layernorm -> N."""
    if name.startswith("model.embeddings."):
        return 0
    match = re.match(r"model\.layers\.(\d+)\.", name)
    return int(match.group(1)) + 1 if match else blocks


def test_layer_wise_lr_decay(saved):
    model = _build(saved["vit"], "vit")
    groups = parameter_groups(model, lr=0.1, new_layer_lr_mult=10.0, weight_decay=0.05, layer_decay=0.5)
    lr_of = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    for name, param in model.backbone.named_parameters():
        if param.requires_grad:
            decay = 0.05 if param.dim() > 1 else 0.0
            assert lr_of[id(param)] == pytest.approx((0.1 * 0.5 ** (6 - _reference_depth(name, 6)), decay)), name
    assert all(lr_of[id(p)][0] == pytest.approx(1.0) for p in model.heads.parameters())
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())
    plain = parameter_groups(model, lr=0.1, layer_decay=1.0)
    assert [g["name"] for g in plain] == ["backbone", "backbone_no_decay", "heads", "heads_no_decay"]
    with pytest.raises(ValueError, match="layer_decay must be in"):
        parameter_groups(model, lr=0.1, layer_decay=0.0)
    with pytest.raises(ValueError, match="does not list its blocks"):
        parameter_groups(build_model("small_cnn", pretrained=False, embedding_dim=4), lr=0.1, layer_decay=0.9)


def test_a_model_without_preprocessor_config_gets_imagenet_statistics(saved, tmp_path):
    folder = shutil.copytree(saved["resnet"], tmp_path / "resnet")
    (folder / "preprocessor_config.json").unlink()
    with pytest.warns(UserWarning, match="no preprocessor_config.json: ImageNet normalisation assumed"):
        model = build_model(f"hf:{folder}", embedding_dim=4)
    from ranklist.data import NORMALIZATIONS

    assert model.normalization == NORMALIZATIONS["imagenet"] and model.default_image_size == 224


def test_an_unloadable_source_is_one_value_error(tmp_path):
    for source in (tmp_path / "missing", tmp_path):  # no such folder; a folder without config.json
        with pytest.raises(ValueError, match=f"hf:{re.escape(str(source))} cannot be loaded .*save_pretrained"):
            build_model(f"hf:{source}", embedding_dim=4)
