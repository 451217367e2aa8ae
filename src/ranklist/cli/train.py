"""`ranklist train` and `ranklist demo`: a recipe to a run folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `ranklist train` and `ranklist demo`."""
    train = subparsers.add_parser("train", help="train a model from a YAML recipe")
    train.add_argument("config", help="a YAML recipe (configs/*.yaml)")
    train.add_argument("overrides", nargs="*", help="dotted overrides, e.g. loss.params.neg_temperature=12")
    train.add_argument("--out", help="run folder (default runs/<name>)")
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint, with its recorded configuration",
    )
    train.add_argument(
        "--overwrite", action="store_true", help="replace an existing run folder once the new run has started"
    )
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(run=train_command)
    demo = subparsers.add_parser("demo", help="the offline demo: train RLL on the emoji benchmark, evaluate, report")
    demo.add_argument("overrides", nargs="*")
    demo.add_argument("--out", default="runs/demo")
    demo.add_argument("--overwrite", action="store_true")
    demo.add_argument("--no-progress", action="store_true")
    demo.set_defaults(run=demo_command)


def train_command(args: argparse.Namespace) -> None:
    """Train a recipe into its run folder (or resume it)."""
    from ranklist.training import load_config

    config = load_config(args.config, args.overrides)
    _train(args, config, Path(args.out or Path("runs") / config.name), resume=args.resume)


def demo_command(args: argparse.Namespace) -> None:
    """Train the demo recipe into --out."""
    from ranklist.training.demo import demo_config

    _train(args, demo_config(args.overrides), Path(args.out))


def _train(args: argparse.Namespace, config, out: Path, resume: bool = False) -> None:
    from ranklist.evaluation.metric_names import RECALL_AT_1, headline_view
    from ranklist.training import Trainer

    summary = Trainer(config, out, progress=not args.no_progress, log=lambda m: print(m, file=sys.stderr)).run(
        resume=resume, overwrite=args.overwrite
    )
    if summary is None:  # a torchrun process other than rank 0: rank 0 reports
        return
    # A tuning fold (data.folds) has no test: its selected step's validation metrics stand in.
    split, scores = (
        ("test", summary["test"][headline_view(summary["test"])])
        if summary["test"]
        else ("validation", summary["validation"])
    )
    seconds = summary["wall_time_s"]
    print(f"{out}: {split} recall@1 {100 * scores[RECALL_AT_1]:.1f} % ({seconds} s); see {out / 'summary.md'}")
