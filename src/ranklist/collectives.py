"""The few torch.distributed collectives ranklist needs, shared by the loss, evaluation and training.

Every function is a no-op (or the identity) without an initialised process group, so callers need
no separate single-process path.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def process_group() -> tuple[int, int]:
    """(rank, world size); (0, 1) without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_rows(rows: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """all_gather of [n_p, ...] row blocks whose sizes differ: padded to the largest, then cut."""
    padded = rows.new_zeros((max(sizes), *rows.shape[1:]))
    padded[: rows.shape[0]] = rows
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([part[:n] for part, n in zip(parts, sizes)])


def shard_bounds(n: int, world: int) -> list[int]:
    """Start rows of `world` contiguous shards of n items (sizes differ by at most one), then n."""
    return [n * p // world for p in range(world + 1)]


def broadcast_state(module: torch.nn.Module) -> None:
    """Every parameter and buffer of rank 0's module, copied into this process's module.

    Under DDP the parameters agree, but each process's batch-norm statistics move with its own
    batches; evaluating shards on several processes needs one model (rank 0's, the one saved).
    """
    if process_group()[1] == 1:
        return
    with torch.no_grad():
        for tensor in module.state_dict().values():
            dense = tensor.contiguous()  # channels-last weights are not contiguous in the default sense
            dist.broadcast(dense, src=0)
            if dense.data_ptr() != tensor.data_ptr():
                tensor.copy_(dense)


def average_gradients(parameters) -> None:
    """The mean over processes of each parameter's gradient, as DDP computes for the model's: for
    trainable parameters outside it (a loss's proxies). One all-reduce; a missing gradient counts as
    zero, so that every process joins the same collective."""
    world = process_group()[1]
    params = [p for p in parameters if p.requires_grad]
    if world == 1 or not params:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world
    for p, part in zip(params, flat.split([p.numel() for p in params])):
        p.grad = part.view_as(p).clone()


def gather_objects(value: Any) -> list[Any]:
    """Every process's picklable `value`, in rank order ([value] in one process)."""
    world = process_group()[1]
    if world == 1:
        return [value]
    values: list[Any] = [None] * world
    dist.all_gather_object(values, value)
    return values


def barrier() -> None:
    """Wait for every process of the group; nothing when there is one process."""
    if process_group()[1] > 1:
        dist.barrier()
