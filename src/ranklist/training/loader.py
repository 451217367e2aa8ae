"""The training DataLoader: one for the whole run (its workers started once), from a TrainState's position."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from ranklist.data.samplers import RunBatches, SeededItems


def training_loader(run, state) -> DataLoader:
    """Batches from state's (epoch, batch) on, without end: the trainer stops at train.iterations.

    An epoch is only len(sampler) batches (one on CUB and CARS with C = 60): a loader per epoch
    would start its workers and lose their prefetching every step. The loader's own generator
    keeps it from drawing its base seed from the global RNG (a resumed run draws as the straight one).
    """
    workers = run.config.data.num_workers
    generator = torch.Generator().manual_seed(run.config.train.seed * 100_003 + state.epoch)
    # Pinned batches on CUDA: train_step's copies to the device then run without blocking.
    return DataLoader(
        SeededItems(run.splits.train),
        batch_sampler=RunBatches(run.sampler, state.epoch, state.batch),
        generator=generator,
        num_workers=workers,
        pin_memory=run.device.type == "cuda",
    )
