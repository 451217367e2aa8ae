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
    with pytest.raises(ValueError, match=r"unknown parameters \['miner.k'\] for loss 'triplet_semihard'; valid: \[.*'miner.margin', 'miner.type_of_triplets'\]"):
        build_loss("triplet_semihard", embedding_dim=8, num_classes=4, **{"miner.k": 1})
    with pytest.raises(ValueError, match=r"unknown parameters \['bogus'\] for loss 'contrastive'; valid: \[.*'neg_margin'"):
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
