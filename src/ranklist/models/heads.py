"""Embedding heads of the multi-level model (SPEC section 4).

Low/mid: avg-pool 5x5 stride 3 -> 1x1 conv 128 + BN + ReLU -> FC 1024 + BN + ReLU -> FC D (no bias).
High: global avg-pool -> FC D (no bias).
The pooled grid fixes the FC's input size, so it is computed once for the model's image size. On
maps smaller than the paper's (small inputs), 5x5/3 pooling may not fit or may give a different
grid: then adaptive average pooling to that grid is used instead (documented deviation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def paper_pool_grid(size: int) -> int:
    """Side of the 5x5 stride-3 average-pool output on a size x size map (1 when it does not fit)."""
    return (size - 5) // 3 + 1 if size >= 5 else 1


class LowMidHead(nn.Module):
    def __init__(self, in_channels: int, dim: int, grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True))
        self.hidden = nn.Sequential(nn.Linear(128 * grid * grid, 1024, bias=False), nn.BatchNorm1d(1024), nn.ReLU(inplace=True))
        self.embed = nn.Linear(1024, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] >= 5 and paper_pool_grid(x.shape[-1]) == self.grid and x.shape[-2] == x.shape[-1]:
            x = F.avg_pool2d(x, 5, 3)
        else:
            x = F.adaptive_avg_pool2d(x, self.grid)
        return self.embed(self.hidden(self.reduce(x).flatten(1)))


class HighHead(nn.Module):
    def __init__(self, in_channels: int, dim: int) -> None:
        super().__init__()
        self.embed = nn.Linear(in_channels, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x.mean(dim=(2, 3)))
