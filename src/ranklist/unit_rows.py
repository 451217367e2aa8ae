"""Rows scaled to unit L2 norm, safely: the one helper of every package that normalises embeddings
(evaluation, clustering, the index, the run report, the loss kernel's float64 differences)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Each row of [N, D] divided by its L2 norm, in x's dtype. Each row is scaled by its largest entry
    first, so rows near 1e20 or 1e-30 neither over- nor underflow in the norm; an all-zero row (a model
    can output one) stays zero, and so has similarity 0 to every row."""
    largest = x.abs().amax(dim=1, keepdim=True)
    return F.normalize(x / torch.where(largest > 0, largest, 1.0), dim=1)
