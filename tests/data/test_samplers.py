import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ranklist.data import ClassBalancedBatchSampler


def labels_with_sizes(sizes):
    return np.concatenate([np.full(n, c) for c, n in enumerate(sizes)])


def test_batches_are_c_classes_times_k_distinct_images():
    labels = labels_with_sizes([5] * 20 + [1])
    sampler = ClassBalancedBatchSampler(labels, classes_per_batch=4, samples_per_class=3, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 5  # 21 classes // 4: one class sits out this epoch
    seen_classes = []
    for batch in batches:
        classes, counts = np.unique(labels[batch], return_counts=True)
        assert len(batch) == 12 and len(classes) == 4 and set(counts) == {3}
        if 20 not in classes:
            assert len(set(batch)) == 12  # without replacement
        seen_classes.extend(classes)
    assert len(set(seen_classes)) == 20  # an epoch walks every class at most once


def test_small_classes_repeat_only_as_needed():
    labels = labels_with_sizes([1, 2, 6, 6])
    sampler = ClassBalancedBatchSampler(labels, 4, 3, seed=0)
    (batch,) = list(sampler)
    for c, members in enumerate([[0], [1, 2]]):
        chosen = [i for i in batch if labels[i] == c]
        assert len(chosen) == 3 and set(chosen) == set(members)  # every member, then repeats
    for c in (2, 3):
        assert len({i for i in batch if labels[i] == c}) == 3


def test_every_class_is_drawn_evenly_over_epochs():
    labels = labels_with_sizes([4] * 10)
    sampler = ClassBalancedBatchSampler(labels, 3, 2, seed=0)
    counts = np.zeros(len(labels))
    for _ in range(300):  # iterating again continues with the next epoch
        for batch in sampler:
            np.add.at(counts, batch, 1)
    assert sampler.epoch == 300
    expected = 300 * 3 * 3 * 2 / len(labels)  # epochs x batches x C x K spread over all items
    assert np.all(np.abs(counts - expected) < 0.2 * expected)


def test_deterministic_and_epoch_aware():
    labels = labels_with_sizes([4] * 30)
    a, b = ClassBalancedBatchSampler(labels, 5, 2, seed=7), ClassBalancedBatchSampler(labels, 5, 2, seed=7)
    epoch0 = list(a)
    assert epoch0 == list(b)
    assert list(a) != epoch0  # the next pass is epoch 1: another permutation
    a.set_epoch(0)
    assert list(a) == epoch0
    assert list(ClassBalancedBatchSampler(labels, 5, 2, seed=8)) != epoch0


def test_resumes_mid_epoch_bit_for_bit():
    labels = labels_with_sizes([3] * 40)
    full = ClassBalancedBatchSampler(labels, 4, 3, seed=2)
    full.set_epoch(3)
    expected = list(full)
    interrupted = ClassBalancedBatchSampler(labels, 4, 3, seed=2)
    interrupted.set_epoch(3)
    iterator = iter(interrupted)
    first = [next(iterator) for _ in range(4)]
    state = interrupted.state_dict()
    assert state == {"epoch": 3, "batch": 4, "seed": 2}
    resumed = ClassBalancedBatchSampler(labels, 4, 3, seed=2)
    resumed.load_state_dict(state)
    assert first + list(resumed) == expected
    with pytest.raises(ValueError, match="sampler state is for seed 8"):
        resumed.load_state_dict({"epoch": 0, "batch": 0, "seed": 8})
    with pytest.raises(ValueError, match="batch 11 is outside an epoch of 10 batches"):
        resumed.load_state_dict({"epoch": 0, "batch": 11, "seed": 2})


def test_processes_get_disjoint_classes_for_the_same_step():
    labels = labels_with_sizes([3] * 26)
    ranks = [ClassBalancedBatchSampler(labels, 4, 3, seed=3, rank=r, world_size=3) for r in range(3)]
    per_rank = [list(s) for s in ranks]
    assert [len(b) for b in per_rank] == [len(s) for s in ranks] == [2, 2, 2]  # 26 // 12 on every process
    classes = [set(labels[per_rank[r][step]]) for step in range(2) for r in range(3)]
    assert all(len(c) == 4 for c in classes) and len(set().union(*classes)) == 24  # all disjoint
    single = ClassBalancedBatchSampler(labels, 12, 3, seed=3)  # the same draw, cut in three
    assert set(labels[next(iter(single))]) == set().union(*classes[:3])


def test_works_as_a_dataloader_batch_sampler():
    labels = labels_with_sizes([3] * 8)
    data = TensorDataset(torch.arange(len(labels)), torch.as_tensor(labels))
    loader = DataLoader(data, batch_sampler=ClassBalancedBatchSampler(labels, 2, 3))
    batches = [(x, y) for x, y in loader]
    assert [len(x) for x, _ in batches] == [6] * 4
    assert all(torch.equal(y, torch.as_tensor(labels)[x]) for x, y in batches)


def test_impossible_requests_are_clear():
    labels = labels_with_sizes([2] * 5)
    with pytest.raises(ValueError, match="classes_per_batch=6 x world_size=1 exceeds the 5 classes"):
        ClassBalancedBatchSampler(labels, 6, 2)
    with pytest.raises(ValueError, match="classes_per_batch=3 x world_size=2 exceeds the 5 classes .*each process"):
        ClassBalancedBatchSampler(labels, 3, 2, world_size=2)
    with pytest.raises(ValueError, match="must be >= 1, got 2 x 0"):
        ClassBalancedBatchSampler(labels, 2, 0)
    with pytest.raises(ValueError, match="labels must be a non-empty 1-D array"):
        ClassBalancedBatchSampler([], 2, 2)
    with pytest.raises(ValueError, match="need 0 <= rank < world_size, got rank=2, world_size=2"):
        ClassBalancedBatchSampler(labels, 2, 2, rank=2, world_size=2)
