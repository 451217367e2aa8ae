"""The tuned comparison's table (tuned.md) and plot (tuned.png): per loss the mean with its 95 %
interval over seeds, the paired differences to the reference, and the bootstrap over test queries."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ranklist.evaluation.metric_names import MAP_AT_R, display_name, recall_key
from ranklist.reporting.figures import save_figure
from ranklist.reporting.study_report import plot_seed_points


def _pct(value: float | None, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:+.2f}" if sign else f"{100 * value:.2f}"


def _interval(cell: dict[str, Any] | None, sign: bool = False) -> str:
    if not cell:
        return "-"
    return f"{_pct(cell['mean'], sign)} +- {_pct(cell['std'])} [{_pct(cell['low'], sign)}, {_pct(cell['high'], sign)}]"


def _header(first: str, metrics: list[str]) -> list[str]:
    return ["| " + " | ".join([first, *(display_name(m) for m in metrics)]) + " |", "|" + "---|" * (len(metrics) + 1)]


def tuned_markdown(result: dict[str, Any]) -> str:
    """The tuned comparison as Markdown: per loss the mean and interval, the paired differences and the bootstrap."""
    metrics, reference, boot = result["metrics"], result["reference"], result["bootstrap"]
    lines = [
        "# Tuned comparison",
        "",
        "Each loss's `best.yaml` (from `ranklist tune`, chosen on folds of the training classes) "
        "trained on all training classes "
        f"with seeds {result['seeds']}, tested once on the unseen classes (concatenated embedding). Values in %: "
        "mean +- std [95 % t-interval] over seeds."
        + (f" Code: commit {result['commit']}." if result.get("commit") else ""),
        "",
        *_header("loss", metrics),
    ]
    lines += [
        "| "
        + " | ".join([f"**{name}**" if name == reference else name, *(_interval(row.get(m)) for m in metrics)])
        + " |"
        for name, row in result["table"].items()
    ]
    lines += [
        "",
        f"## Paired difference to {reference} (seeds paired)",
        "",
        f"Per seed, the loss's value minus {reference}'s; mean +- std [95 % t-interval] over the seeds, in points. "
        "An interval that holds 0 is no evidence of a difference.",
        "",
        *_header("loss", metrics),
    ]
    lines += [
        "| " + " | ".join([name, *(_interval(row.get(m), sign=True) for m in metrics)]) + " |"
        for name, row in result["differences"].items()
    ]
    per_query = [m for m in metrics if any(m in row for row in boot["differences"].values())]
    lines += [
        "",
        f"## Paired bootstrap over test queries (seed {boot['seed']}, {boot['resamples']} resamples)",
        "",
        f"The same queries resampled for both models; the difference to {reference} in points "
        "[95 % percentile interval] "
        f"(the share of resamples where it is <= 0). NMI scores a clustering, not queries: it has no bootstrap.",
        "",
        *_header("loss", per_query),
    ]
    for name, row in boot["differences"].items():
        cells = [
            f"{_pct(c['difference'], True)} [{_pct(c['low'], True)}, {_pct(c['high'], True)}] ({c['not_above']:.3f})"
            for c in (row[m] for m in per_query)
        ]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    lines += _tuned_values_lines(result.get("tuned_values", {}))
    lines += [
        "",
        "![tuned comparison](tuned.png)",
        "",
        f"Wall time {result['wall_time_s']} s (runs reused from earlier invocations count 0).",
        "",
    ]
    return "\n".join(lines)


def _tuned_values_lines(values: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Per loss, each searched key's tuned value beside the untuned recipe's (the loss's default)."""
    if not values:
        return []
    lines = [
        "",
        "## Tuned values",
        "",
        "| loss | key | tuned | untuned (recipe or loss default) |",
        "|---|---|---|---|",
    ]
    for name, keys in values.items():
        for key, pair in keys.items():
            lines.append(f"| {name} | `{key}` | {_value(pair['tuned'])} | {_value(pair['untuned'])} |")
    return lines


def _value(value: Any) -> str:
    """A tuned value as a table shows it: floats to 4 significant digits, None as the class default."""
    if value is None:
        return "(the class's default)"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def plot_tuned(result: dict[str, Any], path: Path) -> None:
    """Left: MAP@R and Recall@1 per loss with their 95 % intervals and each seed; right: the paired
    differences to the reference with their intervals."""
    names, table, reference = list(result["table"]), result["table"], result["reference"]
    figure = Figure(figsize=(max(9, 1.6 * len(names) + 5), 4))
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2], "wspace": 0.45})
    for offset, (metric, colour) in enumerate(((MAP_AT_R, "tab:orange"), (recall_key(1), "tab:blue"))):
        x = np.arange(len(names)) + (offset - 0.5) * 0.38
        means = np.array([100 * table[n].get(metric, {}).get("mean", np.nan) for n in names])
        errors = [
            [100 * (table[n][metric]["mean"] - table[n][metric]["low"]) if metric in table[n] else 0 for n in names],
            [100 * (table[n][metric]["high"] - table[n][metric]["mean"]) if metric in table[n] else 0 for n in names],
        ]
        left.bar(
            x,
            means,
            0.38,
            yerr=np.nan_to_num(errors),
            capsize=3,
            color=colour,
            label=f"{display_name(metric).replace('R@1', 'Recall@1')} (95 % CI)",
        )
        plot_seed_points(left, x, [result["runs"][name] for name in names], metric, legend=offset == 0, markersize=2.5)
    left.set_xticks(np.arange(len(names)), names, rotation=30, ha="right")
    left.set(ylabel="% (test, unseen classes)", title="tuned losses")
    left.set_ylim(bottom=0)
    left.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3, fontsize=8
    )  # below: it hid bars and ticks above
    _plot_differences(right, result, reference)
    save_figure(figure, path)


def _plot_differences(ax, result: dict[str, Any], reference: str) -> None:
    names = list(result["differences"])
    for offset, (metric, colour) in enumerate(((MAP_AT_R, "tab:orange"), (recall_key(1), "tab:blue"))):
        y = np.arange(len(names)) + (offset - 0.5) * 0.3
        cells = [result["differences"][n].get(metric) for n in names]
        means = np.array([100 * c["mean"] if c else np.nan for c in cells])
        spans = np.array(
            [[100 * (c["mean"] - c["low"]), 100 * (c["high"] - c["mean"])] if c else [0, 0] for c in cells]
        ).T
        ax.errorbar(
            means,
            y,
            xerr=np.nan_to_num(spans.reshape(2, -1)),
            fmt="o",
            color=colour,
            capsize=3,
            label=display_name(metric),
        )
    ax.axvline(0, color="black", linewidth=1)
    ax.set_yticks(np.arange(len(names)), names)
    ax.set_ylim(len(names) - 0.5, -0.5)  # each loss's two intervals beside its name, the first at the top
    ax.set(xlabel=f"minus {reference}, points (seeds paired, 95 % CI)", title=f"difference to {reference}")
    ax.legend(loc="best", fontsize=8)
