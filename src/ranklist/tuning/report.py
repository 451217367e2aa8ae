"""What a study leaves in DIR: tune.json (every trial), best.yaml (a recipe `ranklist train` takes as
it is) and tune.md with the optimisation history and the parameter importances (PNG plots).
Every file is written atomically; several processes sharing a study may each write them.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ranklist.atomic import atomic_write_text
from ranklist.evaluation.metric_names import display_name
from ranklist.reporting.figures import save_figure
from ranklist.reporting.provenance import hardware, source_commit
from ranklist.training.config import config_to_yaml, load_config
from ranklist.tuning.objective import FOLD_VALUES, REASON, TuneSettings
from ranklist.tuning.space import overrides
from ranklist.tuning.study import RECIPE_ATTR


@dataclass
class TrialRecord:
    """One trial as the reports show it."""

    number: int
    state: str  # COMPLETE | PRUNED | FAIL | RUNNING | WAITING
    params: dict[str, Any]
    fold_values: list[float]
    value: float | None  # the mean over folds (complete trials)
    seconds: float | None
    reason: str | None = None  # why it failed or was pruned
    retry_of: int | None = None  # an interrupted trial this one runs again
    recipe: bool = False  # the trial of the recipe's own values (study.enqueue_recipe)


def trial_records(study) -> list[TrialRecord]:
    """A record per trial of the study (state, parameters, fold values, time, reason)."""
    from optuna.storages import RetryFailedTrialCallback

    records = []
    for t in study.get_trials(deepcopy=False):
        seconds = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        value = t.value if t.state.name == "COMPLETE" and t.value is not None and math.isfinite(t.value) else None
        records.append(
            TrialRecord(
                t.number,
                t.state.name,
                dict(t.params),
                list(t.user_attrs.get(FOLD_VALUES, [])),
                value,
                round(seconds, 1) if seconds is not None else None,
                t.user_attrs.get(REASON),
                RetryFailedTrialCallback.retried_trial_number(t),
                bool(t.user_attrs.get(RECIPE_ATTR, False)),
            )
        )
    return records


def best_record(records: list[TrialRecord]) -> TrialRecord | None:
    """The complete trial with the best value (the earliest of equals); None without one."""
    complete = [r for r in records if r.value is not None]
    return max(complete, key=lambda r: (r.value, -r.number)) if complete else None


def best_recipe(settings: TuneSettings, best: TrialRecord) -> str:
    """The recipe with the best values, on all training classes (no fold), as YAML with a header."""
    config = load_config(settings.recipe, [*settings.overrides, *overrides(best.params)])
    config.name = f"{config.name}-tuned"
    header = (
        f"# ranklist tune: trial {best.number}, the best of the study: "
        f"mean validation {settings.metric} {best.value:.4f} over "
        f"{settings.folds} class-disjoint folds of the training classes.\n"
        f"# Recipe {settings.recipe} with {settings.overrides or 'no overrides'}, "
        f"then {overrides(best.params)}.\n# Train it with: ranklist train best.yaml\n"
    )
    return header + config_to_yaml(config)


def write_records(study, settings: TuneSettings, out: Path, storage: str) -> list[TrialRecord]:
    """tune.json and best.yaml (once a trial is complete) from the storage's present state."""
    records = trial_records(study)
    best = best_record(records)
    result = {
        "study": study.study_name,
        "storage": storage,
        "settings": {**settings.fingerprint(), "trials": settings.trials, "seed": settings.seed},
        "trials": [asdict(r) for r in records],
        "best": asdict(best) if best else None,
        "counts": {
            state: sum(r.state == state for r in records)
            for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
        },
        "commit": source_commit(),
        "hardware": hardware(),
    }
    atomic_write_text(out / "tune.json", json.dumps(result, indent=2))
    if best is not None:
        atomic_write_text(out / "best.yaml", best_recipe(settings, best))
    return records


def importance_evaluator():
    """PED-ANOVA (Optuna >= 4.2's default: no extra dependency, deterministic), else fANOVA."""
    import optuna

    return getattr(optuna.importance, "PedAnovaImportanceEvaluator", optuna.importance.FanovaImportanceEvaluator)()


def importances(study) -> dict[str, float]:
    """Each parameter's importance over the complete trials; empty when too few vary."""
    import optuna

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            weights = dict(optuna.importance.get_param_importances(study, evaluator=importance_evaluator()))
    except (ValueError, RuntimeError, ZeroDivisionError):  # fewer than two complete trials, or no parameter varies
        return {}
    # PED-ANOVA warns and returns equal weights when the trials are too few: that is no reading.
    return {} if any("too small" in str(w.message) for w in caught) else weights


def write_report(study, settings: TuneSettings, out: Path, storage: str) -> Path:
    """tune.json, best.yaml, history.png, importance.png and tune.md; returns tune.md's path."""
    records = write_records(study, settings, out, storage)
    weights = importances(study)
    plot_history(records, settings.metric, out / "history.png")
    if weights:
        plot_importance(weights, out / "importance.png")
    atomic_write_text(out / "tune.md", tune_markdown(study.study_name, settings, records, weights))
    return out / "tune.md"


def plot_history(records: list[TrialRecord], metric: str, path: Path) -> None:
    """Plot each trial's value (and pruned trials' fold values) against its number to `path`."""
    figure = Figure(figsize=(6.4, 3.8))
    ax = figure.subplots()
    done = [r for r in records if r.value is not None]
    ax.plot([r.number for r in done], [r.value for r in done], "o", color="tab:blue", label="complete trial")
    pruned = [r for r in records if r.state == "PRUNED" and r.fold_values]
    if pruned:
        ax.plot(
            [r.number for r in pruned],
            [float(np.mean(r.fold_values)) for r in pruned],
            "x",
            color="tab:grey",
            label="pruned (running mean)",
        )
    if done:
        best, steps = -math.inf, []
        for r in done:
            best = max(best, r.value)
            steps.append((r.number, best))
        ax.step(*zip(*steps), where="post", color="tab:orange", label="best so far")
    failed = [r.number for r in records if r.state == "FAIL"]
    for number in failed:
        ax.axvline(number, color="tab:red", alpha=0.3, linewidth=1)
    if failed:
        ax.plot([], [], color="tab:red", alpha=0.3, label="failed trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trials are numbered, not measured
    ax.set(xlabel="trial", ylabel=f"validation {display_name(metric)} (mean over folds)", title="optimisation history")
    ax.legend(loc="best", fontsize=8)  # away from the points (a pruned trial sits low)
    save_figure(figure, path)


def plot_importance(weights: dict[str, float], path: Path) -> None:
    """Plot the parameters' importances as horizontal bars to `path`."""
    names = list(weights)[::-1]  # the most important at the top
    figure = Figure(figsize=(6.4, 0.45 * len(names) + 1.2))
    ax = figure.subplots()
    ax.barh(names, [weights[n] for n in names], color="tab:blue")
    ax.set(
        xlabel=f"importance ({type(importance_evaluator()).__name__.replace('ImportanceEvaluator', '')}; sums to 1)",
        title="parameter importance",
    )
    save_figure(figure, path)


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _recipe_line(records: list[TrialRecord], best: TrialRecord, metric: str) -> list[str]:
    """What tuning gained over the recipe as given (its own trial), when that trial is complete."""
    recipe = next((r for r in records if r.recipe and r.value is not None), None)
    if recipe is None:
        return []
    return [
        "",
        f"The recipe as given (trial {recipe.number}): {metric} {recipe.value:.4f}; "
        f"the best is {best.value - recipe.value:+.4f} over it (one run per fold: mind the noise).",
    ]


def tune_markdown(name: str, settings: TuneSettings, records: list[TrialRecord], weights: dict[str, float]) -> str:
    """The study's report as Markdown: settings, trial counts, the best trial, importances and every trial."""
    best = best_record(records)
    counts = ", ".join(
        f"{sum(r.state == s for r in records)} {s.lower()}"
        for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
    )
    lines = [
        f"# Tuning study {name}",
        "",
        f"Recipe `{settings.recipe}` with overrides {settings.overrides or 'none'}; "
        f"space `{settings.space.path}`; objective: mean "
        f"validation {settings.metric} over {settings.folds} class-disjoint folds of the training classes "
        "(the test split is never read); "
        f"target {settings.trials} trials, sampler seed {settings.seed}. Trials: {counts}.",
        "",
    ]
    if best is not None:
        lines += [
            f"Best: trial {best.number}, {settings.metric} {best.value:.4f} "
            f"(folds {', '.join(f'{v:.4f}' for v in best.fold_values)}); "
            "its recipe is `best.yaml`.",
            "",
            "| key | best value |",
            "|---|---|",
        ]
        lines += [f"| {key} | {_value(value)} |" for key, value in best.params.items()]
        lines += _recipe_line(records, best, settings.metric)
    lines += ["", "![optimisation history](history.png)", ""]
    if weights:
        lines += ["![parameter importance](importance.png)", ""]
    else:
        lines += ["Parameter importance: too few complete trials to estimate it.", ""]
    keys = settings.space.keys()
    lines += [
        "## Trials",
        "",
        "| # | state | value | folds | s | " + " | ".join(keys) + " | reason |",
        "|" + "---|" * (len(keys) + 6),
    ]
    for r in records:
        cells = [
            str(r.number),
            r.state.lower() + (" (the recipe)" if r.recipe else ""),
            f"{r.value:.4f}" if r.value is not None else "-",
            " ".join(f"{v:.3f}" for v in r.fold_values) or "-",
            f"{r.seconds:.0f}" if r.seconds is not None else "-",
            *(_value(r.params[k]) if k in r.params else "-" for k in keys),
            (r.reason or "").replace("|", "/"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
