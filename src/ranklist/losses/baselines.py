"""The paper's competitors and other standard DML losses, by name, through pytorch-metric-learning.

    loss = build_loss("multi_similarity", embedding_dim=128, num_classes=638)
    value = loss(embeddings, labels)

Every loss sees raw embeddings; pml's default distances L2-normalise them, as RLL does (the
paper's protocol: normalised embeddings everywhere). Defaults are each paper's recommended values
(see DEFAULTS and docs/baselines.md); any of them can be overridden by keyword.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners

from ranklist.losses.ranked_list import RankedListLoss

# name -> (loss defaults, miner defaults or None). Sources in docs/baselines.md.
DEFAULTS: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "rll": ({"margin": 0.4, "alpha": 1.2, "neg_temperature": 10.0}, None),  # Wang et al. 2019, sec. 4.1
    "triplet_semihard": ({"margin": 0.2}, {"margin": 0.2, "type_of_triplets": "semihard"}),  # FaceNet, Schroff 2015
    "lifted_structure": ({"neg_margin": 1.0, "pos_margin": 0.0}, None),  # Oh Song et al. 2016, alpha = 1
    "npair": ({}, None),  # Sohn 2016 (multi-class N-pair; pml pairs each anchor with one positive)
    "proxy_nca": ({"softmax_scale": 3.0}, None),  # Movshovitz-Attias 2017; scale 3 (Musgrave et al. 2020 range)
    "contrastive": ({"pos_margin": 0.0, "neg_margin": 0.5}, None),  # Hadsell et al. 2006 on normalised embeddings
    "margin": ({"margin": 0.2, "nu": 0.0, "beta": 1.2, "learn_beta": False},
               {"cutoff": 0.5, "nonzero_loss_cutoff": 1.4}),  # Wu et al. 2017, distance-weighted sampling
    "multi_similarity": ({"alpha": 2.0, "beta": 50.0, "base": 0.5}, {"epsilon": 0.1}),  # Wang et al. 2019 (MS)
    "pml_ranked_list": ({"margin": 0.4, "Tn": 10.0, "alpha": 1.2, "imbalance": 0.5}, None),  # pml's RLL, the paper's values
}
LOSS_NAMES = tuple(DEFAULTS)


class MinedLoss(torch.nn.Module):
    """A pml loss with its miner: forward(embeddings, labels) -> scalar."""

    def __init__(self, loss: torch.nn.Module, miner: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.loss, self.miner = loss, miner

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        indices = self.miner(embeddings, labels) if self.miner is not None else None
        return self.loss(embeddings, labels, indices)


def _pml(loss_cls: Callable[..., torch.nn.Module], miner_cls: Callable[..., torch.nn.Module] | None = None, *,
         sized: bool = False) -> Callable[..., torch.nn.Module]:
    def build(loss_kwargs: dict, miner_kwargs: dict | None, embedding_dim: int, num_classes: int) -> torch.nn.Module:
        if sized:
            loss_kwargs = {"num_classes": num_classes, "embedding_size": embedding_dim, **loss_kwargs}
        miner = miner_cls(**miner_kwargs) if miner_cls is not None else None
        return MinedLoss(loss_cls(**loss_kwargs), miner)

    return build


BUILDERS: dict[str, Callable[..., torch.nn.Module]] = {
    "rll": lambda kw, _m, _d, _c: RankedListLoss(**kw),
    "triplet_semihard": _pml(pml_losses.TripletMarginLoss, pml_miners.TripletMarginMiner),
    "lifted_structure": _pml(pml_losses.LiftedStructureLoss),
    "npair": _pml(pml_losses.NPairsLoss),
    "proxy_nca": _pml(pml_losses.ProxyNCALoss, sized=True),
    "contrastive": _pml(pml_losses.ContrastiveLoss),
    "margin": _pml(pml_losses.MarginLoss, pml_miners.DistanceWeightedMiner),
    "multi_similarity": _pml(pml_losses.MultiSimilarityLoss, pml_miners.MultiSimilarityMiner),
    "pml_ranked_list": _pml(pml_losses.RankedListLoss),
}


def build_loss(name: str, *, embedding_dim: int, num_classes: int, **hparams: Any) -> torch.nn.Module:
    """A loss module by name. hparams override the loss defaults; keys "miner.<key>" the miner's."""
    if name not in DEFAULTS:
        raise ValueError(f"unknown loss {name!r}; choose one of {list(LOSS_NAMES)}")
    loss_defaults, miner_defaults = DEFAULTS[name]
    loss_kwargs, miner_kwargs = dict(loss_defaults), dict(miner_defaults) if miner_defaults is not None else None
    for key, value in hparams.items():
        if key.startswith("miner."):
            if miner_kwargs is None or key[6:] not in miner_kwargs:
                valid = sorted(f"miner.{k}" for k in (miner_kwargs or {}))
                raise ValueError(f"unknown miner hyper-parameter {key!r} for {name}; valid: {valid}")
            miner_kwargs[key[6:]] = value
        else:
            loss_kwargs[key] = value
    try:
        return BUILDERS[name](loss_kwargs, miner_kwargs, embedding_dim, num_classes)
    except TypeError as error:
        raise ValueError(f"bad hyper-parameters for loss {name!r}: {error}") from error
