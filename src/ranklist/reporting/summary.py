"""summary.json and summary.md: the page of a run a person reads first."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TypedDict

from ranklist.atomic import atomic_write_text
from ranklist.evaluation.metric_names import RECALL_AT_1, VIEW_ORDER, display_name, headline_view, score_columns

Scores = dict[str, dict[str, float]]  # view ("L", "M", "H", "concat") -> metric -> value


class Selection(TypedDict):
    """The validation step a run's model was selected at, by which metric and value."""

    step: int
    metric: str
    value: float


class Baseline(TypedDict):
    """The pretrained backbone's test scores, and what it was."""

    description: str
    test: Scores  # the pretrained backbone's "H" view


class _RunSummaryFields(TypedDict):
    name: str
    command: str
    commit: str | None
    config: dict[str, Any]  # the resolved RunConfig as plain data
    hardware: dict[str, Any]
    preprocessing: dict[str, Any]
    precision: dict[str, str]  # train / frozen / eval: what ran, fp32 or bf16
    train_time_s: float
    iterations: int
    train_images_per_s: float | None
    best: Selection | None  # None: no validation split, the last iteration was tested
    test: Scores  # empty in a tuning fold
    dataset: dict[str, Any]  # name, then <split>_images and <split>_classes
    time_s: dict[str, float]
    wall_time_s: float


class RunSummary(_RunSummaryFields, total=False):
    """summary.json: what a run did and scored (the fields above always, these where they apply)."""

    baseline: Baseline  # eval.baseline
    validation: dict[str, float]  # a tuning fold's selected validation metrics, in place of a test
    plots: dict[str, str]  # title -> path relative to the run folder
    pair_distances: dict[str, Any]  # the paper's picture in numbers (reporting/pair_distances.py)


def _pct(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def _metric_table(rows: list[tuple[str, dict[str, float]]]) -> list[str]:
    columns = score_columns(m for _, m in rows)
    header = ["embedding"] + [display_name(key) for key in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, m in rows:
        cells = [name] + [_pct(m.get(key)) for key in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def summary_markdown(summary: RunSummary) -> str:
    """summary.md: the run's setting, time, data, test metrics, selection and plots, for a person."""
    config, data, hw = summary["config"], summary["dataset"], summary["hardware"]
    model, loss = config["model"], config["loss"]
    lines = [f"# {summary['name']}", ""]
    lines.append(
        f"{loss['name']} on **{data['name']}** with {model['backbone']} "
        f"(levels {', '.join(model['levels'])}, {model['embedding_dim']}-d each); "
        f"{summary['iterations']} iterations in {summary['train_time_s']} s of training "
        f"({summary['train_images_per_s']} images/s), "
        f"{summary['wall_time_s']} s in all, on {hw['cpu']} ({hw['threads']} threads, "
        f"{hw['device']}, torch {hw['torch']})"
        + (f"; code at commit {summary['commit']}." if summary["commit"] else ".")
    )
    bf16 = [purpose for purpose, ran in summary["precision"].items() if ran == "bf16"]
    lines += [
        "",
        "Time (s): "
        + ", ".join(f"{phase.replace('_', ' ')} {seconds}" for phase, seconds in summary["time_s"].items())
        + (f"; in bf16: {', '.join(bf16)} forward" if bf16 else "")
        + ".",
    ]
    lines += ["", "Data: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in data.items() if k != "name") + "."]
    lines += _test_lines(summary)
    lines += _pair_lines(summary.get("pair_distances"))
    best = summary["best"]
    if best:
        lines += [
            "",
            f"Model selection: {best['metric']} = {_pct(best['value'])} % at iteration {best['step']} "
            "(validation classes are held-out training classes; the test split was used once, at the end).",
        ]
    elif "val_images" not in data and summary["test"]:
        lines += ["", "No validation split (data.val_fraction = 0): the last iteration's model was tested, once."]
    plots = summary.get("plots", {})
    if plots:
        lines += ["", "## Plots", ""] + [f"- [{title}]({rel})" for title, rel in plots.items()]
        lines += [""] + [f"![{title}]({rel})" for title, rel in plots.items()]
    lines += ["", "The resolved configuration is in `config.yaml`; every logged value is in `metrics.jsonl`.", ""]
    return "\n".join(lines)


def _test_lines(summary: RunSummary) -> list[str]:
    """The test metrics table (the baseline first) and Recall@1 before -> after training."""
    test, baseline = summary["test"], summary.get("baseline")
    rows = [(level, test[level]) for level in VIEW_ORDER if level in test]
    if baseline:
        rows.insert(0, (baseline["description"], baseline["test"]["H"]))
    lines = ["", "## Test metrics (unseen classes, %)", "", *_metric_table(rows)] if rows else []
    final, before = (test[headline_view(test)], baseline["test"]["H"]) if baseline and test else ({}, {})
    if RECALL_AT_1 in final and RECALL_AT_1 in before:  # eval.ks may leave Recall@1 out
        lines += [
            "",
            f"Recall@1 {_pct(before[RECALL_AT_1])} % before training -> {_pct(final[RECALL_AT_1])} % after "
            f"({100 * (final[RECALL_AT_1] - before[RECALL_AT_1]):+.1f} points).",
        ]
    return lines


def _pair_lines(pairs: dict[str, Any] | None) -> list[str]:
    """The paper's picture in numbers: shares of test pairs on the wrong side of each boundary."""
    if not pairs or "wrong_side" not in pairs:
        return []
    wrong = pairs["wrong_side"]
    stages = [stage for stage in ("before", "after") if stage in wrong]

    def shares(key: str) -> str:
        return " -> ".join(f"{_pct(wrong[stage][key])} % {stage}" for stage in stages)

    return [
        "",
        f"Test pairs on the wrong side (level {pairs['level']}, plots/pair_distances.png): positives beyond "
        f"alpha - m = {pairs['alpha_minus_m']:.2f}: {shares('positives_beyond_alpha_minus_m')}; negatives within "
        f"alpha = {pairs['alpha']:.2f}: {shares('negatives_within_alpha')}.",
    ]


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_run_summary(run_dir: str | Path, summary: RunSummary) -> None:
    """summary.json and summary.md, atomically."""
    run_dir = Path(run_dir)
    atomic_write_text(run_dir / "summary.json", json.dumps(_json_safe(summary), indent=2))
    atomic_write_text(run_dir / "summary.md", summary_markdown(summary))
