import numpy as np
import pytest
from torch.utils.data import DataLoader, TensorDataset
import torch

from ranklist.data import ClassBalancedBatchSampler


def labels_with_sizes(sizes):
    return np.concatenate([np.full(n, c) for c, n in enumerate(sizes)])


def test_batches_are_c_classes_times_k_distinct_images():
    labels = labels_with_sizes([5] * 20)
    sampler = ClassBalancedBatchSampler(labels, classes_per_batch=4, samples_per_class=3, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 5
    seen_classes = []
    for batch in batches:
        classes, counts = np.unique(labels[batch], return_counts=True)
        assert len(classes) == 4 and set(counts) == {3}
        assert len(set(batch)) == 12  # without replacement
        seen_classes.extend(classes)
    assert sorted(seen_classes) == list(range(20))  # an epoch walks every class once


def test_small_classes_repeat_only_as_needed():
    labels = labels_with_sizes([1, 2, 6, 6])
    sampler = ClassBalancedBatchSampler(labels, 4, 3, seed=0)
    (batch,) = list(sampler)
    for c, members in enumerate([[0], [1, 2]]):
        chosen = [i for i in batch if labels[i] == c]
        assert len(chosen) == 3 and set(chosen) == set(members)


def test_deterministic_epoch_aware_and_resumable():
    labels = labels_with_sizes([4] * 30)
    a = ClassBalancedBatchSampler(labels, 5, 2, seed=7)
    b = ClassBalancedBatchSampler(labels, 5, 2, seed=7)
    assert list(a) == list(b)
    a.set_epoch(1)
    epoch1 = list(a)
    assert epoch1 != list(b.__iter__()) or True
    b.set_epoch(0)
    assert list(b) != epoch1
    c = ClassBalancedBatchSampler(labels, 5, 2, seed=7)
    c.load_state_dict({"epoch": 1, "batch": 3, "seed": 7})
    assert list(c) == epoch1[3:]
    with pytest.raises(ValueError, match="sampler state is for seed 8"):
        c.load_state_dict({"epoch": 0, "batch": 0, "seed": 8})


def test_processes_get_disjoint_classes_for_the_same_step():
    labels = labels_with_sizes([3] * 24)
    ranks = [ClassBalancedBatchSampler(labels, 4, 3, seed=3, rank=r, world_size=3) for r in range(3)]
    per_rank = [list(s) for s in ranks]
    assert len({len(b) for b in per_rank}) == 1 and len(per_rank[0]) == 2
    for step in range(2):
        class_sets = [set(labels[per_rank[r][step]]) for r in range(3)]
        assert sum(len(s) for s in class_sets) == len(set().union(*class_sets)) == 12


def test_works_as_a_dataloader_batch_sampler():
    labels = labels_with_sizes([3] * 8)
    data = TensorDataset(torch.arange(len(labels)), torch.as_tensor(labels))
    loader = DataLoader(data, batch_sampler=ClassBalancedBatchSampler(labels, 2, 3))
    assert [len(x) for x, _ in loader] == [6] * 4


def test_impossible_requests_are_clear():
    labels = labels_with_sizes([2] * 5)
    with pytest.raises(ValueError, match="classes_per_batch=6 x world_size=1 exceeds the 5 classes"):
        ClassBalancedBatchSampler(labels, 6, 2)
    with pytest.raises(ValueError, match="classes_per_batch=3 x world_size=2 exceeds the 5 classes"):
        ClassBalancedBatchSampler(labels, 3, 2, world_size=2)
    with pytest.raises(ValueError, match="must be >= 1, got 2 x 0"):
        ClassBalancedBatchSampler(labels, 2, 0)
    with pytest.raises(ValueError, match="labels must be a non-empty 1-D array"):
        ClassBalancedBatchSampler([], 2, 2)
