"""summary.json and summary.md: the page of a run a person reads first."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ranklist.atomic import atomic_write_text
from ranklist.evaluation.metric_names import CONCAT, VIEW_ORDER, display_name, score_columns


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


def summary_markdown(summary: dict[str, Any]) -> str:
    config = summary.get("config", {})
    model, loss, data = config.get("model", {}), config.get("loss", {}), summary.get("dataset", {})
    hw = summary.get("hardware", {})
    lines = [f"# {summary.get('name', 'run')}", ""]
    lines.append(
        f"{loss.get('name', '?')} on **{data.get('name', '?')}** with {model.get('backbone', '?')} "
        f"(levels {', '.join(model.get('levels', []))}, {model.get('embedding_dim', '?')}-d each); "
        f"{summary.get('iterations', '?')} iterations in {summary.get('train_time_s', '?')} s of training "
        f"({summary.get('train_images_per_s', '?')} images/s), "
        f"{summary.get('wall_time_s', '?')} s in all, on {hw.get('cpu', '?')} ({hw.get('threads', '?')} threads, "
        f"{hw.get('device', '?')}, torch {hw.get('torch', '?')})"
        + (f"; code at commit {summary['commit']}." if summary.get("commit") else ".")
    )
    times = summary.get("time_s")
    if times:
        lines += [
            "",
            "Time (s): "
            + ", ".join(f"{phase.replace('_', ' ')} {seconds}" for phase, seconds in times.items())
            + (
                f"; frozen blocks in {summary['frozen_precision']} during training"
                if summary.get("frozen_precision") == "bf16"
                else ""
            )
            + ".",
        ]
    if data:
        lines += ["", "Data: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in data.items() if k != "name") + "."]
    test = summary.get("test", {})
    rows = [(level, test[level]) for level in VIEW_ORDER if level in test]
    baseline = summary.get("baseline")
    if baseline:
        rows.insert(0, (baseline.get("description", "baseline"), baseline["test"].get("H", {})))
    if rows:
        lines += ["", "## Test metrics (unseen classes, %)", "", *_metric_table(rows)]
    if baseline and test:
        final = test.get(CONCAT) or next(iter(test.values()))
        before = baseline["test"].get("H", {})
        if "recall@1" in final and "recall@1" in before:
            lines += [
                "",
                f"Recall@1 {_pct(before['recall@1'])} % before training -> {_pct(final['recall@1'])} % after "
                f"({100 * (final['recall@1'] - before['recall@1']):+.1f} points).",
            ]
    lines += _pair_lines(summary.get("pair_distances"))
    best = summary.get("best")
    if best:
        lines += [
            "",
            f"Model selection: {best['metric']} = {_pct(best['value'])} % at iteration {best['step']} "
            "(validation classes are held-out training classes; the test split was used once, at the end).",
        ]
    elif "val_images" not in data and test:
        lines += ["", "No validation split (data.val_fraction = 0): the last iteration's model was tested, once."]
    plots = summary.get("plots", {})
    if plots:
        lines += ["", "## Plots", ""] + [f"- [{title}]({rel})" for title, rel in plots.items()]
        lines += [""] + [f"![{title}]({rel})" for title, rel in plots.items()]
    lines += ["", "The resolved configuration is in `config.yaml`; every logged value is in `metrics.jsonl`.", ""]
    return "\n".join(lines)


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


def write_run_summary(run_dir: str | Path, summary: dict[str, Any]) -> None:
    run_dir = Path(run_dir)
    atomic_write_text(run_dir / "summary.json", json.dumps(_json_safe(summary), indent=2))
    atomic_write_text(run_dir / "summary.md", summary_markdown(summary))
