"""The training loop: the paper's protocol, iteration-based, resumable, writing a run folder.

SGD with momentum and weight decay over parameter groups (new layers at lr x new_layer_lr_mult),
warm-up then a multi-step schedule, one RLL per embedding level summed (docs/models.md),
class-balanced C x K batches. Validation on class-disjoint held-out training classes selects the
best checkpoint; the test split is evaluated once, at the end, with that checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ranklist.atomic import atomic_torch_save, atomic_write_text
from ranklist.collectives import barrier, broadcast_state, gather_objects
from ranklist.data import ClassBalancedBatchSampler, build_dataset, build_transform
from ranklist.evaluation import CONCAT, Evaluator
from ranklist.evaluation.evaluator import show_progress
from ranklist.losses import RankedListLoss, build_loss
from ranklist.losses.cross_batch_memory import CrossBatchMemory
from ranklist.losses.distributed import DistributedRankedListLoss
from ranklist.training.distributed import init_from_env
from ranklist.models import build_model, evaluation_embedding, load_model, model_checkpoint, parameter_groups
from ranklist.reporting import write_run_report, write_run_summary
from ranklist.training.config import RunConfig, config_to_yaml

SELECTION_METRIC = "val/recall@1"


class RunFolderError(ValueError):
    """The run folder cannot be used as asked (exists, or has nothing to resume)."""


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    return {"cpu": _cpu_name(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}


def source_commit() -> str | None:
    """The git commit of the ranklist source in use (with "+changes" when it is modified), if it is a checkout."""
    package = Path(__file__).resolve().parents[1]
    try:
        git = ["git", "-C", str(package)]
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, timeout=10).stdout.strip()
        changes = subprocess.run([*git, "status", "--porcelain", "--", "."], capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+changes" if changes else "")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def lr_factor(step: int, warmup: int, milestones: list[int], gamma: float) -> float:
    """Linear warm-up over `warmup` iterations, then lr x gamma at each milestone passed."""
    warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
    return warm * gamma ** sum(step >= m for m in milestones)


def build_level_losses(config: RunConfig, dims: dict[str, int], num_classes: int, world: int = 1) -> torch.nn.ModuleDict:
    """One loss per embedding level (docs/models.md: summed with weight 1); proxies differ per level.

    Across processes RLL ranks each process's queries against the gathered global batch; the
    baselines see each process's own batch (DDP averages their gradients).
    """
    loss = config.loss
    if loss.name != "rll":
        return torch.nn.ModuleDict({level: build_loss(loss.name, embedding_dim=dim, num_classes=num_classes, **loss.params)
                                    for level, dim in dims.items()})
    options = dict(margin=loss.margin, alpha=loss.alpha, neg_temperature=loss.neg_temperature, pos_temperature=loss.pos_temperature,
                   imbalance=loss.imbalance, reduction=loss.reduction, gradient=loss.gradient, **loss.params)
    if world > 1:
        if loss.memory_size:
            raise ValueError("loss.memory_size (cross-batch memory) is not supported across processes; the gathered batch already extends each list")
        return torch.nn.ModuleDict({level: DistributedRankedListLoss(**options) for level in dims})
    if loss.memory_size:
        return torch.nn.ModuleDict({level: CrossBatchMemory(RankedListLoss(**options), loss.memory_size, loss.memory_warmup)
                                    for level in dims})
    return torch.nn.ModuleDict({level: RankedListLoss(**options) for level in dims})


def build_run_model(config: RunConfig) -> torch.nn.Module:
    m = config.model
    return build_model(m.backbone, embedding_dim=m.embedding_dim, levels=m.levels,
                       pretrained=m.weights or m.pretrained, freeze_bn=m.freeze_bn, image_size=config.data.image_size)


def split_datasets(config: RunConfig, normalization: str) -> dict[str, Any]:
    d = config.data
    options: dict[str, Any] = {"val_fraction": d.val_fraction}
    if d.name in ("cub200", "cars196", "sop", "inshop"):
        options["allow_partial"] = d.allow_partial
    train_tf = build_transform(True, image_size=d.image_size, resize=d.resize, normalization=normalization, recipe=d.recipe, hflip=d.hflip)
    test_tf = build_transform(False, image_size=d.image_size, resize=d.resize, normalization=normalization, recipe=d.recipe)
    has_val = d.val_fraction > 0
    splits = {"train": build_dataset(d.name, "train" if has_val else "trainval", root=d.root, transform=train_tf, **options)}
    if has_val:
        splits["val"] = build_dataset(d.name, "val", root=d.root, transform=test_tf, **options)
    if d.name == "inshop":
        splits["test"] = build_dataset(d.name, "query", root=d.root, transform=test_tf, **options)
        splits["gallery"] = build_dataset(d.name, "gallery", root=d.root, transform=test_tf, **options)
    else:
        splits["test"] = build_dataset(d.name, "test", root=d.root, transform=test_tf, **options)
    return splits


class BackboneBaseline(torch.nn.Module):
    """The pretrained backbone before training: its globally pooled high-level features."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.backbone = model.backbone

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"H": self.backbone(images)["H"].mean(dim=(2, 3))}


def prepare_run_folder(out: Path, *, resume: bool, overwrite: bool) -> None:
    if resume:
        if not (out / "checkpoints" / "last.pt").is_file():
            raise RunFolderError(f"nothing to resume in {out}: no checkpoints/last.pt")
        return
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise RunFolderError(f"run folder {out} already exists and is not empty (use --resume to continue it or --overwrite to replace it)")
        shutil.rmtree(out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def _read_jsonl(path: Path, up_to_step: int | None = None) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if up_to_step is None or r["step"] <= up_to_step]


class Trainer:
    def __init__(self, config: RunConfig, out: str | Path, *, progress: bool = True, log=print) -> None:
        self.config, self.out, self.progress, self.log = config, Path(out), progress, log

    def run(self, *, resume: bool = False, overwrite: bool = False) -> dict[str, Any] | None:
        """Train, select, test, report. Under torchrun, rank 0 writes and returns the summary; the
        other processes train their share and return None."""
        self.rank, self.world, own_group = init_from_env(self.config.train.device)
        created = not self.out.exists()
        if self.rank == 0:
            prepare_run_folder(self.out, resume=resume, overwrite=overwrite)
        barrier()
        try:
            return self._run(resume)
        except BaseException:
            # Never leave a misleading half run: a folder with no checkpoint yet is removed.
            if self.rank == 0 and (created or overwrite) and not resume and not (self.out / "checkpoints" / "last.pt").exists():
                shutil.rmtree(self.out, ignore_errors=True)
            raise
        finally:
            if own_group:
                torch.distributed.destroy_process_group()

    def _run(self, resume: bool) -> dict[str, Any]:
        cfg, out = self.config, self.out
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        start_time = time.time()
        _seed_everything(cfg.train.seed)
        device = torch.device(cfg.train.device)
        model = build_run_model(cfg).to(device)
        memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
        model = model.to(memory_format=memory_format)
        lead = self.rank == 0  # the process that evaluates and writes
        _seed_everything(cfg.train.seed + self.rank)  # own augmentation draws per process
        splits = split_datasets(cfg, model.normalization)
        # Every process embeds a shard of each evaluated split; the lead process scores it once.
        evaluator = Evaluator(batch_size=cfg.eval.batch_size, device=str(device), num_workers=cfg.data.num_workers, progress=self.progress,
                              ks=tuple(cfg.eval.ks), compute_nmi=cfg.eval.nmi, seed=cfg.train.seed, distributed=self.world > 1)
        val_evaluator = replace(evaluator, ks=(1,), compute_nmi=False)
        losses = build_level_losses(cfg, model.embedding_dims, int(len(np.unique(splits["train"].labels))), self.world).to(device)
        train_model = model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        groups = parameter_groups(model, lr=cfg.optim.lr, new_layer_lr_mult=cfg.optim.new_layer_lr_mult, weight_decay=cfg.optim.weight_decay)
        loss_params = list(losses.parameters())
        if loss_params:  # proxies are new layers too
            groups.append({"name": "loss", "params": loss_params, "lr": cfg.optim.lr * cfg.optim.new_layer_lr_mult, "weight_decay": 0.0})
        if cfg.optim.name == "adamw":
            optimizer = torch.optim.AdamW(groups, lr=cfg.optim.lr)
        else:
            optimizer = torch.optim.SGD(groups, lr=cfg.optim.lr, momentum=cfg.optim.momentum)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, cfg.optim.warmup_iterations, list(cfg.optim.milestones), cfg.optim.gamma))
        sampler = ClassBalancedBatchSampler(splits["train"].labels, cfg.data.classes_per_batch, cfg.data.samples_per_class,
                                            seed=cfg.train.seed, rank=self.rank, world_size=self.world)
        step, epoch, batch_in_epoch = 0, 0, 0
        best = {"step": None, "metric": SELECTION_METRIC, "value": -math.inf}
        baseline = None
        metrics_path = out / "metrics.jsonl"
        if resume:
            state = torch.load(out / "checkpoints" / "last.pt", map_location=device, weights_only=False)
            model.load_state_dict(state["model_state"])
            losses.load_state_dict(state["loss_state"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            step, epoch, batch_in_epoch, best, baseline = state["step"], state["epoch"], state["batch"], state["best"], state["baseline"]
            if len(state["rng"]) != self.world:  # each process's own augmentation draws continue
                raise RunFolderError(f"{out} was checkpointed by {len(state['rng'])} process(es) and cannot resume exactly with {self.world}; "
                                     f"resume it with {len(state['rng'])}")
            _set_rng_state(state["rng"][self.rank])
            atomic_write_text(metrics_path, "".join(json.dumps(r) + "\n" for r in _read_jsonl(metrics_path, step)))
            self.log(f"resumed {out} at iteration {step}")
        elif lead:
            atomic_write_text(out / "config.yaml", config_to_yaml(cfg))
            metrics_path.write_text("")
        if not resume and (cfg.model.pretrained or cfg.model.weights):
            embedded = evaluator.embed(BackboneBaseline(model), splits["test"], splits.get("gallery"))
            if lead:
                baseline = evaluator.score(*embedded)["H"]
                self.log(f"pretrained backbone before training: test recall@1 {baseline['recall@1']:.4f}")

        def checkpoint(name: str) -> None:
            rng = gather_objects(_rng_state())  # every process's, so that a resumed DDP run is exact
            if not lead:
                return
            atomic_torch_save({**model_checkpoint(model), "loss_state": losses.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                               "step": step, "epoch": epoch, "batch": batch_in_epoch, "best": best, "baseline": baseline,
                               "rng": rng, "config": asdict(cfg)}, out / "checkpoints" / name)

        def validate() -> None:
            if "val" not in splits:
                return
            broadcast_state(model)  # the shards are embedded by one model: the lead's, the one saved
            embedded = val_evaluator.embed(model, splits["val"])
            if not lead:
                return
            metrics = val_evaluator.score(*embedded)
            record = {"step": step, **{f"val/{k}": v for k, v in metrics[CONCAT if CONCAT in metrics else model.levels[0]].items()}}
            _append_jsonl(metrics_path, record)
            if record[SELECTION_METRIC] > best["value"]:
                best.update(step=step, value=record[SELECTION_METRIC])
                atomic_torch_save(model_checkpoint(model), out / "checkpoints" / "best.pt")
            self.log(f"iteration {step}: val recall@1 {record[SELECTION_METRIC]:.4f} (best {best['value']:.4f} at {best['step']})")

        if not resume:
            validate()  # the starting point is a candidate too
        model.train()
        loader_cfg = dict(num_workers=cfg.data.num_workers, persistent_workers=False)
        bar = tqdm(total=cfg.train.iterations, initial=step, desc="train", disable=not (lead and show_progress(self.progress)))
        train_start, running = time.time(), []
        while step < cfg.train.iterations:
            sampler.set_epoch(epoch)
            sampler.load_state_dict({"epoch": epoch, "batch": batch_in_epoch, "seed": cfg.train.seed})
            # A generator per epoch: loaders draw no seed from the global RNG, so resuming is exact.
            generator = torch.Generator().manual_seed(cfg.train.seed * 100_003 + epoch)
            for images, labels in DataLoader(splits["train"], batch_sampler=sampler, generator=generator, **loader_cfg):
                images, labels = images.to(device, memory_format=memory_format), labels.to(device)
                with torch.autocast(device.type, enabled=cfg.optim.amp, dtype=torch.bfloat16 if device.type == "cpu" else torch.float16):
                    outputs = train_model(images)
                loss = sum(losses[level](outputs[level].float(), labels) for level in model.levels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.optim.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                optimizer.step()
                scheduler.step()
                step += 1
                batch_in_epoch += 1
                running.append(float(loss.detach()))
                bar.update(1)
                if lead and (step % cfg.train.log_every == 0 or step == cfg.train.iterations):
                    record = {"step": step, "loss": float(np.mean(running)), "lr": optimizer.param_groups[0]["lr"],
                              "time_s": round(time.time() - train_start, 2)}
                    _append_jsonl(metrics_path, record)
                    running = []
                    if not show_progress(self.progress):
                        self.log(f"iteration {step}/{cfg.train.iterations}: loss {record['loss']:.4f}")
                if step % cfg.train.val_every == 0 or step == cfg.train.iterations:
                    validate()
                    model.train()
                if step % cfg.train.checkpoint_every == 0 or step == cfg.train.iterations:
                    checkpoint("last.pt")
                if step >= cfg.train.iterations:
                    break
            else:
                epoch, batch_in_epoch = epoch + 1, 0
        bar.close()
        train_time = time.time() - train_start

        barrier()
        # The selected model (best validation step, or the last without validation) meets the test set
        # once; the lead reads it from disk and the other processes receive its weights.
        final = load_model(out / "checkpoints" / ("best.pt" if best["step"] is not None else "last.pt"), map_location=device) if lead else model
        broadcast_state(final)
        outputs, labels, gallery_outputs, gallery_labels = evaluator.embed(final, splits["test"], splits.get("gallery"))
        if not lead:
            return None
        test = evaluator.score(outputs, labels, gallery_outputs, gallery_labels)
        summary = {
            "name": cfg.name, "command": " ".join(sys.argv), "commit": source_commit(), "config": asdict(cfg),
            "hardware": {**hardware(), "device": str(device)},
            "train_time_s": round(train_time, 1), "iterations": step,
            "best": best if best["step"] is not None else None, "test": test,
            "dataset": {"name": cfg.data.name, **{f"{k}_images": len(v) for k, v in splits.items()},
                        **{f"{k}_classes": int(len(np.unique(v.labels))) for k, v in splits.items()}},
        }
        if baseline is not None:
            summary["baseline"] = {"description": f"pretrained {cfg.model.backbone} before training (pooled high-level features)",
                                   "test": {"H": baseline}}
        summary["plots"] = write_run_report(out, summary, _read_jsonl(metrics_path), evaluation_embedding(outputs),
                                            labels, splits["test"], grid_queries=cfg.eval.grid_queries, seed=cfg.train.seed)
        summary["wall_time_s"] = round(time.time() - start_time, 1)
        write_run_summary(out, summary)
        return summary
