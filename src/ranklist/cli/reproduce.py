"""`ranklist reproduce DATASET`: fetch the data and the weights, train the paper's recipe, and print
the result beside the paper's table with the gap (docs/reproduce.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

RECIPES = {"cub200": "cub200.yaml", "cars196": "cars196.yaml", "sop": "sop.yaml", "inshop": "inshop.yaml"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `ranklist reproduce`."""
    reproduce = subparsers.add_parser(
        "reproduce",
        help="fetch a benchmark and the BN-Inception weights, train the paper's recipe, compare with the paper",
    )
    reproduce.add_argument("dataset", choices=sorted(RECIPES))
    reproduce.add_argument("overrides", nargs="*", help="dotted overrides of the recipe (e.g. train.device=cuda:1)")
    reproduce.add_argument("--root", default="data", help="where the dataset is fetched (default data/)")
    reproduce.add_argument(
        "--weights", default="weights", help="where the BN-Inception weights are fetched (default weights/)"
    )
    reproduce.add_argument("--out", help="run folder (default runs/reproduce-<dataset>)")
    reproduce.add_argument("--config", help="the recipe (default configs/<dataset>.yaml)")
    reproduce.add_argument(
        "--resume", action="store_true", help="continue an interrupted reproduction from its last checkpoint"
    )
    reproduce.add_argument("--overwrite", action="store_true", help="replace an earlier reproduction's run folder")
    reproduce.add_argument(
        "--unverified", action="store_true", help="accept fetched files without a known checksum (In-shop, CARS196)"
    )
    reproduce.add_argument("--no-progress", action="store_true")
    reproduce.set_defaults(run=reproduce_command)


def recipe_path(dataset: str, given: str | None) -> Path:
    """--config, else configs/<recipe> in the working folder, else beside the package's source tree."""
    if given:
        return Path(given)
    candidates = [
        Path("configs") / RECIPES[dataset],
        Path(__file__).resolve().parents[3] / "configs" / RECIPES[dataset],
    ]
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        raise FileNotFoundError(
            f"recipe {RECIPES[dataset]} not found in {', '.join(str(p.parent) for p in candidates)}; give --config"
        )
    return found


def reproduce(
    dataset: str,
    *,
    root: str | Path,
    weights: str | Path,
    out: str | Path,
    overrides: list[str],
    config_path: Path,
    resume: bool = False,
    overwrite: bool = False,
    unverified: bool = False,
    progress: bool = True,
    log=print,
) -> dict[str, Any]:
    """Fetch, train, compare; writes OUT/reproduction.json and OUT/reproduction.md and returns the comparison."""
    from ranklist.atomic import atomic_write_text
    from ranklist.data.fetch import fetch
    from ranklist.models.backbones import check_weights
    from ranklist.reporting.paper import comparison, comparison_markdown
    from ranklist.training import Trainer, load_config

    data = fetch(dataset, root, unverified=unverified, log=log)
    weights_file = fetch("bn_inception", weights, check_weights=check_weights, log=log)
    # The fetched paths first: the user's overrides still win (e.g. another backbone).
    config = load_config(config_path, [f"data.root={data}", f"model.weights={weights_file}", *overrides])
    out = Path(out)
    summary = Trainer(config, out, progress=progress, log=log).run(resume=resume, overwrite=overwrite)
    if summary is None:  # a torchrun process other than rank 0
        return {}
    result = comparison(dataset, summary["test"])
    markdown = f"# Reproduction: {dataset}\n\nRecipe {config_path}, run {out}.\n\n" + comparison_markdown(result)
    atomic_write_text(out / "reproduction.json", json.dumps(result, indent=2))
    atomic_write_text(out / "reproduction.md", markdown)
    return result


def reproduce_command(args: argparse.Namespace) -> None:
    """Fetch, train and evaluate a paper recipe; print the comparison with the paper."""
    from ranklist.reporting.paper import comparison_markdown

    out = Path(args.out or Path("runs") / f"reproduce-{args.dataset}")
    result = reproduce(
        args.dataset,
        root=args.root,
        weights=args.weights,
        out=out,
        overrides=args.overrides,
        config_path=recipe_path(args.dataset, args.config),
        resume=args.resume,
        overwrite=args.overwrite,
        unverified=args.unverified,
        progress=not args.no_progress,
        log=lambda m: print(m, file=sys.stderr),
    )
    if result:
        print(comparison_markdown(result))
        print(f"(also in {out / 'reproduction.md'}; the run's report: {out / 'summary.md'})")
