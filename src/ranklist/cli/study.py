"""`ranklist compare` and `ranklist ablate`: one protocol, several variants and seeds, one table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ranklist.evaluation.metric_names import RECALL_AT_1


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `ranklist compare` and `ranklist ablate`."""
    for command, helptext, function in (
        ("compare", "train RLL and the baselines under one protocol; write a table", compare_command),
        ("ablate", "the paper's ablations on a recipe; write a table", ablate_command),
    ):
        study = subparsers.add_parser(command, help=helptext)
        study.add_argument("config", help="the base recipe (all variants share it)")
        if command == "compare":
            study.add_argument("--losses", nargs="+", default=None, help="default: every loss")
        else:
            study.add_argument(
                "study",
                help="alpha | margin | temperature | batch | level | gradient | reduction | reading | memory "
                "| backbone",
            )
        study.add_argument("overrides", nargs="*", help="dotted overrides applied to every variant")
        study.add_argument("--seeds", type=int, nargs="+", default=[0])
        study.add_argument(
            "--out",
            required=True,
            help="study folder (finished runs of the same configuration in it or a sibling study folder are reused)",
        )
        study.add_argument("--no-progress", action="store_true")
        study.set_defaults(run=function)


def compare_command(args: argparse.Namespace) -> None:
    """Train the chosen losses (default: all) under one recipe and write the comparison table."""
    from ranklist.losses import LOSS_NAMES
    from ranklist.training.study import comparison_variants

    _study(args, "compare", "loss comparison", comparison_variants(args.losses or list(LOSS_NAMES)))


def ablate_command(args: argparse.Namespace) -> None:
    """Run one of the paper's ablations on a recipe and write its table."""
    from ranklist.training.study import ABLATIONS

    if args.study not in ABLATIONS:
        raise ValueError(f"unknown ablation {args.study!r}; choose one of {sorted(ABLATIONS)}")
    _study(args, args.study, f"ablation: {args.study}", ABLATIONS[args.study])


def _study(args: argparse.Namespace, key: str, title: str, variants: dict[str, list[str]]) -> None:
    from ranklist.training.study import PAPER_SOP_RECALL1, run_study

    result = run_study(
        title,
        args.config,
        variants,
        args.seeds,
        Path(args.out),
        overrides=args.overrides,
        progress=not args.no_progress,
        log=lambda m: print(m, file=sys.stderr),
        paper=PAPER_SOP_RECALL1.get(key),
    )
    print(Path(args.out) / "study.md")
    print(
        json.dumps({k: round(v.get(RECALL_AT_1, {}).get("mean", float("nan")), 4) for k, v in result["table"].items()})
    )
