import pytest
import torch

from ranklist.losses import LOSS_NAMES, RankedListLoss, build_loss
from ranklist.losses.registry import check_loss


def class_batch(classes=6, k=3, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g)
    labels = torch.arange(classes).repeat_interleave(k)
    return centres[labels] + 0.8 * torch.randn(classes * k, dim, generator=g), labels


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_every_loss_trains_on_a_c_by_k_batch(name):
    x, labels = class_batch()
    head = torch.nn.Linear(8, 8)
    loss_fn = build_loss(name, embedding_dim=8, num_classes=6)
    optimizer = torch.optim.SGD(list(head.parameters()) + list(loss_fn.parameters()), lr=0.1)
    values = []
    for _ in range(25):
        loss = loss_fn(head(x), labels)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        values.append(float(loss))
    assert values[-1] < values[0], (name, values[0], values[-1])


def test_overrides_reach_the_pml_objects():
    loss = build_loss("multi_similarity", embedding_dim=8, num_classes=4, alpha=3.0, **{"miner.epsilon": 0.2})
    assert loss.loss.alpha == 3.0 and loss.miner.epsilon == 0.2
    proxies = build_loss("proxy_nca", embedding_dim=8, num_classes=5)
    assert sum(p.numel() for p in proxies.parameters()) == 5 * 8
    assert isinstance(build_loss("rll", embedding_dim=8, num_classes=4, alpha=None), RankedListLoss)


def test_unknown_names_and_hyper_parameters():
    with pytest.raises(ValueError, match="unknown loss 'arcface'; choose one of"):
        build_loss("arcface", embedding_dim=8, num_classes=4)
    with pytest.raises(
        ValueError,
        match=r"unknown parameters \['miner.k'\] for loss 'triplet_semihard'; "
        r"valid: \[.*'miner.margin', 'miner.type_of_triplets'\]",
    ):
        build_loss("triplet_semihard", embedding_dim=8, num_classes=4, **{"miner.k": 1})
    with pytest.raises(
        ValueError, match=r"unknown parameters \['bogus'\] for loss 'contrastive'; valid: \[.*'neg_margin'"
    ):
        build_loss("contrastive", embedding_dim=8, num_classes=4, bogus=1)
    with pytest.raises(ValueError, match=r"unknown parameters \['temperature'\] for loss 'rll'; valid: \['alpha'"):
        build_loss("rll", embedding_dim=8, num_classes=4, temperature=1)
    with pytest.raises(ValueError, match="bad parameters for loss 'contrastive'"):
        check_loss("contrastive", params={"neg_margin": "far"})
    with pytest.raises(ValueError, match="bad parameters for loss 'rll'"):
        check_loss("rll", params={"margin": -1})
    with pytest.raises(ValueError, match="unknown preset 'cvpr' for loss 'rll'; presets: \\['cvpr2019'"):
        build_loss("rll", embedding_dim=8, num_classes=4, preset="cvpr")


def test_rll_presets_through_the_registry():
    loss = build_loss("rll", embedding_dim=8, num_classes=4, preset="tpami2021_code", margin=0.5)
    assert loss.options["alpha"] is None and loss.options["reduction"] == "official" and loss.options["margin"] == 0.5
    assert build_loss("rll", embedding_dim=8, num_classes=4).options == RankedListLoss().options


@pytest.mark.parametrize(
    "name,params,message",
    [
        ("margin", {"beta": float("nan")}, "beta must be a finite number >= 0.0, got nan"),
        ("margin", {"margin": -0.2}, "margin must be a finite number >= 0.0, got -0.2"),
        ("margin", {"miner.cutoff": float("inf")}, "miner.cutoff must be a finite number >= 0.0, got inf"),
        ("triplet_semihard", {"margin": -0.1}, "margin must be a finite number >= 0.0, got -0.1"),
        ("triplet_semihard", {"miner.margin": -0.1}, "miner.margin must be a finite number >= 0.0, got -0.1"),
        ("contrastive", {"neg_margin": -0.5}, "neg_margin must be a finite number >= 0.0, got -0.5"),
        ("contrastive", {"neg_margin": "far"}, "neg_margin must be a finite number >= 0.0, got 'far'"),
        ("lifted_structure", {"pos_margin": -1}, "pos_margin must be a finite number >= 0.0, got -1"),
        ("multi_similarity", {"alpha": -2.0}, "alpha must be a finite number >= 0.0, got -2.0"),
        ("multi_similarity", {"beta": float("nan")}, "beta must be a finite number >= 0.0, got nan"),
        ("multi_similarity", {"base": 1.5}, r"base must be a finite number in \[-1.0, 1.0\], got 1.5"),
        ("multi_similarity", {"miner.epsilon": True}, "miner.epsilon must be a finite number >= 0.0, got True"),
        ("proxy_nca", {"softmax_scale": None}, "softmax_scale must be a finite number >= 0.0, got None"),
        ("pml_ranked_list", {"alpha": -1.2}, "alpha must be a finite number >= 0.0 or null, got -1.2"),
        ("pml_ranked_list", {"imbalance": 2}, r"imbalance must be a finite number in \[0.0, 1.0\], got 2"),
        ("pml_ranked_list", {"Tn": float("nan")}, "Tn must be a finite number >= 0.0, got nan"),
        # pml mines all triplets for an unknown type, silently
        (
            "triplet_semihard",
            {"miner.type_of_triplets": "bogus"},
            r"miner.type_of_triplets must be one of \['all', 'hard', 'semihard', 'easy'\], got 'bogus'",
        ),
        ("triplet_semihard", {"swap": "yes"}, r"swap must be one of \[False, True\], got 'yes'"),
        ("margin", {"learn_beta": 1}, r"learn_beta must be one of \[False, True\], got 1"),
    ],
)
def test_baseline_parameters_are_range_checked_by_name(name, params, message):
    # issue 28: beta=nan trained nothing for a whole run; negative margins and alphas were accepted
    for call in (
        lambda: build_loss(name, embedding_dim=8, num_classes=4, **params),
        lambda: check_loss(name, params=params),
    ):
        with pytest.raises(ValueError, match=f"^bad parameters for loss '{name}': {message}$"):
            call()


def test_in_range_baseline_parameters_still_build():
    assert build_loss("pml_ranked_list", embedding_dim=8, num_classes=4, alpha=None).loss.alpha == 1.2
    assert build_loss("multi_similarity", embedding_dim=8, num_classes=4, base=-0.5, alpha=0).loss.base == -0.5
    assert (
        build_loss(
            "triplet_semihard", embedding_dim=8, num_classes=4, **{"miner.type_of_triplets": "hard"}
        ).miner.type_of_triplets
        == "hard"
    )
    assert build_loss("margin", embedding_dim=8, num_classes=4, learn_beta=True).loss.learn_beta is True
    for name in LOSS_NAMES:
        check_loss(name)  # every default is in range
