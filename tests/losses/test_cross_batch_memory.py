import pytest
import torch

from ranklist import RankedListLoss, ranked_list_loss
from ranklist.losses.cross_batch_memory import CrossBatchMemory


def batch(n, seed, classes=4):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g, dtype=torch.float64), torch.randint(0, classes, (n,), generator=g)


def test_ring_buffer_keeps_the_most_recent_items_in_order():
    memory = CrossBatchMemory(RankedListLoss(), size=5)
    for step in range(3):
        memory.enqueue(torch.full((2, 3), float(step)), torch.tensor([step, step]))
    emb, labels = memory.memory()
    assert labels.tolist() == [0, 1, 1, 2, 2] and emb[:, 0].tolist() == [0, 1, 1, 2, 2]
    memory.enqueue(torch.arange(7.0)[:, None].repeat(1, 3), torch.arange(7))  # larger than the memory
    assert memory.memory()[1].tolist() == [2, 3, 4, 5, 6]


def test_empty_memory_and_warmup_equal_the_plain_loss():
    memory = CrossBatchMemory(RankedListLoss(), size=50, warmup_iterations=2)
    for seed in range(2):  # call 1: empty memory; call 2: still warming up
        x, y = batch(8, seed)
        torch.testing.assert_close(memory(x, y), ranked_list_loss(x, y))
    assert memory.filled == 16


def test_memory_extends_each_ranked_list_and_gets_no_gradient():
    memory = CrossBatchMemory(RankedListLoss(gradient="full"), size=20)
    old_x, old_y = batch(12, 1)
    memory(old_x, old_y)
    x, y = batch(8, 2)
    x = x.requires_grad_(True)
    got = memory(x, y)
    refs = torch.cat([x, old_x])
    want = ranked_list_loss(
        x, y, ref_emb=refs, ref_labels=torch.cat([y, old_y]), self_index=torch.arange(8), gradient="full"
    )
    torch.testing.assert_close(got, want)
    assert memory.filled == 20 and not memory.embeddings.requires_grad


def test_bad_sizes():
    with pytest.raises(ValueError, match="need size >= 1 and warmup_iterations >= 0, got size=0"):
        CrossBatchMemory(RankedListLoss(), size=0)


def test_a_saved_memory_loads_into_a_fresh_one_and_continues_identically():
    memory = CrossBatchMemory(RankedListLoss(), size=10, warmup_iterations=1)
    for seed in range(3):
        memory(*batch(4, seed))
    fresh = CrossBatchMemory(RankedListLoss(), size=10, warmup_iterations=1)  # empty buffers, as on --resume
    fresh.load_state_dict(memory.state_dict())
    for key, value in memory.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[key]), key
    x, y = batch(4, 9)
    assert torch.equal(memory(x, y), fresh(x, y)) and torch.equal(memory.memory()[0], fresh.memory()[0])


def test_a_saved_memory_of_another_size_is_refused_by_name():
    memory = CrossBatchMemory(RankedListLoss(), size=10)
    memory(*batch(4, 0))
    with pytest.raises(RuntimeError, match="embeddings holds 10 rows but this cross-batch memory has size 6"):
        CrossBatchMemory(RankedListLoss(), size=6).load_state_dict(memory.state_dict())
