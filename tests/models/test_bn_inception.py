import pytest
import torch

from ranklist.data import NORMALIZATIONS
from ranklist.models import build_model
from ranklist.models.bn_inception import INCEPTION_TABLE, BNInception, load_bn_inception_weights

# Published size of the converted ImageNet BN-Inception (Cadene's `bninception`, 1000 classes):
# 11,295,240 parameters, the count listed for "BN-Inception ... From Cadene/pretrained-models.pytorch"
# in the model table of osmr/imgclsmob (pytorchcv), whose test also asserts it. Its classifier
# last_linear = Linear(1024, 1000) holds 1,025,000 of them and is not built here.
PUBLISHED_PARAMETERS = 11_295_240
CLASSIFIER_PARAMETERS = 1024 * 1000 + 1000


def table_parameters() -> int:
    """Count from the architecture table: conv k*k*cin*cout + bias, BN scale + shift."""

    def unit(cin: int, cout: int, k: int) -> int:
        return k * k * cin * cout + cout + 2 * cout

    total = unit(3, 64, 7) + unit(64, 64, 1) + unit(64, 192, 3)
    for _, cin, c1, r3, c3, rd, d, _, proj in INCEPTION_TABLE:
        total += unit(cin, r3, 1) + unit(r3, c3, 3) + unit(cin, rd, 1) + unit(rd, d, 3) + unit(d, d, 3)
        total += (unit(cin, c1, 1) if c1 else 0) + (unit(cin, proj, 1) if proj else 0)
    return total


def converted_state(model: BNInception) -> dict[str, torch.Tensor]:
    """The model's weights laid out as the converted file is: no num_batches_tracked, a classifier."""
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    return {**state, "last_linear.weight": torch.randn(1000, 1024), "last_linear.bias": torch.randn(1000)}


def test_parameter_count_is_the_published_architecture():
    count = sum(p.numel() for p in BNInception().parameters())
    assert count == table_parameters() == PUBLISHED_PARAMETERS - CLASSIFIER_PARAMETERS == 10_270_240


def test_taps_and_embeddings_at_227_px():
    model = build_model("bn_inception", pretrained=False, embedding_dim={"L": 8, "M": 16, "H": 32}).eval()
    assert model.default_image_size == 227 and model.normalization == NORMALIZATIONS["bn_inception"]
    x = torch.randn(2, 3, 227, 227)
    with torch.no_grad():
        taps = model.backbone(x)
        out = model(x)
    assert {k: tuple(v.shape) for k, v in taps.items()} == {
        "L": (2, 576, 14, 14),
        "M": (2, 1056, 7, 7),
        "H": (2, 1024, 7, 7),
    }
    # 5x5/3 pooling: 14 -> 4 (the paper's low head), 7 -> 1 (mid).
    assert model.heads["L"].grid == 4 and model.heads["M"].grid == 1
    assert {k: tuple(v.shape) for k, v in out.items()} == {"L": (2, 8), "M": (2, 16), "H": (2, 32)}


def test_state_dict_has_the_converted_key_names():
    state = converted_state(BNInception())
    for key in (
        "conv1_7x7_s2.weight",
        "conv1_7x7_s2.bias",
        "conv1_7x7_s2_bn.running_mean",
        "conv2_3x3_reduce.weight",
        "inception_3a_1x1.weight",
        "inception_3a_pool_proj_bn.running_var",
        "inception_3c_double_3x3_2.weight",
        "inception_4e_3x3_bn.weight",
        "inception_5b_double_3x3_1_bn.bias",
        "inception_5b_pool_proj.weight",
    ):
        assert key in state, key
    assert not any(k.startswith(("inception_3c_1x1", "inception_3c_pool_proj", "inception_4e_1x1")) for k in state)
    # 69 conv+BN units x 6 tensors, plus the classifier's 2
    assert len(state) == 69 * 6 + 2


def test_converted_weights_load_and_round_trip(tmp_path):
    source = BNInception().eval()
    for module in source.modules():  # non-trivial running statistics must travel too
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    torch.save(converted_state(source), tmp_path / "bn_inception-239d2248.pth")
    model = build_model(
        "bn_inception", pretrained=str(tmp_path / "bn_inception-239d2248.pth"), embedding_dim=8, image_size=64
    )
    target = model.backbone.eval()
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    x = torch.randn(1, 3, 99, 99)
    with torch.no_grad():
        for level, value in source(x).items():
            torch.testing.assert_close(target(x)[level], value)
    assert model.config["pretrained"] == str(tmp_path / "bn_inception-239d2248.pth")


def test_weights_that_do_not_fit_name_the_file_and_the_keys(tmp_path):
    state = converted_state(BNInception())
    state.pop("inception_4e_3x3.weight")
    state["inception_3a_1x1.bias"] = torch.zeros(3)
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "w.pth"
    torch.save(state, path)
    model = BNInception()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as info:
        load_bn_inception_weights(model, path)
    text = str(info.value)
    assert str(path) in text
    assert "missing (1): inception_4e_3x3.weight" in text
    assert "unexpected (1): extra.weight" in text
    assert "wrong shape (1): inception_3a_1x1.bias (3,) != (64,)" in text
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # untouched


def test_unusable_weight_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_model("bn_inception", pretrained=str(tmp_path / "nope.pth"))
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="list.pth is not a state dict"):
        load_bn_inception_weights(BNInception(), tmp_path / "list.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot read BN-Inception weights from .*junk.pth"):
        load_bn_inception_weights(BNInception(), tmp_path / "junk.pth")
    with pytest.raises(
        ValueError, match="fetch it with `ranklist data fetch bn_inception` and give its path as model.weights"
    ):
        build_model("bn_inception", pretrained=True)
