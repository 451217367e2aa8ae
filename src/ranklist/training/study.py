"""Studies: the same protocol run under several variants and seeds, summarised as one table.

    ranklist compare configs/demo.yaml --seeds 0 1 2        # RLL against every baseline
    ranklist ablate configs/demo.yaml margin                # the paper's Table 4 on the recipe's data

Every variant shares the base recipe (backbone, embedding size, batches, iterations, augmentation,
validation-based selection), so budgets and dimensions are equal (Musgrave et al. 2020). A run
already finished with exactly the same configuration, in this study's folder or a sibling study's,
is reused: the base variant that several ablations share is trained once.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
from matplotlib.figure import Figure

from ranklist.atomic import atomic_write_text
from ranklist.losses import LOSS_NAMES
from ranklist.reporting.figures import save_figure
from ranklist.training.config import RunConfig, load_config
from ranklist.training.trainer import Trainer, hardware, source_commit

# The paper's ablations (CVPR 2019 Tables 3-7) and the two readings of the loss: variant -> overrides.
ABLATIONS: dict[str, dict[str, list[str]]] = {
    "alpha": {f"alpha={a}": [f"loss.alpha={a}"] for a in (1.0, 1.2, 1.4)},
    "margin": {f"m={m}": [f"loss.margin={m}"] for m in (0.0, 0.2, 0.4, 0.6, 1.2)},
    "temperature": {f"T={t}": [f"loss.neg_temperature={t}"] for t in (0, 5, 10, 15, 20)},
    "batch": {f"{c}x3": [f"data.classes_per_batch={c}", "data.samples_per_class=3"] for c in (40, 50, 55, 60, 65)},
    "level": {name: [f"model.levels=[{','.join(levels)}]"] for name, levels in
              (("L", "L"), ("M", "M"), ("H", "H"), ("L,M,H", "LMH"))},
    "gradient": {g: [f"loss.gradient={g}"] for g in ("query", "full")},
    "reduction": {r: [f"loss.reduction={r}"] for r in ("mean", "official")},
    "memory": {"batch only": [], "memory 1024": ["loss.memory_size=1024", "loss.memory_warmup=50"]},  # cross-batch memory
}
# The paper's SOP Recall@1 (CVPR 2019 Table 2 and Tables 3-7) beside each variant.
PAPER_SOP_RECALL1: dict[str, dict[str, float]] = {
    "compare": {"triplet_semihard": 66.7, "lifted_structure": 62.5, "npair": 66.4, "proxy_nca": 73.7, "rll": 79.8},
    "alpha": {"alpha=1.0": 78.7, "alpha=1.2": 79.8, "alpha=1.4": 76.2},
    "margin": {"m=0.0": 76.1, "m=0.2": 79.0, "m=0.4": 79.8, "m=0.6": 79.2, "m=1.2": 79.1},
    "temperature": {"T=0": 78.8, "T=5": 79.1, "T=10": 79.8, "T=15": 79.3, "T=20": 78.6},
    "batch": {"40x3": 79.2, "50x3": 79.5, "55x3": 79.7, "60x3": 79.8, "65x3": 79.8},
    "level": {"L": 76.1, "M": 76.9, "H": 76.1, "L,M,H": 79.8},
}
METRICS = ("recall@1", "recall@2", "recall@4", "recall@8", "map@r", "r_precision", "nmi")


def comparison_variants(losses: list[str]) -> dict[str, list[str]]:
    unknown = [name for name in losses if name not in LOSS_NAMES]
    if unknown:
        raise ValueError(f"unknown losses {unknown}; choose from {list(LOSS_NAMES)}")
    return {name: [f"loss.name={name}"] for name in losses}


def run_study(title: str, base: str | Path, variants: dict[str, list[str]], seeds: list[int], out: Path, *,
              overrides: list[str] | None = None, progress: bool = False, log: Callable[[str], None] = print,
              resume: bool = True, paper: dict[str, float] | None = None) -> dict[str, Any]:
    """Train every (variant, seed), then write study.json, study.md and study.png in `out`.

    With resume=True a finished run of the same configuration (in `out` or a sibling study folder)
    is read, not trained again, so an interrupted study continues where it stopped. `paper` gives
    the paper's SOP Recall@1 (%) of some variants, shown beside ours.
    """
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict[str, Any]]] = {}
    started = time.time()
    for name, variant in variants.items():
        for seed in seeds:
            config: RunConfig = load_config(base, [*(overrides or []), *variant, f"train.seed={seed}", f"name={_slug(title)}-{_slug(name)}-s{seed}"])
            run_dir = out / _slug(f"{name}-seed{seed}")
            finished = finished_run(config, [run_dir, *sorted(out.parent.glob("*/*/"))]) if resume else None
            if finished is not None:
                run_dir, summary = finished
            else:
                log(f"[{title}] {name}, seed {seed}")
                summary = Trainer(config, run_dir, progress=progress, log=log).run(overwrite=True)
            view = "concat" if "concat" in summary["test"] else next(iter(summary["test"]))
            rows.setdefault(name, []).append({"seed": seed, "run": str(run_dir.relative_to(out.parent)), "train_time_s": summary["train_time_s"],
                                              **{k: summary["test"][view].get(k) for k in METRICS}})
    table = {name: _mean_std(runs) for name, runs in rows.items()}
    result = {"title": title, "base": str(base), "overrides": overrides or [], "seeds": seeds, "variants": variants,
              "paper_sop_recall@1": paper or {}, "runs": rows, "table": table, "wall_time_s": round(time.time() - started, 1),
              "commit": source_commit(), "hardware": hardware()}
    atomic_write_text(out / "study.json", json.dumps(result, indent=2))
    atomic_write_text(out / "study.md", study_markdown(result))
    plot_study(result, out / "study.png")
    return result


def finished_run(config: RunConfig, candidates: list[Path]) -> tuple[Path, dict[str, Any]] | None:
    """The first candidate run folder that finished with exactly `config` (its name aside), and its summary."""
    want = {**json.loads(json.dumps(asdict(config))), "name": None}
    for folder in candidates:
        try:
            summary = json.loads((folder / "summary.json").read_text())
        except (OSError, ValueError):  # not a finished run
            continue
        if {**summary.get("config", {}), "name": None} == want:
            return folder, summary
    return None


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _mean_std(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in (*METRICS, "train_time_s"):
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            out[key] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}
    return out


def study_markdown(result: dict[str, Any]) -> str:
    table = result["table"]
    metrics = [m for m in METRICS if any(m in row for row in table.values())]
    paper = result.get("paper_sop_recall@1") or {}
    header = ["variant"] + [m.replace("recall@", "R@").replace("map@r", "MAP@R").replace("r_precision", "R-Prec").replace("nmi", "NMI") for m in metrics] + ["train s"]
    header += ["paper: SOP R@1"] if paper else []
    lines = [f"# {result['title']}", "",
             f"Base recipe `{result['base']}` with overrides {result['overrides'] or 'none'}; seeds {result['seeds']}; "
             f"test split (unseen classes), concatenated embedding; mean +- std over seeds, %."
             + (" Last column: the paper's Stanford Online Products Recall@1 (GoogLeNet V2), for the shape, not the level." if paper else "")
             + (f" Code: commit {result['commit']}." if result.get("commit") else ""), "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best = max(table, key=lambda v: table[v].get("recall@1", {}).get("mean", -1))
    for name, row in table.items():
        cells = [f"**{name}**" if name == best else name]
        for m in metrics:
            cell = row.get(m)
            cells.append("-" if cell is None else f"{100 * cell['mean']:.1f} +- {100 * cell['std']:.1f}" if cell["n"] > 1 else f"{100 * cell['mean']:.1f}")
        cells.append(f"{row['train_time_s']['mean']:.0f}" if "train_time_s" in row else "-")
        cells += [f"{paper[name]:.1f}" if name in paper else "-"] if paper else []
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Best Recall@1: **{best}**. Wall time {result['wall_time_s']} s.", ""]
    return "\n".join(lines)


def plot_study(result: dict[str, Any], path: Path) -> None:
    table = result["table"]
    names = list(table)
    figure = Figure(figsize=(max(6, 0.9 * len(names) + 2), 4))
    ax = figure.subplots()
    for offset, (metric, colour) in enumerate((("recall@1", "tab:blue"), ("map@r", "tab:orange"))):
        means = [100 * table[n].get(metric, {}).get("mean", np.nan) for n in names]
        stds = [100 * table[n].get(metric, {}).get("std", 0.0) for n in names]
        x = np.arange(len(names)) + (offset - 0.5) * 0.38
        ax.bar(x, means, 0.38, yerr=stds, capsize=3, color=colour, label=metric.replace("map@r", "MAP@R").replace("recall@1", "Recall@1"))
        for position, name in zip(x, names):  # each seed's run
            values = [100 * run[metric] for run in result["runs"][name] if run.get(metric) is not None]
            ax.plot([position] * len(values), values, "o", color="black", markersize=3, label="one seed" if position == x[0] and offset == 0 else None)
    ax.set_xticks(np.arange(len(names)), names, rotation=30, ha="right")
    ax.set(ylabel="% (test, unseen classes)", title=result["title"])
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: it would cover a bar
    save_figure(figure, path)
