"""Optimisers by name, and the learning-rate schedule (warm-up, then steps)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # config.py checks optim.name against OPTIMIZERS: no import back at run time
    from ranklist.training.config import OptimConfig

# name -> (parameter groups, config) -> optimiser; each group carries its own lr and weight decay.
OPTIMIZERS: dict[str, Callable[[list[dict[str, Any]], OptimConfig], torch.optim.Optimizer]] = {
    "sgd": lambda groups, o: torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum),  # the paper's
    "adamw": lambda groups, o: torch.optim.AdamW(groups, lr=o.lr),
}


def lr_factor(step: int, warmup: int, milestones: list[int], gamma: float) -> float:
    """Linear warm-up over `warmup` iterations, then lr x gamma at each milestone passed."""
    warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
    return warm * gamma ** sum(step >= m for m in milestones)


def build_optimizer(
    groups: list[dict[str, Any]], config: OptimConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The configured optimiser over `groups`, and its warm-up and step-decay schedule."""
    optimizer = OPTIMIZERS[config.name](groups, config)
    milestones = list(config.milestones)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, config.warmup_iterations, milestones, config.gamma)
    )
    return optimizer, scheduler
