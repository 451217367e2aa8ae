"""Runs in each of the spawned processes: distributed results against the 1-process reference."""

from __future__ import annotations

import gc
import os

import torch
import torch.distributed as dist

from ranklist import ranked_list_loss
from ranklist.losses.distributed import distributed_ranked_list_loss

CASES = [(g, r, False) for g in ("query", "full") for r in ("mean", "sum", "official")]
CASES += [("query", "official", True), ("full", "mean", True), ("full", "official", True)]  # weights differentiated


def global_batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(24, 6, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 5, (24,), generator=g)
    weight = torch.randn(6, 8, generator=g, dtype=torch.float64)
    return x, labels, weight


def local_rows(rank: int, world: int, n: int):
    sizes = [10, 14] if world == 2 else [n]  # uneven on purpose
    start = sum(sizes[:rank])
    return slice(start, start + sizes[rank])


def check(rank: int, world: int) -> None:
    x, labels, weight = global_batch()
    rows = local_rows(rank, world, len(x))
    for gradient, reduction, weight_gradient in CASES:
        options = dict(gradient=gradient, reduction=reduction, neg_temperature=5.0, weight_gradient=weight_gradient)
        # one process, the whole batch
        w1 = weight.clone().requires_grad_(True)
        want = ranked_list_loss(x @ w1, labels, **options)
        want.backward()
        # this process's share; then what DDP does: average parameter gradients
        w2 = weight.clone().requires_grad_(True)
        local = distributed_ranked_list_loss(x[rows] @ w2, labels[rows], **options)
        local.backward()
        grad = w2.grad.clone()
        dist.all_reduce(grad)
        grad /= world
        value = local.detach().clone()
        dist.all_reduce(value)
        value /= world
        torch.testing.assert_close(value, want.detach(), msg=f"loss {gradient}/{reduction}/{weight_gradient}")
        torch.testing.assert_close(grad, w1.grad, msg=f"gradient {gradient}/{reduction}/{weight_gradient}")
    train_steps(rank, world)
    sharded_evaluation(rank, world)


def sharded_evaluation(rank: int, world: int) -> None:
    """Each process embeds a shard; all receive the whole split in order, from rank 0's model."""
    from torch.utils.data import TensorDataset

    from ranklist.collectives import broadcast_state, gather_objects
    from ranklist.evaluation import Evaluator, embed_dataset
    from ranklist.models import build_model

    torch.manual_seed(0)
    model = build_model("small_cnn", pretrained=False, embedding_dim=5, image_size=16).to(
        memory_format=torch.channels_last
    )
    with torch.no_grad():  # what DDP leaves behind: batch-norm statistics that differ per process
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.add_(rank)
    want_state = {k: v.clone() for k, v in model.state_dict().items()} if rank == 0 else None
    broadcast_state(model)
    reference = gather_objects(want_state)[0]
    for key, value in model.state_dict().items():
        assert torch.equal(value, reference[key]), key
    assert gather_objects(rank * 10) == [r * 10 for r in range(world)]

    g = torch.Generator().manual_seed(3)
    for n in (41, 1):  # uneven shards; fewer items than processes (every process embeds it all)
        data = TensorDataset(torch.randn(n, 3, 16, 16, generator=g), torch.arange(n) % 7)
        embedded = Evaluator(batch_size=6, progress=False, distributed=True).embed(model, data)
        outputs, labels = embedded.outputs, embedded.labels
        want, want_labels = embed_dataset(model, data, batch_size=6, progress=False)
        assert torch.equal(labels, want_labels)
        for level in want:
            torch.testing.assert_close(outputs[level], want[level], rtol=1e-5, atol=1e-6, msg=f"n={n} level {level}")


def train_steps(rank: int, world: int) -> None:
    """A few SGD steps of a DDP-wrapped linear model on disjoint classes equal the 1-process run."""
    from torch.nn.parallel import DistributedDataParallel

    from ranklist.data import ClassBalancedBatchSampler

    g = torch.Generator().manual_seed(1)
    x = torch.randn(60, 6, generator=g)
    labels = torch.arange(20).repeat_interleave(3)
    torch.manual_seed(0)
    single = torch.nn.Linear(6, 8)
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(6, 8))
    opt_single = torch.optim.SGD(single.parameters(), lr=0.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    samplers = [ClassBalancedBatchSampler(labels.numpy(), 4, 3, seed=2, rank=r, world_size=world) for r in range(world)]
    for batches in zip(*[iter(s) for s in samplers]):
        whole = [i for b in batches for i in b]
        loss = ranked_list_loss(single(x[whole]), labels[whole])
        opt_single.zero_grad()
        loss.backward()
        opt_single.step()
        mine = batches[rank]
        local = distributed_ranked_list_loss(model(x[mine]), labels[mine])
        opt.zero_grad()
        local.backward()
        opt.step()
    for a, b in zip(single.parameters(), model.module.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def main() -> None:
    dist.init_process_group(
        "gloo",
        init_method=os.environ["INIT_METHOD"],
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
    )
    check(dist.get_rank(), dist.get_world_size())
    # Tear down only when both ranks are done, after the DDP reducer is gone: destroying the group
    # under a live reducer or a peer still communicating aborts the process at exit.
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
