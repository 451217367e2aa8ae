"""`ranklist tune`: choose a recipe's hyper-parameters by class-disjoint cross-validation (Optuna)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ranklist.evaluation.metric_names import MAP_AT_R, QUERY_METRICS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `ranklist tune` and `ranklist compare-tuned`."""
    tune = subparsers.add_parser(
        "tune",
        help="tune a recipe's hyper-parameters on folds of its training classes (Optuna; the test split is never read)",
    )
    tune.add_argument("config", help="the base recipe (configs/*.yaml)")
    tune.add_argument("overrides", nargs="*", help="dotted overrides applied to every trial")
    tune.add_argument("--space", required=True, help="search space YAML (configs/spaces/*.yaml)")
    tune.add_argument(
        "--trials",
        type=int,
        required=True,
        help="the study's total number of trials (all processes sharing it together)",
    )
    tune.add_argument("--folds", type=int, default=4, help="class-disjoint folds of the training classes (default 4)")
    tune.add_argument("--out", required=True, help="study folder: tune.db, trials/, best.yaml, tune.json, tune.md")
    tune.add_argument(
        "--storage",
        help="an Optuna storage URL (default sqlite:///OUT/tune.db); "
        "a shared database lets several machines work on one study",
    )
    tune.add_argument("--study", help="the study's name in the storage (default: the space file's name)")
    tune.add_argument(
        "--metric",
        default=MAP_AT_R,
        help=f"validation metric to maximise: {', '.join(QUERY_METRICS)} (default: the first)",
    )
    tune.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    tune.add_argument("--no-progress", action="store_true")
    tune.set_defaults(run=tune_command)
    tuned = subparsers.add_parser(
        "compare-tuned",
        help="train each tuned recipe (DIR/best.yaml) with several seeds; "
        "mean, 95 %% CI, paired differences, bootstrap",
    )
    tuned.add_argument("folders", nargs="+", help="tuning folders of `ranklist tune` (a folder's name names its loss)")
    tuned.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="default 0 1 2 3 4")
    tuned.add_argument(
        "--reference", default="rll", help="the loss the others are paired against (a folder's name; default rll)"
    )
    tuned.add_argument(
        "--resamples", type=int, default=10_000, help="bootstrap resamples over test queries (default 10000)"
    )
    tuned.add_argument(
        "--out",
        required=True,
        help="comparison folder (finished runs of the same configuration in it or a sibling study folder are reused)",
    )
    tuned.add_argument("--no-progress", action="store_true")
    tuned.set_defaults(run=compare_tuned_command)


def tune_command(args: argparse.Namespace) -> None:
    """Run (or continue) a tuning study; print its report's and best recipe's paths."""
    from ranklist.tuning import tune

    report = tune(
        args.config,
        args.overrides,
        args.space,
        trials=args.trials,
        folds=args.folds,
        out=Path(args.out),
        storage=args.storage,
        study=args.study,
        metric=args.metric,
        seed=args.seed,
        progress=not args.no_progress,
        log=lambda m: print(m, file=sys.stderr),
    )
    best = Path(args.out) / "best.yaml"
    print(f"{report}" + (f"; best recipe: {best}" if best.is_file() else "; no trial completed"), file=sys.stdout)


def compare_tuned_command(args: argparse.Namespace) -> None:
    """Compare tuned recipes over paired seeds; print tuned.md's path and a JSON summary."""
    from ranklist.tuning.compare import compare_tuned

    result = compare_tuned(
        [Path(f) for f in args.folders],
        args.seeds,
        Path(args.out),
        reference=args.reference,
        resamples=args.resamples,
        progress=not args.no_progress,
        log=lambda m: print(m, file=sys.stderr),
    )
    print(Path(args.out) / "tuned.md")
    print(
        json.dumps(
            {name: round(row.get(MAP_AT_R, {}).get("mean", float("nan")), 4) for name, row in result["table"].items()}
        )
    )
