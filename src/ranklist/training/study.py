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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ranklist.atomic import atomic_write_text
from ranklist.evaluation.metric_names import EXCLUDED, headline_view, score_columns
from ranklist.losses import LOSS_NAMES
from ranklist.reporting.provenance import hardware, source_commit
from ranklist.reporting.study_report import PAPER_SOP_RECALL_AT_1, mean_std, plot_study, study_markdown
from ranklist.training.config import RunConfig, comparable_config, load_config
from ranklist.training.trainer import Trainer

# The paper's ablations (CVPR 2019 Tables 3-7) and the two readings of the loss: variant -> overrides.
ABLATIONS: dict[str, dict[str, list[str]]] = {
    "alpha": {f"alpha={a}": [f"loss.params.alpha={a}"] for a in (1.0, 1.2, 1.4)},
    "margin": {f"m={m}": [f"loss.params.margin={m}"] for m in (0.0, 0.2, 0.4, 0.6, 1.2)},
    "temperature": {f"T={t}": [f"loss.params.neg_temperature={t}"] for t in (0, 5, 10, 15, 20)},
    "batch": {f"{c}x3": [f"data.classes_per_batch={c}", "data.samples_per_class=3"] for c in (40, 50, 55, 60, 65)},
    "level": {
        name: [f"model.levels=[{','.join(levels)}]"]
        for name, levels in (("L", "L"), ("M", "M"), ("H", "H"), ("L,M,H", "LMH"))
    },
    "gradient": {g: [f"loss.params.gradient={g}"] for g in ("query", "full")},
    "reduction": {r: [f"loss.params.reduction={r}"] for r in ("mean", "official")},
    # Which reading of the gradient makes pytorch-metric-learning's RLL differ from ours: both
    # gradients, with the pair weights constant (the authors' code) or differentiated (pml), and
    # pml's own loss (full, differentiated, plus its 1e-5 per column) at the paper's values.
    "reading": {
        "query": ["loss.params.gradient=query", "loss.params.weight_gradient=false"],
        "full": ["loss.params.gradient=full", "loss.params.weight_gradient=false"],
        "query, w differentiated": ["loss.params.gradient=query", "loss.params.weight_gradient=true"],
        "full, w differentiated": ["loss.params.gradient=full", "loss.params.weight_gradient=true"],
        "pml_ranked_list": ["loss.name=pml_ranked_list", "loss.preset=null"],
    },
    "memory": {
        "batch only": [],
        "memory 1024": ["loss.memory_size=1024", "loss.memory_warmup=50"],
    },  # cross-batch memory
    "backbone": {
        name: [f"model.backbone={name}"] for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
    },
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


def comparison_variants(losses: list[str]) -> dict[str, list[str]]:
    """Each loss's overrides for a comparison (baselines without RLL's preset)."""
    unknown = [name for name in losses if name not in LOSS_NAMES]
    if unknown:
        raise ValueError(f"unknown losses {unknown}; choose from {list(LOSS_NAMES)}")
    # A baseline takes none of RLL's presets.
    return {name: [f"loss.name={name}"] + ([] if name == "rll" else ["loss.preset=null"]) for name in losses}


def run_study(
    title: str,
    base: str | Path,
    variants: dict[str, list[str]],
    seeds: list[int],
    out: Path,
    *,
    overrides: list[str] | None = None,
    progress: bool = False,
    log: Callable[[str], None] = print,
    resume: bool = True,
    paper: dict[str, float] | None = None,
    bases: dict[str, str | Path] | None = None,
) -> dict[str, Any]:
    """Train every (variant, seed), then write study.json, study.md and study.png in `out`.

    bases: a variant's own recipe in place of `base` (a tuned comparison: each loss's best.yaml).

    With resume=True a finished run of the same configuration (in `out` or a sibling study folder)
    is read, not trained again, so an interrupted study continues where it stopped. `paper` gives
    the paper's SOP Recall@1 (%) of some variants, shown beside ours.
    """
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict[str, Any]]] = {}
    started = time.time()
    for name, variant in variants.items():
        for seed in seeds:
            recipe = (bases or {}).get(name, base)
            config: RunConfig = load_config(
                recipe,
                [*(overrides or []), *variant, f"train.seed={seed}", f"name={_slug(title)}-{_slug(name)}-s{seed}"],
            )
            run_dir = out / _slug(f"{name}-seed{seed}")
            finished = finished_run(config, [run_dir, *sorted(out.parent.glob("*/*/"))]) if resume else None
            if finished is not None:
                run_dir, summary = finished
            else:
                log(f"[{title}] {name}, seed {seed}")
                summary = Trainer(config, run_dir, progress=progress, log=log, baseline_cache=out / ".baselines").run(
                    overwrite=True
                )
            scores = {k: v for k, v in summary["test"][headline_view(summary["test"])].items() if k != EXCLUDED}
            rows.setdefault(name, []).append(
                {
                    "seed": seed,
                    "run": str(run_dir.relative_to(out.parent)),
                    "train_time_s": summary["train_time_s"],
                    **scores,
                }
            )
    table = {name: mean_std(runs, score_columns(runs)) for name, runs in rows.items()}
    result = {
        "title": title,
        "base": str(base),
        **({"bases": {k: str(v) for k, v in bases.items()}} if bases else {}),
        "overrides": overrides or [],
        "seeds": seeds,
        "variants": variants,
        PAPER_SOP_RECALL_AT_1: paper or {},
        "runs": rows,
        "table": table,
        "wall_time_s": round(time.time() - started, 1),
        "commit": source_commit(),
        "hardware": hardware(),
    }
    atomic_write_text(out / "study.json", json.dumps(result, indent=2))
    atomic_write_text(out / "study.md", study_markdown(result))
    plot_study(result, out / "study.png")
    return result


def finished_run(config: RunConfig, candidates: list[Path]) -> tuple[Path, dict[str, Any]] | None:
    """The first candidate run folder that finished with exactly `config` (its name aside), and its summary."""
    want = comparable_config(config)
    for folder in candidates:
        try:
            summary = json.loads((folder / "summary.json").read_text())
            if comparable_config(summary["config"]) == want:
                return folder, summary
        except (OSError, ValueError, KeyError, TypeError):  # not a finished run of this version's shape
            continue
    return None


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
