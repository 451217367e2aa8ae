"""A run assembled from its parts: build_run(config) -> Run (model, losses, optimiser, schedule,
sampler, splits, evaluators), with everything knowable before the first iteration checked here.

The order of the random draws (model initialisation, then the per-process seed, the splits and the
losses) is part of the recipe: a run is reproducible bit for bit, so it must not change.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ranklist.collectives import broadcast_state
from ranklist.data import ClassBalancedBatchSampler, Preprocessing, build_dataset, dataset_spec, evaluation_splits
from ranklist.data.folds import fold_splits
from ranklist.evaluation import Evaluator
from ranklist.losses import build_loss
from ranklist.losses.cross_batch_memory import CrossBatchMemory
from ranklist.losses.distributed import DistributedRankedListLoss
from ranklist.models import EmbeddingModel, Inference, build_model, parameter_groups
from ranklist.training.config import ConfigError, RunConfig
from ranklist.training.determinism import make_deterministic
from ranklist.training.distributed import local_rank
from ranklist.training.optimizers import build_optimizer
from ranklist.training.precision import Precisions, resolve_precisions
from ranklist.training.preflight import (
    check_class_disjoint,
    check_findable,
    check_images,
    check_ks,
    process_device,
    resolve_device,
)


@dataclass
class RunSplits:
    """The datasets of a run: train, val (model selection; None without), and the test queries
    searching each other (gallery None) or the gallery; queries None in a tuning fold (data.folds)."""

    train: Dataset
    val: Dataset | None
    queries: Dataset | None
    gallery: Dataset | None

    def named(self) -> dict[str, Dataset]:
        """{"train", "val", "test", "gallery"} for the splits present (the names summaries report)."""
        named = {"train": self.train, "val": self.val, "test": self.queries, "gallery": self.gallery}
        return {name: split for name, split in named.items() if split is not None}


@dataclass(kw_only=True)
class Run:
    """Everything one process of a run works with, assembled by build_run."""

    config: RunConfig
    device: torch.device
    rank: int
    world: int
    model: EmbeddingModel
    train_model: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    losses: torch.nn.ModuleDict  # one loss per level
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    sampler: ClassBalancedBatchSampler
    splits: RunSplits
    evaluator: Evaluator  # the final test (and the pretrained baseline)
    val_evaluator: Evaluator  # model selection: Recall@1 only
    precision: Precisions  # what each forward computes in (the precision section resolved)

    @property
    def lead(self) -> bool:
        """The process that evaluates and writes."""
        return self.rank == 0

    @property
    def memory_format(self) -> torch.memory_format:
        return model_memory_format(self.config)

    @property
    def batch_size(self) -> int:
        """Images per step over every process."""
        return self.config.data.classes_per_batch * self.config.data.samples_per_class * self.world


def model_memory_format(config: RunConfig) -> torch.memory_format:
    """The memory format the model and its batches use (channels-last unless switched off)."""
    return torch.channels_last if config.train.channels_last else torch.contiguous_format


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_run_model(config: RunConfig) -> EmbeddingModel:
    """The model, carrying the run's preprocessing record (saved with it in every checkpoint)."""
    m = config.model
    model = build_model(
        m.backbone,
        embedding_dim=m.embedding_dim,
        levels=m.levels,
        pretrained=m.weights or m.pretrained,
        freeze_bn=m.freeze_bn,
        image_size=config.data.image_size,
        freeze_blocks=m.freeze_blocks,
        gradient_checkpointing=m.gradient_checkpointing,
    )
    model.preprocessing = Preprocessing.from_config(config.data, model.normalization)
    return model


def build_splits(config: RunConfig, preprocessing: Preprocessing) -> RunSplits:
    """The run's splits, each transformed by the one preprocessing record; the test protocol is the dataset's own."""
    d = config.data
    options: dict[str, Any] = {
        "val_fraction": d.val_fraction,
        **{key: getattr(d, key) for key in dataset_spec(d.name).run_options},
    }
    train_tf, test_tf = preprocessing.transform(train=True), preprocessing.transform(train=False)

    def split(name: str, transform) -> Dataset:
        return build_dataset(d.name, name, root=d.root, transform=transform, **options)

    if d.folds:  # tuning: one fold of the training classes validates, the others train; the test split is never built
        train, val = fold_splits(
            split("trainval", None), d.folds, d.fold, train_transform=train_tf, val_transform=test_tf
        )
        return RunSplits(train, val, None, None)
    has_val = d.val_fraction > 0
    protocol = evaluation_splits(d.name, d.root)
    return RunSplits(
        split("train" if has_val else "trainval", train_tf),
        split("val", test_tf) if has_val else None,
        split(protocol.queries, test_tf),
        split(protocol.gallery, test_tf) if protocol.gallery else None,
    )


def build_level_losses(
    config: RunConfig, dims: dict[str, int], num_classes: int, world: int = 1
) -> torch.nn.ModuleDict:
    """One loss per embedding level (summed with weight 1); proxies differ per level.

    Across processes RLL ranks each process's queries against the gathered global batch; the
    baselines see each process's own batch (DDP averages their gradients).
    """
    loss = config.loss

    def one(dim: int) -> torch.nn.Module:
        built = build_loss(loss.name, embedding_dim=dim, num_classes=num_classes, preset=loss.preset, **loss.params)
        if loss.name != "rll":
            return built
        if world > 1:
            if loss.memory_size:
                raise ConfigError(
                    "loss.memory_size (cross-batch memory) is not supported across processes; "
                    "the gathered batch already extends each list"
                )
            return DistributedRankedListLoss(**built.options)
        return CrossBatchMemory(built, loss.memory_size, loss.memory_warmup) if loss.memory_size else built

    return torch.nn.ModuleDict({level: one(dim) for level, dim in dims.items()})


def _optimizer(config: RunConfig, model: EmbeddingModel, losses: torch.nn.ModuleDict):
    o = config.optim
    groups = parameter_groups(
        model, lr=o.lr, new_layer_lr_mult=o.new_layer_lr_mult, weight_decay=o.weight_decay, layer_decay=o.layer_decay
    )
    loss_params = list(losses.parameters())
    if loss_params:  # proxies are new layers too
        groups.append({"name": "loss", "params": loss_params, "lr": o.lr * o.new_layer_lr_mult, "weight_decay": 0.0})
    return build_optimizer(groups, o)


def build_run(config: RunConfig, rank: int = 0, world: int = 1, *, progress: bool = False) -> Run:
    """Every part of a run, checked: a bad device, data, batch or K fails here, before any training."""
    if config.train.deterministic:  # before any CUDA work: cuBLAS reads its workspace setting once
        make_deterministic()
    device = resolve_device(process_device(config.train.device, world, local_rank(rank)))
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    seed_everything(config.train.seed)
    model = build_run_model(config).to(device)
    model = model.to(memory_format=model_memory_format(config))
    precision = resolve_precisions(config.precision, model, device)
    seed_everything(config.train.seed + rank)  # own augmentation draws per process
    splits = build_splits(config, model.preprocessing)
    check_class_disjoint(splits)
    check_findable(splits)
    check_ks(config.eval.ks, splits)
    check_images(splits.named().items())
    sampler = ClassBalancedBatchSampler(
        splits.train.labels,
        config.data.classes_per_batch,
        config.data.samples_per_class,
        seed=config.train.seed,
        rank=rank,
        world_size=world,
    )
    losses = build_level_losses(config, model.embedding_dims, int(len(np.unique(splits.train.labels))), world).to(
        device
    )
    if world > 1:  # drawn after the per-process seed: every process starts from rank 0's (proxies)
        broadcast_state(losses)
    train_model: torch.nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer, scheduler = _optimizer(config, model, losses)
    # The checkpoints record how the run embeds, so that every later embedding of them does the same.
    model.inference = Inference(precision.eval, config.train.channels_last)
    # Every process embeds a shard of each evaluated split; the lead process scores it once.
    evaluator = Evaluator(
        batch_size=config.eval.batch_size,
        device=str(device),
        num_workers=config.data.num_workers,
        progress=progress,
        ks=tuple(config.eval.ks),
        compute_nmi=config.eval.nmi,
        seed=config.train.seed,
        distributed=world > 1,
        precision=model.inference.precision,
    )
    return Run(
        config=config,
        device=device,
        rank=rank,
        world=world,
        model=model,
        train_model=train_model,
        losses=losses,
        optimizer=optimizer,
        scheduler=scheduler,
        sampler=sampler,
        splits=splits,
        evaluator=evaluator,
        val_evaluator=replace(evaluator, ks=(1,), compute_nmi=False),
        precision=precision,
    )
