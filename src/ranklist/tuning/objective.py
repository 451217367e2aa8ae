"""One trial: the recipe with the sampled values, trained once per class-disjoint fold of the
training classes; its value is the mean over folds of the selected model's validation metric.

Each fold is an ordinary run (ranklist.training.Trainer with data.folds / data.fold) in
DIR/trials/NNNN/foldF: its config.yaml, metrics.jsonl and summary are kept, its checkpoints are
removed once the fold is scored (a study of hundreds of runs would fill a disk). The running mean
is reported after each fold, so a trial well below the others' median stops early (pruning).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ranklist.errors import UserError, one_line
from ranklist.evaluation.metric_names import MAP_AT_R, QUERY_METRICS
from ranklist.training.config import RunConfig, comparable_config, load_config
from ranklist.tuning.space import Space, Value, overrides

# What validation scores (Recall@1 only among the Recall@K: the validation evaluator's ks is (1,)).
VALIDATION_METRICS = QUERY_METRICS
FOLD_VALUES = "fold_values"  # trial user attribute: the metric per finished fold
REASON = "reason"  # trial user attribute: why it failed or was pruned
INTERRUPTED = "interrupted"  # a reason that queues the trial's values again


def trial_failures() -> tuple[type[BaseException], ...]:
    """Errors that fail one trial (a bad combination, a diverged loss, memory) and let the study go on."""
    import torch

    return (ValueError, ArithmeticError, UserError, FileNotFoundError, torch.OutOfMemoryError)


@dataclass(frozen=True)
class TuneSettings:
    """What every trial of a study shares; a study continued with other settings is refused."""

    recipe: str
    overrides: list[str]
    space: Space
    folds: int
    metric: str = MAP_AT_R
    seed: int = 0
    trials: int = 10

    def fingerprint(self) -> dict:
        """The settings that decide a trial's value (the trial target may grow between runs). The
        recipe counts by its content too: an edited recipe file under the same path would otherwise
        continue the study on another base and mix its trials silently."""
        return {
            "recipe": str(self.recipe),
            "recipe_config": recipe_digest(self.recipe, self.overrides),
            "overrides": list(self.overrides),
            "space": [p.__dict__ for p in self.space.params],
            "folds": self.folds,
            "metric": self.metric,
        }


def recipe_digest(recipe: str, recipe_overrides: list[str]) -> str:
    """SHA-256 of the configuration the recipe and overrides resolve to, as it trains (name aside)."""
    config = comparable_config(load_config(recipe, recipe_overrides))
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def check_metric(metric: str) -> str:
    """`metric` if it can be scored on validation folds; a ValueError naming the choices otherwise."""
    if metric not in VALIDATION_METRICS:
        raise ValueError(
            f"--metric must be one of {list(VALIDATION_METRICS)} (scored on validation folds), got {metric!r}"
        )
    return metric


def fold_config(settings: TuneSettings, values: dict[str, Value], fold: int, name: str = "trial") -> RunConfig:
    """The recipe with the trial's values, as fold `fold` of the study's folds."""
    return load_config(
        settings.recipe,
        [*settings.overrides, *overrides(values), f"data.folds={settings.folds}", f"data.fold={fold}", f"name={name}"],
    )


def check_space_against_recipe(settings: TuneSettings) -> None:
    """Each key at each bound (or choice) must make a recipe the loader accepts: a bad key fails now,
    not in trial 40."""
    for param in settings.space.params:
        for value in param.corners():
            try:
                fold_config(settings, {param.key: value}, 0)
            except ValueError as error:
                raise ValueError(
                    f"search space {settings.space.path}: {param.key}={value!r} is refused by the recipe: "
                    f"{one_line(error)}"
                ) from None


def check_folds(settings: TuneSettings) -> None:
    """The recipe's training classes must make the study's folds (else every trial would fail alike)."""
    from ranklist.data import build_dataset, dataset_spec
    from ranklist.data.folds import class_folds

    d = load_config(settings.recipe, settings.overrides).data
    options = {key: getattr(d, key) for key in dataset_spec(d.name).run_options}
    class_folds(build_dataset(d.name, "trainval", root=d.root, **options).labels, settings.folds)


def run_fold(config: RunConfig, folder: Path, metric: str) -> float:
    """Train one fold; its selected model's validation `metric`. A non-finite training loss fails it."""
    from ranklist.training.trainer import Trainer

    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder.parent / "trial.log"

    def log(message: str) -> None:
        with open(log_path, "a") as handle:
            handle.write(f"{folder.name}: {message}\n")

    summary = Trainer(config, folder, progress=False, log=log).run(overwrite=True)
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    _check_losses(folder / "metrics.jsonl", folder.name)
    value = summary["validation"][metric]
    if not math.isfinite(value):
        raise FloatingPointError(f"{folder.name}: validation {metric} is {value}")
    return float(value)


def _check_losses(path: Path, fold: str) -> None:
    for line in path.read_text().splitlines():
        record = json.loads(line) if line.strip() else {}
        if "loss" in record and (record["loss"] is None or not math.isfinite(record["loss"])):
            raise FloatingPointError(f"{fold}: the training loss is {record['loss']} at iteration {record['step']}")


def objective(settings: TuneSettings, out: Path, started: Callable[[object], None] = lambda trial: None):
    """An Optuna objective: sample, train every fold, report the running mean, prune, return the mean."""
    import optuna

    def run(trial: optuna.Trial) -> float:
        started(trial)  # the trial exists now: another process may ask for the next one
        try:
            values = {param.key: param.suggest(trial) for param in settings.space.params}
            folder = out / "trials" / f"{trial.number:04d}"
            scores: list[float] = []
            for fold in range(settings.folds):
                config = fold_config(settings, values, fold, name=f"trial{trial.number:04d}-fold{fold}")
                scores.append(run_fold(config, folder / f"fold{fold}", settings.metric))
                trial.set_user_attr(FOLD_VALUES, scores)
                trial.report(sum(scores) / len(scores), fold)
                if fold + 1 < settings.folds and trial.should_prune():
                    reason = f"pruned after fold {fold}: running mean {sum(scores) / len(scores):.4f} below the median"
                    trial.set_user_attr(REASON, reason)
                    raise optuna.TrialPruned(reason)
            return sum(scores) / len(scores)
        except trial_failures() as error:
            trial.set_user_attr(REASON, f"{type(error).__name__}: {one_line(error)}")
            raise
        except KeyboardInterrupt:
            trial.set_user_attr(REASON, f"{INTERRUPTED} (Ctrl-C)")
            raise

    return run
