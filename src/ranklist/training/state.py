"""TrainState: exactly what a checkpoint holds beside the weights, and the step that advances it."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ranklist.collectives import average_gradients, gather_objects
from ranklist.errors import TrainingDiverged
from ranklist.evaluation.metric_names import RECALL_AT_1, validation_key
from ranklist.models import model_checkpoint
from ranklist.training.config import OptimConfig
from ranklist.training.run import Run

SELECTION_METRIC = validation_key(RECALL_AT_1)


@dataclass
class Best:
    """The selected model: the validation step with the highest SELECTION_METRIC."""

    step: int | None = None
    metric: str = SELECTION_METRIC
    value: float = -math.inf


@dataclass
class TrainState:
    """Where training stands (step, epoch, batch, best model) and the RNG states to resume with."""

    step: int = 0  # iterations done
    epoch: int = 0
    batch: int = 0  # batches done in this epoch
    best: Best = field(default_factory=Best)
    rng: list[dict[str, Any]] | None = None  # every process's RNG states, as last saved

    def to_checkpoint(self, run: Run) -> dict[str, Any]:
        """The weights, the optimiser, schedule and losses' state, and this state (collective: every
        process must call it, for its RNG state)."""
        rng = gather_objects(rng_state())  # every process's, so that a resumed DDP run is exact
        return {
            **model_checkpoint(run.model),
            "loss_state": run.losses.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batch": self.batch,
            "best": asdict(self.best),
            "rng": rng,
            "config": asdict(run.config),
        }

    @classmethod
    def restore(cls, run: Run, checkpoint: dict[str, Any]) -> TrainState:
        """Load a checkpoint's states into the run's parts and this process's RNG; the state itself."""
        run.model.load_state_dict(checkpoint["model_state"])
        run.losses.load_state_dict(checkpoint["loss_state"])
        run.optimizer.load_state_dict(checkpoint["optimizer"])
        run.scheduler.load_state_dict(checkpoint["scheduler"])
        rng = checkpoint["rng"]
        if len(rng) != run.world:  # each process's own augmentation draws continue
            raise ValueError(
                f"the run was checkpointed by {len(rng)} process(es) and cannot resume exactly with {run.world}; "
                f"resume it with {len(rng)}"
            )
        set_rng_state(rng[run.rank])
        return cls(checkpoint["step"], checkpoint["epoch"], checkpoint["batch"], Best(**checkpoint["best"]), rng)


def rng_state() -> dict[str, Any]:
    """This process's generators: Python's, numpy's, torch's CPU one and every CUDA device's
    (drop-connect and drop-path draw on the model's device)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the Python, NumPy, torch (and CUDA, where present) generators from a checkpoint."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []  # none in checkpoints from before CUDA states were kept
    if cuda and torch.cuda.is_available():  # the devices both machines have
        for index, generator in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(generator, index)


def train_step(run: Run, state: TrainState, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
    """One optimisation step on a C x K batch: forward, one loss per level summed, backward, clip,
    optimiser and schedule; advances state's counters and returns the loss."""
    images, labels = batch
    # non_blocking: asynchronous from the loader's pinned memory on CUDA (a plain copy elsewhere)
    images = images.to(run.device, memory_format=run.memory_format, non_blocking=True)
    labels = labels.to(run.device, non_blocking=True)
    optim = run.config.optim
    # bfloat16 on every device: float16 without a gradient scaler lets small gradients underflow.
    with torch.autocast(run.device.type, enabled=run.precision.train == "bf16", dtype=torch.bfloat16):
        outputs = run.train_model(images)
    try:
        loss = sum(run.losses[level](outputs[level].float(), labels) for level in run.model.levels)
    except ValueError:  # a loss refuses non-finite embeddings: say why they are (checked only on this path)
        if all(torch.isfinite(outputs[level]).all() for level in run.model.levels):
            raise
        raise diverged(state.step, optim) from None
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if run.world > 1:  # DDP averages the model's gradients; a loss's own parameters (proxies) likewise
        average_gradients(run.losses.parameters())
    if optim.grad_clip:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), optim.grad_clip)
    run.optimizer.step()
    run.scheduler.step()
    value = float(loss.detach())
    if not math.isfinite(value):
        raise diverged(state.step, optim)
    state.step += 1
    state.batch += 1
    return value


def diverged(step: int, optim: OptimConfig) -> TrainingDiverged:
    """The error for a non-finite loss or embedding at `step`, saying what to change."""
    return TrainingDiverged(
        f"training diverged at step {step + 1}: the loss or the embeddings are no longer finite (NaN or inf); "
        f"lower optim.lr (now {optim.lr:g}), set optim.grad_clip (e.g. 10) or lengthen optim.warmup_iterations; "
        "the last checkpoint saved is intact"
    )
