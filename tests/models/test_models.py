import pytest
import torch

from ranklist.models import (
    build_model, evaluation_embedding, load_model, model_checkpoint, parameter_groups, save_model,
)
from ranklist.models.bn_inception import INCEPTION_TABLE, BNInception, load_bn_inception_weights


def expected_bn_inception_parameters() -> int:
    """Count from the architecture table: conv k*k*cin*cout + bias, BN weight + bias."""
    def conv_bn(cin, cout, k):
        return k * k * cin * cout + cout + 2 * cout

    total = conv_bn(3, 64, 7) + conv_bn(64, 64, 1) + conv_bn(64, 192, 3)
    for _, cin, c1, r3, c3, rd, d, _, proj in INCEPTION_TABLE:
        total += conv_bn(cin, r3, 1) + conv_bn(r3, c3, 3)
        total += conv_bn(cin, rd, 1) + conv_bn(rd, d, 3) + conv_bn(d, d, 3)
        total += (conv_bn(cin, c1, 1) if c1 else 0) + (conv_bn(cin, proj, 1) if proj else 0)
    return total


def test_bn_inception_shapes_and_parameter_count():
    model = BNInception().eval()
    with torch.no_grad():
        taps = model(torch.zeros(1, 3, 227, 227))
    assert {k: tuple(v.shape) for k, v in taps.items()} == {
        "L": (1, 576, 14, 14), "M": (1, 1056, 7, 7), "H": (1, 1024, 7, 7)}
    count = sum(p.numel() for p in model.parameters())
    assert count == expected_bn_inception_parameters()
    # The converted ImageNet model (Cadene's `bninception`) has 11,295,240 parameters including its
    # 1024 x 1000 classifier (1,025,000), which the trunk does not build.
    assert count == 11_295_240 - 1_025_000


def test_bn_inception_state_dict_names_load_and_round_trip(tmp_path):
    source = BNInception()
    state = source.state_dict()
    assert "inception_3a_1x1.weight" in state and "inception_5b_pool_proj_bn.running_var" in state
    state = {**state, "last_linear.weight": torch.zeros(1000, 1024), "last_linear.bias": torch.zeros(1000)}
    torch.save(state, tmp_path / "bn_inception.pth")
    target = BNInception()
    load_bn_inception_weights(target, tmp_path / "bn_inception.pth")
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_bn_inception_bad_weights_name_file_and_keys(tmp_path):
    state = BNInception().state_dict()
    state.pop("inception_4e_3x3.weight")
    state["inception_3a_1x1.bias"] = torch.zeros(3)
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(ValueError) as info:
        load_bn_inception_weights(BNInception(), tmp_path / "w.pth")
    text = str(info.value)
    assert str(tmp_path / "w.pth") in text
    assert "missing (1): inception_4e_3x3.weight" in text
    assert "unexpected (1): extra.weight" in text and "wrong shape (1): inception_3a_1x1.bias" in text
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_bn_inception_weights(BNInception(), tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="cannot be downloaded here"):
        build_model("bn_inception")


@pytest.mark.parametrize("size,grids", [(64, [2, 1]), (224, [8, 4])])
def test_efficientnet_lite0_pretrained_levels(size, grids):
    model = build_model("efficientnet_lite0", embedding_dim={"L": 16, "M": 32, "H": 64}, image_size=size).eval()
    assert model.normalization == "efficientnet_lite"
    assert [model.heads[lvl].grid for lvl in ("L", "M")] == grids
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"L": (2, 16), "M": (2, 32), "H": (2, 64)}


def test_levels_subset_canonical_order_and_errors():
    model = build_model("small_cnn", pretrained=False, levels=("H", "L"), embedding_dim=8)
    assert model.levels == ("L", "H") and set(model.heads) == {"L", "H"}
    with pytest.raises(ValueError, match=r"levels must be a non-empty subset of .* got \['X'\]"):
        build_model("small_cnn", pretrained=False, levels=("X",))
    with pytest.raises(ValueError, match="unknown backbone 'resnet9'"):
        build_model("resnet9")
    with pytest.raises(ValueError, match="small_cnn has no pretrained weights"):
        build_model("small_cnn", pretrained=True)


def test_evaluation_embedding_concatenates_then_normalises_the_whole():
    outputs = {"L": torch.tensor([[3.0, 0.0]]), "H": torch.tensor([[0.0, 4.0, 0.0]])}
    emb = evaluation_embedding(outputs)
    torch.testing.assert_close(emb, torch.tensor([[0.6, 0.0, 0.0, 0.8, 0.0]]))
    torch.testing.assert_close(evaluation_embedding(outputs, ["H"]), torch.tensor([[0.0, 1.0, 0.0]]))
    with pytest.raises(ValueError, match=r"levels \['M'\] are not among the model's outputs"):
        evaluation_embedding(outputs, ["M"])


def test_parameter_groups_give_new_layers_ten_times_the_rate():
    model = build_model("small_cnn", pretrained=False, embedding_dim=8)
    groups = parameter_groups(model, lr=0.01, new_layer_lr_mult=10.0, weight_decay=1e-5)
    by_name = {g["name"]: g for g in groups}
    assert by_name["backbone"]["lr"] == 0.01 and by_name["heads"]["lr"] == pytest.approx(0.1)
    assert by_name["heads_no_decay"]["weight_decay"] == 0.0
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))


def test_freeze_bn_keeps_backbone_statistics():
    model = build_model("small_cnn", pretrained=False, embedding_dim=8, freeze_bn=True).train()
    before = {k: v.clone() for k, v in model.backbone.state_dict().items() if "running" in k}
    model(torch.randn(4, 3, 32, 32))
    for key, value in model.backbone.state_dict().items():
        if "running" in key:
            assert torch.equal(value, before[key]), key
    assert model.heads["L"].training


def test_checkpoint_round_trip_recreates_the_model(tmp_path):
    model = build_model("small_cnn", pretrained=False, embedding_dim={"L": 4, "M": 6, "H": 8}, image_size=40).eval()
    save_model(model, tmp_path / "m.pt")
    again = load_model(tmp_path / "m.pt").eval()
    x = torch.randn(2, 3, 40, 40)
    for lvl, value in model(x).items():
        torch.testing.assert_close(again(x)[lvl], value)
    bad = model_checkpoint(model)
    bad["model_state"].pop("heads.H.embed.weight")
    with pytest.raises(ValueError, match="does not fit its model config"):
        load_model(bad)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint .*junk.pt"):
        load_model(tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="is not a ranklist model checkpoint"):
        load_model({"weights": 1})
