"""The training loop: the paper's protocol, iteration-based, resumable, writing a run folder.

Parts come from build_run (model, losses, optimiser, schedule, sampler, splits, evaluators); one
iteration is train_step; TrainState is what a checkpoint holds. Validation on class-disjoint
held-out training classes selects the best checkpoint; the test split is evaluated once, at the
end, with that checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ranklist.atomic import atomic_torch_save, atomic_write_text
from ranklist.collectives import barrier, broadcast_state
from ranklist.evaluation.evaluator import Embedded, show_progress
from ranklist.evaluation.metric_names import RECALL_AT_1, headline_view, validation_key, validation_metrics
from ranklist.models import evaluation_embedding, load_model, model_checkpoint
from ranklist.models.checkpoint import read_checkpoint
from ranklist.reporting import RunSummary, write_run_report, write_run_summary
from ranklist.reporting.provenance import hardware, source_commit
from ranklist.reporting.run_report import write_pair_picture
from ranklist.reporting.summary import Scores
from ranklist.reporting.tensorboard import open_board
from ranklist.training.config import RunConfig, config_to_yaml
from ranklist.training.distributed import init_from_env, shutdown
from ranklist.training.loader import training_loader
from ranklist.training.phase_times import PhaseTimes
from ranklist.training.run import Run, build_run, build_run_model
from ranklist.training.run_folder import (
    LAST,
    RunFolderError,
    check_resume_config,
    check_run_folder,
    record_resume,
    start_run_folder,
)
from ranklist.training.state import TrainState, train_step


class BackboneBaseline(torch.nn.Module):
    """The pretrained backbone before training: its globally pooled high-level features."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.backbone = model.backbone

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"H": self.backbone(images)["H"].mean(dim=(2, 3))}


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def _read_jsonl(path: Path, up_to_step: int | None = None) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if up_to_step is None or r["step"] <= up_to_step]


class Trainer:
    """baseline_cache: a folder where the pretrained backbone's test metrics are kept by what decides
    them (a study's variants share one backbone and test split: it is embedded once, not per variant)."""

    def __init__(
        self,
        config: RunConfig,
        out: str | Path,
        *,
        progress: bool = True,
        log=print,
        baseline_cache: Path | None = None,
    ) -> None:
        self.config, self.out, self.progress, self.log = config, Path(out), progress, log
        self.metrics_path = self.out / "metrics.jsonl"
        self.baseline_cache = baseline_cache
        self.times = PhaseTimes()
        self.board = None  # the run's TensorBoard events (train.tensorboard; reporting/tensorboard.py), lead only

    def run(self, *, resume: bool = False, overwrite: bool = False) -> RunSummary | None:
        """Train, select, test, report. Under torchrun, rank 0 writes and returns the summary; the
        other processes train their share and return None."""
        rank, world, own_group = init_from_env(self.config.train.device)
        ok = False
        try:
            summary = self._run(rank, world, resume, overwrite)
            ok = True
            return summary
        finally:
            if self.board is not None:
                self.board.close()
                self.board = None
            if own_group:
                shutdown(clean=ok)

    def _run(self, rank: int, world: int, resume: bool, overwrite: bool) -> RunSummary | None:
        started = time.time()
        with self.times.phase("setup"):
            changes = self._check_start(resume, overwrite) if rank == 0 else {}
            checkpoint = read_checkpoint(self.out / LAST) if resume and rank == 0 else None
            run = build_run(
                self.config, rank, world, progress=self.progress
            )  # everything checked before the folder is touched
            barrier()
        created = rank == 0 and not resume
        if created:
            start_run_folder(self.out, overwrite=overwrite)
        try:
            state = self._start(run, resume, checkpoint, changes)
            first, before = state.step, self._side_work()
            train_time = self._loop(run, state)
            self.times.add("train_steps", train_time - (self._side_work() - before))
            return self._finish(run, state, (state.step - first, train_time), started)
        except BaseException:
            # Never leave a misleading half run: a new folder with no checkpoint yet is removed.
            if created and not (self.out / LAST).exists():
                shutil.rmtree(self.out, ignore_errors=True)
            raise

    def _side_work(self) -> float:
        """Seconds so far of the work the loop does besides its steps."""
        return self.times.get("validation") + self.times.get("checkpoints")

    def _check_start(self, resume: bool, overwrite: bool) -> dict[str, tuple[Any, Any]]:
        check_run_folder(self.out, resume=resume, overwrite=overwrite, data_root=self.config.data.root)
        return check_resume_config(self.out, asdict(self.config)) if resume else {}

    def _start(self, run: Run, resume: bool, checkpoint: dict[str, Any] | None, changes: dict) -> TrainState:
        """A resumed state (every process reads the lead's checkpoint), or a new one with its first validation."""
        if resume:
            checkpoint = _broadcast_checkpoint(checkpoint, run)
            try:
                state = TrainState.restore(run, checkpoint)
            except ValueError as error:
                raise RunFolderError(f"{self.out}: {error}") from None
            if run.lead:
                atomic_write_text(
                    self.metrics_path, "".join(json.dumps(r) + "\n" for r in _read_jsonl(self.metrics_path, state.step))
                )
                record_resume(self.out, state.step, changes, config_to_yaml(self.config))
                self.board = open_board(
                    self.out, self.config.train.tensorboard, purge_step=state.step + 1, log=self.log
                )
                self.log(f"resumed {self.out} at iteration {state.step}")
            return state
        state = TrainState()
        if run.lead:
            atomic_write_text(self.out / "config.yaml", config_to_yaml(self.config))
            self.metrics_path.write_text("")
            self.board = open_board(self.out, self.config.train.tensorboard, log=self.log)
        self.validate(run, state)  # the starting point is a candidate too
        return state

    def _baseline_cache_file(self, run: Run) -> Path | None:
        """Where the pretrained backbone's test metrics are kept by what decides them (single process)."""
        if self.baseline_cache is None or run.world > 1:
            return None
        key = {
            "backbone": self.config.model.backbone,
            "weights": self.config.model.weights,
            "preprocessing": run.model.preprocessing.to_dict(),
            "data": [self.config.data.name, self.config.data.root],
            "eval": asdict(self.config.eval),
            "seed": self.config.train.seed,
        }
        return self.baseline_cache / (
            hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20] + ".json"
        )

    def _wants_baseline(self) -> bool:
        """A pretrained backbone to compare against, and eval.baseline on."""
        return bool(self.config.model.pretrained or self.config.model.weights) and self.config.eval.baseline

    def _baseline_model(self, run: Run, cached: Path | None) -> BackboneBaseline | None:
        """The pretrained backbone as it was before training, rebuilt from the config (no copy is held
        while training); None without pretrained weights or when the cache file `cached` has its metrics."""
        if not self._wants_baseline():
            return None
        with self.times.phase("baseline"):
            if cached is not None and cached.is_file():
                return None
            return BackboneBaseline(build_run_model(self.config).to(run.device, memory_format=run.memory_format))

    def _baseline_metrics(self, run: Run, embedded: Embedded | None, cached: Path | None) -> dict[str, float] | None:
        """The baseline's test metrics ("H" view): scored from `embedded` (and kept in `cached`), or read
        from `cached`."""
        if not self._wants_baseline():
            return None
        with self.times.phase("baseline"):
            if embedded is None:
                return json.loads(cached.read_text())
            baseline = run.evaluator.score(embedded)["H"]
            if cached is not None:
                atomic_write_text(cached, json.dumps(baseline))
        self.log(f"pretrained backbone before training: test recall@1 {baseline[RECALL_AT_1]:.4f}")
        return baseline

    def validate(self, run: Run, state: TrainState) -> None:
        """Score the held-out training classes; a new best is saved as best.pt (collective)."""
        if run.splits.val is None:
            return
        with self.times.phase("validation"):
            self._validate(run, state)

    def _validate(self, run: Run, state: TrainState) -> None:
        broadcast_state(run.model)  # the shards are embedded by one model: the lead's, the one saved
        embedded = run.val_evaluator.embed(run.model, run.splits.val)
        if not run.lead:
            return
        metrics = run.val_evaluator.score(embedded)
        record = {"step": state.step, **{validation_key(k): v for k, v in metrics[headline_view(metrics)].items()}}
        self._record(record)
        best = state.best
        if record[best.metric] > best.value:
            best.step, best.value = state.step, record[best.metric]
            atomic_torch_save(model_checkpoint(run.model), self.out / "checkpoints" / "best.pt")
        self.log(
            f"iteration {state.step}: val recall@1 {record[best.metric]:.4f} (best {best.value:.4f} at {best.step})"
        )

    def _record(self, record: dict[str, Any]) -> None:
        """One line of metrics.jsonl, and the same values in TensorBoard."""
        _append_jsonl(self.metrics_path, record)
        if self.board is not None:
            self.board.record(record)

    def save(self, run: Run, state: TrainState, name: str) -> None:
        """A resumable checkpoint (collective: every process's RNG state goes in)."""
        with self.times.phase("checkpoints"):
            checkpoint = state.to_checkpoint(run)
            if run.lead:
                atomic_torch_save(checkpoint, self.out / "checkpoints" / name)

    def _loop(self, run: Run, state: TrainState) -> float:
        """Iterations until train.iterations; returns the training time in seconds."""
        train = self.config.train
        run.model.train()
        bar = tqdm(
            total=train.iterations,
            initial=state.step,
            desc="train",
            disable=not (run.lead and show_progress(self.progress)),
        )
        started, running = time.time(), []
        if state.batch >= len(run.sampler):  # a checkpoint taken at an epoch's end
            state.epoch, state.batch = state.epoch + 1, 0
        batches = iter(training_loader(run, state))  # one loader, its workers kept, for the whole run
        while state.step < train.iterations:
            running.append(train_step(run, state, next(batches)))
            if state.batch == len(run.sampler):
                state.epoch, state.batch = state.epoch + 1, 0
            bar.update(1)
            self._after_step(run, state, running, started)
        del batches  # its workers stop here
        bar.close()
        return time.time() - started

    def _after_step(self, run: Run, state: TrainState, running: list[float], started: float) -> None:
        """Log, validate and checkpoint on their schedules."""
        train, step = self.config.train, state.step
        last = step == train.iterations
        if run.lead and (step % train.log_every == 0 or last):
            record = {
                "step": step,
                "loss": float(np.mean(running)),
                "lr": run.optimizer.param_groups[0]["lr"],
                "time_s": round(time.time() - started, 2),
            }
            self._record(record)
            running.clear()
            if not show_progress(self.progress):
                self.log(f"iteration {step}/{train.iterations}: loss {record['loss']:.4f}")
        if step % train.val_every == 0 or last:
            self.validate(run, state)
            run.model.train()
        if step % train.checkpoint_every == 0 or last:
            self.save(run, state, "last.pt")

    def _finish(self, run: Run, state: TrainState, trained: tuple[int, float], started: float) -> RunSummary | None:
        """The selected model meets the test set once; the lead writes the summary and the report."""
        if run.splits.queries is None:  # a tuning fold (data.folds): no test split, no test phase
            return self._finish_fold(run, state, trained, started)
        cached = self._baseline_cache_file(run)
        baseline_model = self._baseline_model(run, cached)
        with self.times.phase("test"):
            barrier()
            # The lead reads the selected checkpoint from disk; the other processes receive its weights.
            name = "best.pt" if state.best.step is not None else "last.pt"
            final = load_model(self.out / "checkpoints" / name, map_location=run.device) if run.lead else run.model
            broadcast_state(final)
            # One pass over the test images for the selected model and the pretrained baseline.
            models = {"final": final} if baseline_model is None else {"final": final, "baseline": baseline_model}
            embedded = run.evaluator.embed_models(models, run.splits.queries, run.splits.gallery)
            if not run.lead:
                return None
            final_embedded = embedded["final"]
            test = run.evaluator.score(final_embedded)
        baseline = self._baseline_metrics(run, embedded.get("baseline"), cached)
        with self.times.phase("report"):
            summary = self._summary(run, state, trained, test, baseline)
            summary["plots"] = write_run_report(
                self.out,
                summary,
                _read_jsonl(self.metrics_path),
                evaluation_embedding(final_embedded.outputs),
                final_embedded.labels,
                run.splits.queries,
                grid_queries=self.config.eval.grid_queries,
                seed=self.config.train.seed,
                gallery=(
                    evaluation_embedding(final_embedded.gallery_outputs),
                    final_embedded.gallery_labels,
                    run.splits.gallery,
                )
                if run.splits.gallery is not None
                else None,
            )
            # The paper's picture: test-pair distances against alpha and alpha - m, before and after.
            picture, summary["pair_distances"] = write_pair_picture(
                self.out,
                self.config.loss,
                embedded,
                seed=self.config.train.seed,
                baseline_cache=cached.with_suffix(".pairs.npz") if cached else None,
            )
            summary["plots"].update(picture)
            if self.board is not None:
                self.board.finish(
                    self.out,
                    summary,
                    evaluation_embedding(final_embedded.outputs),
                    final_embedded.labels,
                    run.splits.queries,
                    seed=self.config.train.seed,
                )
        summary["time_s"] = self.times.summary()  # the summary's own writing is not counted
        summary["wall_time_s"] = round(time.time() - started, 1)
        write_run_summary(self.out, summary)
        return summary

    def _finish_fold(
        self, run: Run, state: TrainState, trained: tuple[int, float], started: float
    ) -> RunSummary | None:
        """A tuning fold's summary: the selected step's validation metrics ("validation") in place of a test."""
        if not run.lead:
            return None
        with self.times.phase("report"):
            summary = self._summary(run, state, trained, {}, None)
            selected = [
                r for r in _read_jsonl(self.metrics_path) if r["step"] == state.best.step and state.best.metric in r
            ]
            summary["validation"] = validation_metrics(selected[-1])
        summary["time_s"] = self.times.summary()
        summary["wall_time_s"] = round(time.time() - started, 1)
        write_run_summary(self.out, summary)
        return summary

    def _summary(
        self,
        run: Run,
        state: TrainState,
        trained: tuple[int, float],
        test: Scores,
        baseline: dict[str, float] | None,
    ) -> RunSummary:
        """trained: (iterations, seconds) of this session's training (a resumed run's own part)."""
        cfg, splits = self.config, run.splits.named()
        steps, train_time = trained
        summary: RunSummary = {
            "name": cfg.name,
            "command": " ".join(sys.argv),
            "commit": source_commit(),
            "config": asdict(cfg),
            "hardware": {**hardware(), "device": str(run.device)},
            "preprocessing": run.model.preprocessing.to_dict(),
            "precision": asdict(run.precision),
            "train_time_s": round(train_time, 1),
            "iterations": state.step,
            # Steps alone (data, forward, backward, optimiser): comparable across machines and val schedules.
            "train_images_per_s": round(steps * run.batch_size / self.times.get("train_steps"), 1)
            if self.times.get("train_steps") > 0
            else None,
            "best": asdict(state.best) if state.best.step is not None else None,
            "test": test,
            "dataset": {
                "name": cfg.data.name,
                **{f"{k}_images": len(v) for k, v in splits.items()},
                **{f"{k}_classes": int(len(np.unique(v.labels))) for k, v in splits.items()},
            },
            "time_s": {},  # both set when the summary is written, after the report
            "wall_time_s": 0.0,
        }
        if baseline is not None:
            summary["baseline"] = {
                "description": f"pretrained {cfg.model.backbone} before training (pooled high-level features)",
                "test": {"H": baseline},
            }
        return summary


def _broadcast_checkpoint(checkpoint: dict[str, Any] | None, run: Run) -> dict[str, Any]:
    """The lead's checkpoint on every process (only the lead needs the run folder)."""
    if run.world == 1:
        return checkpoint
    holder = [checkpoint]
    torch.distributed.broadcast_object_list(holder, src=0)
    return holder[0]


__all__ = ["BackboneBaseline", "RunFolderError", "Trainer"]
