"""Losses: the Ranked List Loss (ours) and the baselines (through pytorch-metric-learning)."""

from ranklist.losses.ranked_list import PRESETS, RankedListLoss, ranked_list_loss
from ranklist.losses.registry import LOSS_NAMES, LOSSES, build_loss, check_loss, loss_params

__all__ = [
    "LOSSES",
    "LOSS_NAMES",
    "PRESETS",
    "check_loss",
    "loss_params",
    "RankedListLoss",
    "build_loss",
    "ranked_list_loss",
]
