"""Class-balanced C x K batches (docs/data.md), usable as a DataLoader `batch_sampler`.

Each epoch walks a seeded random permutation of the classes; batch b takes the next C classes and K
images of each, drawn without replacement (repeats only when a class has fewer than K images).
With world_size P, the P processes take consecutive, disjoint groups of C classes for the same step,
so an epoch has floor(classes / (C P)) batches on every process (the classes left over are another
random set each epoch). Every draw depends only on (seed, epoch, batch, rank), so resuming
mid-epoch is exact.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info


class ClassBalancedBatchSampler:
    """Batches of C classes x K images (lists of item indices), for DataLoader(batch_sampler=...).

    labels: one label per item (any sortable ids). Iterating yields the remaining batches of the
    current epoch and then moves to the next epoch; set_epoch(e) jumps to the start of epoch e;
    state_dict() / load_state_dict() record and restore the position (epoch, next batch).
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray,
        classes_per_batch: int,
        samples_per_class: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.size == 0:
            raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.classes, inverse = np.unique(labels, return_inverse=True)
        if classes_per_batch < 1 or samples_per_class < 1:
            raise ValueError(
                f"classes_per_batch and samples_per_class must be >= 1, got {classes_per_batch} x {samples_per_class}"
            )
        if classes_per_batch * world_size > len(self.classes):
            raise ValueError(
                f"classes_per_batch={classes_per_batch} x world_size={world_size} exceeds the "
                f"{len(self.classes)} classes in the labels (each process needs its own classes per step)"
            )
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse))[:-1]
        self.members = np.split(order, bounds)  # item indices of each class
        self.classes_per_batch, self.samples_per_class = classes_per_batch, samples_per_class
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch, self.start_batch = 0, 0

    def __len__(self) -> int:
        """Batches in one epoch (each process gets as many)."""
        return len(self.classes) // (self.classes_per_batch * self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Start of epoch `epoch` (its own class permutation and draws)."""
        self.epoch, self.start_batch = int(epoch), 0

    def state_dict(self) -> dict[str, int]:
        """The position: the next batch to hand out. A DataLoader fetches batches ahead of training
        (workers, prefetching), so a trainer should record the batches it consumed instead and
        restore those with load_state_dict."""
        return {"epoch": self.epoch, "batch": self.start_batch, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(f"sampler state is for seed {state['seed']}, this sampler has seed {self.seed}")
        if not 0 <= int(state["batch"]) <= len(self):
            raise ValueError(f"sampler state batch {state['batch']} is outside an epoch of {len(self)} batches")
        self.epoch, self.start_batch = int(state["epoch"]), int(state["batch"])

    def batch(self, epoch: int, index: int) -> list[int]:
        """Item indices of batch `index` of `epoch` for this process."""
        perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.classes))
        first = (index * self.world_size + self.rank) * self.classes_per_batch
        rng = np.random.default_rng([self.seed, epoch, index, self.rank, 1])
        k = self.samples_per_class
        out: list[int] = []
        for c in perm[first : first + self.classes_per_batch]:
            members = self.members[c]
            if len(members) >= k:
                chosen = rng.choice(members, size=k, replace=False)
            else:  # all of them, then repeats
                chosen = np.concatenate([rng.permutation(members), rng.choice(members, size=k - len(members))])
            out.extend(int(i) for i in chosen)
        return out

    def __iter__(self) -> Iterator[list[int]]:
        epoch = self.epoch
        while self.start_batch < len(self):
            index = self.start_batch
            self.start_batch += 1  # counted before yielding: a checkpoint taken now resumes after it
            yield self.batch(epoch, index)
        self.epoch, self.start_batch = epoch + 1, 0  # a finished pass: the next one is a new epoch


class SeededBatch(list):
    """A batch's item indices with the seed of its augmentation draws in a loader worker."""

    def __init__(self, indices: list[int], seed: int) -> None:
        super().__init__(indices)
        self.seed = seed


class RunBatches:
    """A sampler's batches from (epoch, batch) on, epoch after epoch without end: the batch_sampler
    of one DataLoader (and one set of workers) for a whole run, however short its epochs.

    Each batch carries a seed drawn from (seed, epoch, batch, rank), so that in a loader worker its
    augmentation draws do not depend on which worker takes it or what that worker did before
    (SeededItems): resuming with workers is exact, and the number of workers changes nothing.
    """

    def __init__(self, sampler: ClassBalancedBatchSampler, epoch: int = 0, batch: int = 0) -> None:
        self.sampler, self.epoch, self.batch = sampler, int(epoch), int(batch)

    def __iter__(self) -> Iterator[SeededBatch]:
        s, epoch, index = self.sampler, self.epoch, self.batch
        while True:
            if index >= len(s):  # a finished epoch (a checkpoint taken at its end): the next one
                epoch, index = epoch + 1, 0
                continue
            seed = int(np.random.SeedSequence([s.seed, epoch, index, s.rank, 2]).generate_state(1)[0])
            yield SeededBatch(s.batch(epoch, index), seed)
            index += 1


class SeededItems(Dataset):
    """A dataset whose batches, fetched in a loader worker, draw from their SeededBatch's seed.

    In the main process (num_workers 0) the draws come from the process's own generators, which
    checkpoints save: the seeds are used only where the generators are a worker's.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[index]

    def __getitems__(self, batch: list[int]) -> list:
        seed = getattr(batch, "seed", None)
        if seed is not None and get_worker_info() is not None:
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
        return [self.dataset[i] for i in batch]
