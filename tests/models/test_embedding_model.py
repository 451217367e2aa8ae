import pytest
import torch

from ranklist.models import BACKBONES, backbone_spec, build_model, evaluation_embedding, parameter_groups


def small(**options):
    return build_model("small_cnn", pretrained=False, **{"embedding_dim": 8, **options})


def test_backbone_metadata():
    assert sorted(BACKBONES) == [
        "bn_inception",
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
        "small_cnn",
    ]
    assert (backbone_spec("bn_inception").normalization, backbone_spec("bn_inception").default_image_size) == (
        "bn_inception",
        227,
    )
    assert (
        backbone_spec("efficientnet_lite0").normalization,
        backbone_spec("efficientnet_lite0").default_image_size,
    ) == ("efficientnet_lite", 224)
    assert backbone_spec("small_cnn").normalization == "imagenet"
    with pytest.raises(ValueError, match="unknown backbone 'resnet9'"):
        backbone_spec("resnet9")


def test_levels_are_a_subset_in_canonical_order():
    model = small(levels=("H", "L"))
    assert model.levels == ("L", "H") and set(model.heads) == {"L", "H"}
    assert set(model(torch.randn(2, 3, 32, 32))) == {"L", "H"}
    for bad in [(), ("X",), ("L", "L")]:
        with pytest.raises(ValueError, match="levels must be a non-empty subset"):
            small(levels=bad)


def test_embedding_dim_per_level():
    assert small(embedding_dim={"L": 4, "M": 6, "H": 8}).embedding_dims == {"L": 4, "M": 6, "H": 8}
    assert small(embedding_dim=5, levels=["M"]).embedding_dims == {"M": 5}
    assert small(embedding_dim={"L": 4, "M": 6, "H": 8}, levels=["H"]).embedding_dims == {"H": 8}
    for bad in [0, {"L": 4}, {"L": 4, "M": 4, "H": 4, "X": 4}, 2.5, True]:
        with pytest.raises(ValueError, match="embedding_dim must be a positive int or one per level"):
            small(embedding_dim=bad)
    with pytest.raises(ValueError, match="image_size must be an int >= 16, got 8"):
        small(image_size=8)
    with pytest.raises(ValueError, match="small_cnn has no pretrained weights"):
        build_model("small_cnn", pretrained=True)


def test_config_rebuilds_the_same_model():
    model = small(embedding_dim={"L": 4, "M": 6, "H": 8}, levels=["M", "H"], freeze_bn=True, image_size=40)
    assert model.config["embedding_dim"] == {"M": 6, "H": 8}
    again = build_model(**model.config)
    assert again.config == model.config
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_evaluation_embedding_concatenates_then_normalises_the_whole():
    gen = torch.Generator().manual_seed(0)
    outputs = {
        lvl: torch.randn(5, d, generator=gen) * s for lvl, d, s in (("L", 3, 10.0), ("M", 4, 1.0), ("H", 2, 0.1))
    }
    joined = torch.cat([outputs["L"], outputs["M"], outputs["H"]], dim=1).double()
    expected = joined / joined.pow(2).sum(dim=1, keepdim=True).sqrt()
    torch.testing.assert_close(evaluation_embedding(outputs).double(), expected)
    # not the same as normalising each part (parts keep their relative scale)
    parts = torch.cat([torch.nn.functional.normalize(v, dim=1) for v in outputs.values()], dim=1)
    assert not torch.allclose(torch.nn.functional.normalize(parts, dim=1), evaluation_embedding(outputs))
    # chosen levels, any order given, are taken in canonical order
    sub = torch.cat([outputs["L"], outputs["H"]], dim=1).double()
    torch.testing.assert_close(evaluation_embedding(outputs, ["H", "L"]).double(), sub / sub.norm(dim=1, keepdim=True))
    with pytest.raises(ValueError, match=r"levels \['M'\] are not among the model's outputs"):
        evaluation_embedding({"L": outputs["L"]}, ["M"])


def test_parameter_groups_rates_and_decay():
    model = small()
    groups = parameter_groups(model, lr=0.01, new_layer_lr_mult=10.0, weight_decay=1e-5)
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"backbone", "backbone_no_decay", "heads", "heads_no_decay"}
    assert by_name["backbone"]["lr"] == by_name["backbone_no_decay"]["lr"] == 0.01
    assert by_name["heads"]["lr"] == by_name["heads_no_decay"]["lr"] == pytest.approx(0.1)
    assert by_name["backbone"]["weight_decay"] == by_name["heads"]["weight_decay"] == 1e-5
    assert by_name["backbone_no_decay"]["weight_decay"] == by_name["heads_no_decay"]["weight_decay"] == 0.0
    no_decay = {id(p) for g in groups if g["name"].endswith("no_decay") for p in g["params"]}
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert all(id(m.weight) in no_decay and id(m.bias) in no_decay for m in bns)
    head_ids = {id(p) for p in model.heads.parameters()}
    assert all(id(p) in head_ids for g in groups if g["name"].startswith("heads") for p in g["params"])
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    torch.optim.SGD(groups, lr=0.01, momentum=0.9)  # accepted by torch as it is
    with pytest.raises(ValueError, match="need lr > 0"):
        parameter_groups(model, lr=0.0)


@pytest.mark.parametrize("freeze", [True, False])
def test_freeze_bn_keeps_backbone_statistics_through_train(freeze):
    model = small(freeze_bn=freeze).eval().train()
    backbone_bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(bn.training != freeze for bn in backbone_bns)
    assert model.heads["L"].training and model.heads["L"].reduce[1].training
    before = [bn.running_mean.clone() for bn in backbone_bns]
    head_before = model.heads["L"].reduce[1].running_mean.clone()
    out = model(torch.randn(4, 3, 32, 32) + 3)
    frozen = all(torch.equal(bn.running_mean, b) for bn, b in zip(backbone_bns, before))
    assert frozen == freeze
    assert not torch.equal(model.heads["L"].reduce[1].running_mean, head_before)
    sum(v.sum() for v in out.values()).backward()
    assert backbone_bns[0].weight.grad is not None  # frozen statistics, trainable scale and shift
