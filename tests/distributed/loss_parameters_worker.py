"""Runs in each spawned process: `build_run` + `train_step` on 2 processes (each its share of a
global batch) against one process on the whole batch, for a loss with parameters (proxy-NCA)."""

from __future__ import annotations

import gc
import os

import torch
import torch.distributed as dist

from ranklist.collectives import gather_objects
from ranklist.data import ClassBalancedBatchSampler
from ranklist.training import TrainState, build_run, load_config, train_step


def check(rank: int, world: int) -> None:
    config = load_config(os.environ["RECIPE"], ["loss.name=proxy_nca", "loss.params={softmax_scale: 5.0}"])
    single, shared = build_run(config, 0, 1), build_run(config, rank, world)
    for run in (single, shared):  # batch norms on running statistics: per-process batch statistics would differ
        run.model.eval()
    d = config.data
    labels = shared.splits.train.labels
    samplers = [
        ClassBalancedBatchSampler(labels, d.classes_per_batch, d.samples_per_class, seed=1, rank=r, world_size=world)
        for r in range(world)
    ]
    states = TrainState(), TrainState()
    for step in range(3):
        parts = [torch.as_tensor(labels[s.batch(step, 0)]) for s in samplers]
        images = torch.randn(
            sum(len(p) for p in parts), 3, d.image_size, d.image_size, generator=torch.Generator().manual_seed(step)
        )
        mine = slice(sum(len(p) for p in parts[:rank]), sum(len(p) for p in parts[: rank + 1]))
        train_step(single, states[0], (images, torch.cat(parts)))
        train_step(shared, states[1], (images[mine], parts[rank]))
    proxies = [p for p in shared.losses.parameters()]
    assert proxies, "proxy-NCA has parameters"
    for name, want, got in [
        *zip(("model",) * 999, single.model.parameters(), shared.model.parameters()),
        *zip(("loss",) * 999, single.losses.parameters(), proxies),
    ]:
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=f"{name} parameter on rank {rank}")
    everyone = gather_objects([p.detach().clone() for p in proxies])
    assert all(torch.equal(a, b) for a, b in zip(everyone[0], everyone[-1])), "proxies differ between processes"


def main() -> None:
    dist.init_process_group(
        "gloo",
        init_method=os.environ["INIT_METHOD"],
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
    )
    check(dist.get_rank(), dist.get_world_size())
    gc.collect()  # the DDP reducer goes before the group
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
