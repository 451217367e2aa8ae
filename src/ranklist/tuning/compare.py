"""The tuned comparison: each loss's tuned recipe (DIR/best.yaml of `ranklist tune`) trained on all
training classes with several seeds and tested once, then per loss the mean, std and 95 % t-interval
over seeds, the paired difference to a reference loss per metric (seeds paired), and a paired
bootstrap over the test queries of one seed.

    compare_tuned([Path("runs/tune/rll"), Path("runs/tune/multi_similarity")],
                  seeds=[0, 1, 2, 3, 4], out=Path("runs/tuned"))

The runs go through the study machinery (training/study.py): a finished run with the same
configuration is read, not trained again, so an interrupted comparison continues where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ranklist.atomic import atomic_write_text
from ranklist.evaluation.metric_names import MAP_AT_R, NMI, R_PRECISION, recall_key
from ranklist.evaluation.paired import paired_bootstrap, paired_difference, t_interval
from ranklist.tuning.tuned_values import tuned_values

METRICS = (MAP_AT_R, recall_key(1), R_PRECISION, NMI)  # MAP@R first (MLRC's primary metric)
PER_QUERY = (MAP_AT_R, recall_key(1), R_PRECISION)  # NMI is a clustering score, not a mean over queries


def tuned_recipes(folders: list[Path]) -> dict[str, Path]:
    """{variant name (the folder's name): its best.yaml}; a folder without one is an error naming it."""
    recipes: dict[str, Path] = {}
    for folder in folders:
        recipe = folder / "best.yaml"
        if not recipe.is_file():
            raise FileNotFoundError(
                f"{folder} holds no best.yaml (run `ranklist tune ... --out {folder}` until a trial completes)"
            )
        if folder.name in recipes:
            raise ValueError(
                f"two tuning folders are named {folder.name!r} ({recipes[folder.name].parent} and {folder}); "
                "the names label the losses"
            )
        recipes[folder.name] = recipe
    return recipes


def compare_tuned(
    folders: list[Path],
    seeds: list[int],
    out: Path,
    *,
    reference: str = "rll",
    resamples: int = 10_000,
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train (or reuse) every tuned recipe x seed, then write tuned.json, tuned.md and tuned.png in `out`."""
    from ranklist.training.study import run_study
    from ranklist.tuning.compare_report import plot_tuned, tuned_markdown

    recipes = tuned_recipes(folders)
    if reference not in recipes:
        raise ValueError(
            f"--reference {reference!r} is not among the tuned losses {list(recipes)} (a folder's name names its loss)"
        )
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds must be at least 2 different seeds (5 or more for a useful interval), got {seeds}")
    study = run_study(
        "tuned comparison",
        recipes[reference],
        {name: [] for name in recipes},
        seeds,
        out,
        progress=progress,
        log=log,
        bases=recipes,
    )
    result = tuned_statistics(study, reference)
    result["bootstrap"] = bootstrap_by_query(study, out.parent, reference, seeds[0], resamples)
    result["recipes"] = {name: str(path) for name, path in recipes.items()}
    result["tuned_values"] = {name: tuned_values(path.parent) for name, path in recipes.items()}
    atomic_write_text(out / "tuned.json", json.dumps(result, indent=2))
    atomic_write_text(out / "tuned.md", tuned_markdown(result))
    plot_tuned(result, out / "tuned.png")
    return result


def tuned_statistics(study: dict[str, Any], reference: str) -> dict[str, Any]:
    """Per loss and metric: the t-interval over seeds, and the paired difference to `reference`."""
    runs = study["runs"]
    by_seed = {
        name: {metric: {r["seed"]: r[metric] for r in rows if r.get(metric) is not None} for metric in METRICS}
        for name, rows in runs.items()
    }
    table = {
        name: {metric: asdict(t_interval(list(values.values()))) for metric, values in metrics.items() if values}
        for name, metrics in by_seed.items()
    }
    differences = {
        name: {
            metric: asdict(paired_difference(values, by_seed[reference][metric]))
            for metric, values in metrics.items()
            if values and by_seed[reference][metric]
        }
        for name, metrics in by_seed.items()
        if name != reference
    }
    return {
        "reference": reference,
        "seeds": study["seeds"],
        "metrics": list(METRICS),
        "table": table,
        "differences": differences,
        "runs": runs,
        "wall_time_s": study["wall_time_s"],
        "commit": study["commit"],
        "hardware": study["hardware"],
    }


def bootstrap_by_query(study: dict[str, Any], root: Path, reference: str, seed: int, resamples: int) -> dict[str, Any]:
    """The paired bootstrap over test queries of each loss against `reference`, on the runs of `seed`."""
    folders = {name: root / next(r["run"] for r in rows if r["seed"] == seed) for name, rows in study["runs"].items()}
    values = {name: per_query_values(folder) for name, folder in folders.items()}
    result: dict[str, Any] = {"seed": seed, "resamples": resamples, "differences": {}}
    for name, metrics in values.items():
        if name != reference:
            result["differences"][name] = {
                metric: asdict(
                    paired_bootstrap(metrics[metric], values[reference][metric], resamples=resamples, seed=seed)
                )
                for metric in PER_QUERY
            }
    return result


def per_query_values(run: Path) -> dict[str, np.ndarray]:
    """A finished run's selected model on its test split: each query's MAP@R, Recall@1 and R-Precision
    (the concatenated view; the same queries, in the same order, for every run of one dataset)."""
    from ranklist.data import build_dataset, dataset_spec, evaluation_splits
    from ranklist.evaluation import Evaluator
    from ranklist.evaluation.retrieval import per_query_metrics
    from ranklist.models import evaluation_embedding, load_model
    from ranklist.training.config import load_config
    from ranklist.training.preflight import resolve_device

    config = load_config(run / "config.yaml")
    summary = json.loads((run / "summary.json").read_text())
    device = resolve_device(config.train.device)
    model = load_model(run / "checkpoints" / ("best.pt" if summary.get("best") else "last.pt"), map_location=device)
    d = config.data
    options = {"val_fraction": d.val_fraction, **{key: getattr(d, key) for key in dataset_spec(d.name).run_options}}
    protocol, transform = evaluation_splits(d.name, d.root), model.preprocessing.transform(train=False)
    queries = build_dataset(d.name, protocol.queries, root=d.root, transform=transform, **options)
    gallery = (
        build_dataset(d.name, protocol.gallery, root=d.root, transform=transform, **options)
        if protocol.gallery
        else None
    )
    evaluator = Evaluator(
        batch_size=config.eval.batch_size,
        device=str(device),
        progress=False,
        compute_nmi=False,  # and the precision the checkpoint records, as the run's test had it
    )
    embedded = evaluator.embed(model, queries, gallery)
    gallery_outputs = embedded.gallery_outputs
    per_query, _ = per_query_metrics(
        evaluation_embedding(embedded.outputs),
        embedded.labels,
        (1,),
        evaluation_embedding(gallery_outputs) if gallery_outputs is not None else None,
        embedded.gallery_labels,
    )
    return {metric: per_query[metric].numpy() for metric in PER_QUERY}
