"""Process-group set-up for `torchrun --nproc_per_node=P -m ranklist train ...` (DDP)."""

from __future__ import annotations

import gc
import os

import torch
import torch.distributed as dist

from ranklist.training.preflight import process_device


def init_from_env(device: str) -> tuple[int, int, bool]:
    """(rank, world size, whether this call created the process group) from torchrun's environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    created = not dist.is_initialized()
    if created:
        device = process_device(device, world, local_rank())  # a refused device fails before the group forms
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size(), created


def local_rank(default: int = 0) -> int:
    """This process's number on its node (torchrun's LOCAL_RANK; `default` without it)."""
    return int(os.environ.get("LOCAL_RANK", default))


def shutdown(clean: bool) -> None:
    """Destroy the process group this process created.

    After a successful run every process meets at a barrier first, so that none tears down gloo's
    connections while another still uses them (a peer's abort at exit: 'terminate called without an
    active exception'). After a failure there is no barrier: the others may never reach it.
    """
    if not dist.is_initialized():
        return
    gc.collect()  # a DistributedDataParallel left in a reference cycle must not outlive its group
    if clean:
        dist.barrier()
    dist.destroy_process_group()
