"""One global ranked list across processes (torch.distributed), exact under DDP's gradient averaging.

Each process ranks its own queries against the embeddings gathered from all processes
(docs/loss.md#reference-sets-cross-batch-memory-and-many-processes).
With "query" gradients the gathered references are constants (a plain all_gather, nothing flows
back). With "full" gradients the gather is differentiable: its backward all-reduces the gradient of
the gathered matrix and each process keeps its own rows.

Scaling. DDP averages parameter gradients over the P processes. The local loss is therefore the
process's share of the global loss times P: for "mean", sum_i L(i) / N_global * P; for "sum",
sum_i L(i) * P; for "official", sum_i S_i L(i) / S_global * P with S_global all-reduced (the
weights are constants). The average of the P local gradients is then the single-process gradient of
the concatenated batch, whatever the batch sizes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from ranklist.collectives import gather_rows, process_group
from ranklist.losses.ranked_list import RankedListLoss, ranked_list_loss


class _GatherRows(torch.autograd.Function):
    """all_gather of [n_p, D] row blocks (sizes may differ); backward: all-reduce, keep own rows."""

    @staticmethod
    def forward(ctx: Any, rows: torch.Tensor, sizes: list[int], rank: int) -> torch.Tensor:  # type: ignore[override]
        ctx.sizes, ctx.rank = sizes, rank
        return gather_rows(rows, sizes)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None, None


def gather_batch(
    embeddings: torch.Tensor, labels: torch.Tensor, *, differentiable: bool
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(all processes' embeddings, their labels, the row where this process's block starts)."""
    rank, world = process_group()
    size = torch.tensor([embeddings.shape[0]], device=embeddings.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    sizes = [int(s) for s in sizes]
    if differentiable:
        all_emb = _GatherRows.apply(embeddings, sizes, rank)
    else:
        all_emb = gather_rows(embeddings.detach(), sizes)
    all_labels = gather_rows(labels.to(embeddings.device), sizes)
    return all_emb, all_labels, sum(sizes[:rank])


def distributed_ranked_list_loss(embeddings: torch.Tensor, labels: torch.Tensor, **options: Any) -> torch.Tensor:
    """ranked_list_loss over the global batch of all processes; see the module docstring for scaling.

    Without an initialised process group (or with one process) it is ranked_list_loss itself.
    """
    rank, world = process_group()
    reduction = options.pop("reduction", "mean")
    if world == 1:
        return ranked_list_loss(embeddings, labels, reduction=reduction, **options)  # type: ignore[return-value]
    if reduction == "none":
        raise ValueError("reduction 'none' is not supported across processes (each holds only its queries' losses)")
    gradient = options.get("gradient", "query")
    all_emb, all_labels, start = gather_batch(embeddings, labels, differentiable=gradient == "full")
    self_index = torch.arange(start, start + embeddings.shape[0], device=embeddings.device)
    per_query, weight_sums = ranked_list_loss(
        embeddings,
        labels,
        ref_emb=all_emb,
        ref_labels=all_labels,
        self_index=self_index,
        reduction="none",
        return_weight_sums=True,
        **options,
    )
    if reduction == "official":
        # pi_i = S_i / S_global, constants; S may overflow at huge temperatures, so rescale by the
        # global maximum first (the ratio is unchanged).
        log_s = torch.log(weight_sums)
        top = log_s.max().clone()
        dist.all_reduce(top, op=dist.ReduceOp.MAX)
        scaled = torch.exp(log_s - top) if torch.isfinite(top) else torch.zeros_like(log_s)
        total = scaled.sum()
        dist.all_reduce(total)
        if total == 0:
            return per_query.sum() * 0.0
        return (scaled.to(per_query.dtype) / total.to(per_query.dtype) * per_query).sum() * world
    if reduction == "sum":
        return per_query.sum() * world
    return per_query.sum() / all_emb.shape[0] * world


class DistributedRankedListLoss(RankedListLoss):
    """RankedListLoss whose ranked lists span the global batch of all processes (DDP-ready)."""

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, ref_emb=None, ref_labels=None, self_index=None
    ) -> torch.Tensor:
        if ref_emb is not None:
            raise ValueError("DistributedRankedListLoss gathers its own references; ref_emb is not accepted")
        return distributed_ranked_list_loss(embeddings, labels, **self.options)
