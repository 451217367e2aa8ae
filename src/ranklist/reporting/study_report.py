"""A study's table (study.md) and plot (study.png): one row per variant, mean +- std over seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ranklist.evaluation.metric_names import MAP_AT_R, display_name, recall_key, score_columns
from ranklist.reporting.figures import save_figure

PAPER_SOP_RECALL_AT_1 = "paper_sop_recall@1"  # study.json: the paper's SOP Recall@1 per variant, for the shape

TIME = "train_time_s"


def mean_std(runs: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    """{key: {mean, std, n}} over the runs that have the key."""
    out: dict[str, Any] = {}
    for key in (*keys, TIME):
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            out[key] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}
    return out


def _cell(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "-"
    return f"{100 * cell['mean']:.1f} +- {100 * cell['std']:.1f}" if cell["n"] > 1 else f"{100 * cell['mean']:.1f}"


def study_markdown(result: dict[str, Any]) -> str:
    """The study's table as Markdown: per variant each metric's mean +- std over seeds and the train time."""
    table = result["table"]
    metrics = score_columns(table.values())
    paper = result.get(PAPER_SOP_RECALL_AT_1) or {}
    header = ["variant", *(display_name(m) for m in metrics), "train s", *(["paper: SOP R@1"] if paper else [])]
    lines = [
        f"# {result['title']}",
        "",
        f"Base recipe `{result['base']}` with overrides {result['overrides'] or 'none'}; seeds {result['seeds']}; "
        f"test split (unseen classes), concatenated embedding; mean +- std over seeds, %."
        + (
            " Last column: the paper's Stanford Online Products Recall@1 (GoogLeNet V2), for the shape, not the level."
            if paper
            else ""
        )
        + (f" Code: commit {result['commit']}." if result.get("commit") else ""),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    best = max(table, key=lambda v: table[v].get(recall_key(1), {}).get("mean", -1))
    for name, row in table.items():
        cells = [f"**{name}**" if name == best else name, *(_cell(row.get(m)) for m in metrics)]
        cells.append(f"{row[TIME]['mean']:.0f}" if TIME in row else "-")
        cells += [f"{paper[name]:.1f}" if name in paper else "-"] if paper else []
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Best Recall@1: **{best}**. Wall time {result['wall_time_s']} s.", ""]
    return "\n".join(lines)


def plot_seed_points(
    ax: Any, positions: Any, runs: list[list[dict[str, Any]]], metric: str, *, legend: bool, markersize: float
) -> None:
    """Each seed's value of `metric` (in %) as a black dot over its bar; `runs` holds each bar's runs.
    `legend`: label the first dot "one seed"."""
    for position, bar_runs in zip(positions, runs):
        values = [100 * run[metric] for run in bar_runs if run.get(metric) is not None]
        ax.plot(
            [position] * len(values),
            values,
            "o",
            color="black",
            markersize=markersize,
            label="one seed" if legend and position == positions[0] else None,
        )


def plot_study(result: dict[str, Any], path: Path) -> None:
    """Plot the study's Recall@1 and MAP@R per variant (bars of the mean +- std, a dot per seed) to `path`."""
    table = result["table"]
    names = list(table)
    figure = Figure(figsize=(max(6, 0.9 * len(names) + 2), 4))
    ax = figure.subplots()
    for offset, (metric, colour) in enumerate(((recall_key(1), "tab:blue"), (MAP_AT_R, "tab:orange"))):
        means = [100 * table[n].get(metric, {}).get("mean", np.nan) for n in names]
        stds = [100 * table[n].get(metric, {}).get("std", 0.0) for n in names]
        x = np.arange(len(names)) + (offset - 0.5) * 0.38
        ax.bar(
            x, means, 0.38, yerr=stds, capsize=3, color=colour, label=display_name(metric).replace("R@1", "Recall@1")
        )
        plot_seed_points(ax, x, [result["runs"][name] for name in names], metric, legend=offset == 0, markersize=3)
    ax.set_xticks(np.arange(len(names)), names, rotation=30, ha="right")
    ax.set(ylabel="% (test, unseen classes)", title=result["title"])
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: it would cover a bar
    save_figure(figure, path)
