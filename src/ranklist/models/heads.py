"""Embedding heads of the multi-level model (docs/models.md#heads).

Low/mid: avg-pool 5x5 stride 3 -> 1x1 conv 128 + BN + ReLU -> FC 1024 + BN + ReLU -> FC D (no bias).
High: global avg-pool -> FC D (no bias).

The pooled grid fixes the first FC's input size, so it is computed once, from the tap's map side at
the model's image size (`paper_pool_grid`). Small inputs (64-96 px) give late maps smaller than
5x5, where the paper's pooling cannot run: the grid is then 1x1 (global average). Whenever the map
is not the one the grid was computed for (another image size, non-square images), adaptive average
pooling to the same grid is used, so the FC always sees 128 x grid x grid features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

POOL_KERNEL, POOL_STRIDE, REDUCED_CHANNELS, HIDDEN = 5, 3, 128, 1024


def paper_pool_grid(side: int) -> int:
    """Side of the 5x5 stride-3 average-pool output on a side x side map (1 when it does not fit)."""
    return (side - POOL_KERNEL) // POOL_STRIDE + 1 if side >= POOL_KERNEL else 1


class LowMidHead(nn.Module):
    """Head for a low or mid tap: pool to grid x grid, 1x1 conv, FC + BN + ReLU, FC to `dim`."""

    def __init__(self, in_channels: int, dim: int, grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.reduce = nn.Sequential(
            nn.Conv2d(in_channels, REDUCED_CHANNELS, 1, bias=False),
            nn.BatchNorm2d(REDUCED_CHANNELS),
            nn.ReLU(inplace=True),
        )
        self.hidden = nn.Sequential(
            nn.Linear(REDUCED_CHANNELS * grid * grid, HIDDEN, bias=False), nn.BatchNorm1d(HIDDEN), nn.ReLU(inplace=True)
        )
        self.embed = nn.Linear(HIDDEN, dim, bias=False)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h == w and h >= POOL_KERNEL and paper_pool_grid(h) == self.grid:
            return F.avg_pool2d(x, POOL_KERNEL, POOL_STRIDE)  # the paper's pooling
        return F.adaptive_avg_pool2d(x, self.grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.hidden(self.reduce(self.pool(x)).flatten(1)))


class HighHead(nn.Module):
    """Head for the high tap: global average pool, FC to `dim`."""

    def __init__(self, in_channels: int, dim: int) -> None:
        super().__init__()
        self.embed = nn.Linear(in_channels, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x.mean(dim=(2, 3)))
