"""Time per training step with and without RLL's cross-batch memory; prints JSON.

The study protocol of docs/results.md (the demo recipe at 64 px: EfficientNet-Lite0, RLL-(L,M,H),
32 x 4 batches of the offline emoji benchmark, 2 threads), one model and optimiser, and the two
losses in alternation, step by step: a loaded machine slows both alike, so their ratio holds. A
step is forward, the three levels' losses, backward and the optimiser step; the loss alone is timed
too (forward + backward on the step's embeddings). The memory is full (1,024 embeddings) from the
first timed step: its cost does not depend on what it holds.

    python benchmarks/memory_step.py                 # 15 timed steps of each
    python benchmarks/memory_step.py --steps 5 --memory-size 4096
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace

import torch

from ranklist.reporting.provenance import hardware
from ranklist.training import load_config
from ranklist.training.run import build_level_losses, build_run
from ranklist.training.state import TrainState, train_step

OVERRIDES = ["data.image_size=64", "train.threads=2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--memory-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    config = load_config("configs/demo.yaml", [*OVERRIDES, f"train.threads={args.threads}"])
    plain = build_run(config)  # the trainer's own parts and step
    model, train = plain.model, plain.splits.train
    config.loss.memory_size, config.loss.memory_warmup = args.memory_size, 0
    memory = replace(plain, losses=build_level_losses(config, model.embedding_dims, len(set(train.labels.tolist()))))
    batches = (indices for _ in iter(int, 1) for indices in plain.sampler)  # epoch after epoch
    state = TrainState()

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        items = [train[i] for i in next(batches)]
        return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])

    def step(run, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
        start = time.perf_counter()
        train_step(run, state, (images, labels))
        total = time.perf_counter() - start
        with torch.no_grad():  # the loss alone, once more on the step's embeddings (forward + backward)
            outputs = model(images.to(memory_format=plain.memory_format))
        detached = {level: outputs[level].detach().requires_grad_(True) for level in model.levels}
        start = time.perf_counter()
        sum(run.losses[level](detached[level], labels) for level in model.levels).backward()
        return total, time.perf_counter() - start

    model.train()
    while memory.losses[model.levels[0]].filled < args.memory_size:  # fill the memory (untimed)
        images, labels = batch()
        with torch.no_grad():
            outputs = model(images)
        for level in model.levels:
            memory.losses[level].enqueue(outputs[level], labels)
    times: dict[str, list[tuple[float, float]]] = {"plain": [], "memory": []}
    for index in range(args.steps + 2):  # two warm-up rounds
        images, labels = batch()
        order = ("plain", "memory") if index % 2 == 0 else ("memory", "plain")
        for name in order:
            result = step(plain if name == "plain" else memory, images, labels)
            if index >= 2:
                times[name].append(result)

    def summary(name: str) -> dict[str, float]:
        return {
            "step_s": round(statistics.median(t for t, _ in times[name]), 4),
            "loss_s": round(statistics.median(t for _, t in times[name]), 5),
        }

    plain_s, memory_s = summary("plain"), summary("memory")
    print(
        json.dumps(
            {
                "recipe": f"configs/demo.yaml {' '.join(OVERRIDES)}",
                "batch": config.data.classes_per_batch * config.data.samples_per_class,
                "memory_size": args.memory_size,
                "timed_steps_each": args.steps,
                "plain": plain_s,
                "memory": memory_s,
                "step_ratio_memory_vs_plain": round(memory_s["step_s"] / plain_s["step_s"], 3),
                "loss_ratio_memory_vs_plain": round(memory_s["loss_s"] / plain_s["loss_s"], 3),
                "hardware": hardware(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
