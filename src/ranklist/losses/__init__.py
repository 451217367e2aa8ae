"""Losses: the Ranked List Loss (ours) and the baselines (through pytorch-metric-learning)."""

from ranklist.losses.baselines import LOSS_NAMES, build_loss
from ranklist.losses.ranked_list import PRESETS, RankedListLoss, ranked_list_loss

__all__ = ["LOSS_NAMES", "PRESETS", "RankedListLoss", "build_loss", "ranked_list_loss"]
