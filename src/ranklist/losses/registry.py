"""Every loss by name: the Ranked List Loss (ours) and the paper's competitors and other standard DML
losses through pytorch-metric-learning, built and checked by one registry.

    loss = build_loss("multi_similarity", embedding_dim=128, num_classes=638)
    loss = build_loss("rll", embedding_dim=128, num_classes=638, preset="tpami2021_code", margin=0.5)
    value = loss(embeddings, labels)

Every loss sees raw embeddings; pml's default distances L2-normalise them, as RLL does (the
paper's protocol: normalised embeddings everywhere). Defaults are each paper's recommended values
(docs/baselines.md); presets are named settings (RLL's: ranklist.losses.PRESETS); parameters
override both, and keys "miner.<key>" the miner's. A key the loss does not take is an error that
lists the valid ones.
"""

from __future__ import annotations

import inspect
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import torch
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners

from ranklist.losses.full_precision import at_least_float32, outside_autocast
from ranklist.losses.ranked_list import PRESETS, RankedListLoss


class MinedLoss(torch.nn.Module):
    """A pml loss with its miner: forward(embeddings, labels) -> scalar."""

    def __init__(self, loss: torch.nn.Module, miner: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.loss, self.miner = loss, miner

    @outside_autocast  # in float32 whatever autocast the caller has on, as RLL (docs/loss.md#precision)
    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        embeddings = at_least_float32(embeddings)
        indices = self.miner(embeddings, labels) if self.miner is not None else None
        return self.loss(embeddings, labels, indices)


@dataclass(frozen=True)
class Range:
    """The values a numeric parameter may take: a finite real number in [low, high] (None too if
    optional). pml checks almost none, and beta=nan trains nothing for a whole run."""

    low: float = 0.0
    high: float = math.inf
    optional: bool = False

    def check(self, loss: str, key: str, value: Any) -> None:
        if value is None and self.optional:
            return
        real = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not (real and math.isfinite(value) and self.low <= value <= self.high):
            bounds = f"in [{self.low}, {self.high}]" if math.isfinite(self.high) else f">= {self.low}"
            raise ValueError(
                f"bad parameters for loss {loss!r}: {key} must be a finite number {bounds}"
                f"{' or null' if self.optional else ''}, got {value!r}"
            )


@dataclass(frozen=True)
class Choice:
    """A parameter that takes one of a few values (of their exact types: 1 is not True)."""

    values: tuple

    def check(self, loss: str, key: str, value: Any) -> None:
        if not any(type(value) is type(v) and value == v for v in self.values):
            raise ValueError(
                f"bad parameters for loss {loss!r}: {key} must be one of {list(self.values)}, got {value!r}"
            )


NONNEGATIVE = Range()
FLAG = Choice((False, True))


@dataclass(frozen=True)
class LossSpec:
    """A registered loss: its class, defaults, miner, presets and whether it is sized by the classes."""

    loss_cls: type
    defaults: dict[str, Any] = field(default_factory=dict)
    miner_cls: type | None = None
    miner_defaults: dict[str, Any] = field(default_factory=dict)
    sized: bool = False  # takes num_classes and embedding_size (proxies)
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: dict[str, Range | Choice] = field(default_factory=dict)  # the values of parameters (and "miner.<key>")

    def valid_params(self) -> list[str]:
        keys = _init_params(self.loss_cls) - ({"num_classes", "embedding_size"} if self.sized else set())
        return sorted(keys) + sorted(f"miner.{k}" for k in (_init_params(self.miner_cls) if self.miner_cls else ()))

    def build(self, params: dict[str, Any], embedding_dim: int, num_classes: int) -> torch.nn.Module:
        loss_kwargs = {k: v for k, v in params.items() if not k.startswith("miner.")}
        miner_kwargs = {**self.miner_defaults, **{k[6:]: v for k, v in params.items() if k.startswith("miner.")}}
        if self.sized:
            loss_kwargs = {"num_classes": num_classes, "embedding_size": embedding_dim, **loss_kwargs}
        if self.loss_cls is RankedListLoss:
            return RankedListLoss(**loss_kwargs)
        miner = self.miner_cls(**miner_kwargs) if self.miner_cls is not None else None
        return MinedLoss(self.loss_cls(**loss_kwargs), miner)


def _init_params(cls: type) -> set[str]:
    """Keyword parameters of cls.__init__ and of the bases it passes **kwargs to."""
    keys: set[str] = set()
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(vars(klass)["__init__"]).parameters.values()
        keys |= {p.name for p in parameters if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return keys


# Sources in docs/baselines.md.
LOSSES: dict[str, LossSpec] = {
    "rll": LossSpec(RankedListLoss, dict(PRESETS["default"]), presets=PRESETS),  # Wang et al. 2019, sec. 4.1
    "triplet_semihard": LossSpec(
        pml_losses.TripletMarginLoss,
        {"margin": 0.2},
        pml_miners.TripletMarginMiner,
        {"margin": 0.2, "type_of_triplets": "semihard"},  # FaceNet, Schroff 2015
        checks={
            "margin": NONNEGATIVE,
            "swap": FLAG,
            "smooth_loss": FLAG,
            "miner.margin": NONNEGATIVE,
            "miner.type_of_triplets": Choice(("all", "hard", "semihard", "easy")),
        },
    ),
    "lifted_structure": LossSpec(
        pml_losses.LiftedStructureLoss,
        {"neg_margin": 1.0, "pos_margin": 0.0},  # Oh Song et al. 2016, alpha = 1
        checks={"neg_margin": NONNEGATIVE, "pos_margin": NONNEGATIVE},
    ),
    "npair": LossSpec(pml_losses.NPairsLoss),  # Sohn 2016 (multi-class N-pair; pml pairs each anchor with one positive)
    "proxy_nca": LossSpec(
        pml_losses.ProxyNCALoss,
        {"softmax_scale": 3.0},
        sized=True,  # Movshovitz-Attias 2017; scale 3 (Musgrave et al. 2020)
        checks={"softmax_scale": NONNEGATIVE},
    ),
    "contrastive": LossSpec(
        pml_losses.ContrastiveLoss,
        {"pos_margin": 0.0, "neg_margin": 0.5},  # Hadsell et al. 2006, normalised
        checks={"pos_margin": NONNEGATIVE, "neg_margin": NONNEGATIVE},
    ),
    "margin": LossSpec(
        pml_losses.MarginLoss,
        {"margin": 0.2, "nu": 0.0, "beta": 1.2, "learn_beta": False},
        pml_miners.DistanceWeightedMiner,
        {"cutoff": 0.5, "nonzero_loss_cutoff": 1.4},  # Wu et al. 2017
        checks={
            "margin": NONNEGATIVE,
            "nu": NONNEGATIVE,
            "beta": NONNEGATIVE,
            "learn_beta": FLAG,
            "miner.cutoff": NONNEGATIVE,
            "miner.nonzero_loss_cutoff": NONNEGATIVE,
        },
    ),
    "multi_similarity": LossSpec(
        pml_losses.MultiSimilarityLoss,
        {"alpha": 2.0, "beta": 50.0, "base": 0.5},
        pml_miners.MultiSimilarityMiner,
        {"epsilon": 0.1},  # Wang et al. 2019 (MS)
        checks={
            "alpha": NONNEGATIVE,
            "beta": NONNEGATIVE,
            "base": Range(-1.0, 1.0),  # base: a cosine
            "miner.epsilon": NONNEGATIVE,
        },
    ),
    "pml_ranked_list": LossSpec(
        pml_losses.RankedListLoss,
        {  # pml's RLL, with the paper's values under pml's names
            "margin": PRESETS["cvpr2019"]["margin"],
            "Tn": PRESETS["cvpr2019"]["neg_temperature"],
            "alpha": PRESETS["cvpr2019"]["alpha"],
            "imbalance": PRESETS["cvpr2019"]["imbalance"],
        },
        checks={
            "margin": NONNEGATIVE,
            "Tn": NONNEGATIVE,
            "Tp": NONNEGATIVE,
            "alpha": Range(optional=True),
            "imbalance": Range(0.0, 1.0),
        },
    ),
}
LOSS_NAMES = tuple(LOSSES)


def loss_spec(name: str) -> LossSpec:
    """The registered loss `name`; a ValueError naming the choices otherwise."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {list(LOSS_NAMES)}")
    return LOSSES[name]


def loss_params(name: str, preset: str | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The loss's defaults <- the named preset <- params, with every key checked."""
    spec = loss_spec(name)
    if preset is not None and preset not in spec.presets:
        raise ValueError(f"unknown preset {preset!r} for loss {name!r}; presets: {sorted(spec.presets) or 'none'}")
    valid = spec.valid_params()
    unknown = sorted(set(params or {}) - set(valid))
    if unknown:
        raise ValueError(f"unknown parameters {unknown} for loss {name!r}; valid: {valid}")
    resolved = {**spec.defaults, **(spec.presets[preset] if preset else {}), **(params or {})}
    miner = {f"miner.{k}": v for k, v in spec.miner_defaults.items()}
    for key, allowed in spec.checks.items():
        if key in resolved or key in miner:
            allowed.check(name, key, resolved.get(key, miner.get(key)))
    return resolved


def build_loss(
    name: str, *, embedding_dim: int, num_classes: int, preset: str | None = None, **params: Any
) -> torch.nn.Module:
    """A loss module by name (see LOSSES); values are checked by the loss itself."""
    resolved = loss_params(name, preset, params)
    try:
        return loss_spec(name).build(resolved, embedding_dim, num_classes)
    except (TypeError, ValueError) as error:
        raise ValueError(f"bad parameters for loss {name!r}: {error}") from None


def check_loss(name: str, preset: str | None = None, params: dict[str, Any] | None = None) -> None:
    """Build the loss and run it once on a tiny batch: a bad value fails here, before any training.

    pml checks few values when a loss is built; a string where a number belongs fails only when
    the loss runs.
    """
    loss = build_loss(name, embedding_dim=4, num_classes=2, preset=preset, **(params or {}))
    embeddings = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    try:
        value = loss(embeddings, torch.tensor([0, 0, 1, 1]))
    except (TypeError, ValueError, RuntimeError, AttributeError) as error:
        raise ValueError(f"bad parameters for loss {name!r} {params or {}}: {error}") from None
    if not torch.isfinite(value).all():
        raise ValueError(f"bad parameters for loss {name!r} {params or {}}: the loss is not finite on a test batch")
