"""ranklist command line: train | evaluate | embed | index | search | compare | ablate | demo | data.

Every failure the user can fix (a missing folder, a bad config value, an incompatible checkpoint)
ends in one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

EXIT_USAGE = 2


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="a dataset name (cub200, cars196, sop, inshop, folder, csv, emoji, fashion_mnist)")
    parser.add_argument("--root", help="the dataset's folder (or CSV file)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--allow-partial", action="store_true", help="accept an incomplete copy of a benchmark")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--no-progress", action="store_true")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ranklist", description="Ranked List Loss for deep metric learning")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a model from a YAML recipe")
    train.add_argument("config", help="a YAML recipe (configs/*.yaml)")
    train.add_argument("overrides", nargs="*", help="dotted overrides, e.g. loss.neg_temperature=12")
    train.add_argument("--out", help="run folder (default runs/<name>)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    train.add_argument("--no-progress", action="store_true")
    demo = sub.add_parser("demo", help="the offline demo: train RLL on the emoji benchmark, evaluate, report")
    demo.add_argument("overrides", nargs="*")
    demo.add_argument("--out", default="runs/demo")
    demo.add_argument("--overwrite", action="store_true")
    demo.add_argument("--no-progress", action="store_true")
    evaluate = sub.add_parser("evaluate", help="metrics of a checkpoint on a dataset split")
    evaluate.add_argument("checkpoint")
    _add_data_options(evaluate)
    evaluate.add_argument("--gallery-split", help="evaluate the split as queries against this gallery split (In-shop)")
    evaluate.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8])
    evaluate.add_argument("--levels", nargs="+", help="levels to score (default all, plus their concatenation)")
    evaluate.add_argument("--out", help="also write the metrics to this JSON file")
    embed = sub.add_parser("embed", help="embed a dataset split with a checkpoint into an .npz file")
    embed.add_argument("checkpoint")
    _add_data_options(embed)
    embed.add_argument("--out", required=True, help="output .npz (embedding = evaluation embedding; raw levels too)")
    for command, helptext in (("compare", "train RLL and the baselines under one protocol; write a table"),
                              ("ablate", "the paper's ablations on a recipe; write a table")):
        study = sub.add_parser(command, help=helptext)
        study.add_argument("config", help="the base recipe (all variants share it)")
        if command == "compare":
            study.add_argument("--losses", nargs="+", default=None, help="default: every loss")
        else:
            study.add_argument("study", help="alpha | margin | temperature | batch | level | gradient | reduction | memory")
        study.add_argument("overrides", nargs="*", help="dotted overrides applied to every variant")
        study.add_argument("--seeds", type=int, nargs="+", default=[0])
        study.add_argument("--out", required=True, help="study folder (finished runs of the same configuration in it or a sibling study folder are reused)")
        study.add_argument("--no-progress", action="store_true")
    index = sub.add_parser("index", help="build a faiss index from an embeddings file (ranklist embed)")
    index.add_argument("embeddings", help=".npz written by `ranklist embed`")
    index.add_argument("--out", required=True, help="index folder")
    index.add_argument("--kind", default="flat", help="flat (exact) | ivf | ivfpq")
    search = sub.add_parser("search", help="nearest indexed items of each embedding in a file")
    search.add_argument("index", help="index folder (ranklist index)")
    search.add_argument("queries", help=".npz written by `ranklist embed`")
    search.add_argument("--k", type=int, default=10)
    data = sub.add_parser("data", help="prepare datasets")
    data.add_argument("what", choices=["emoji"], help="emoji: fetch and build the offline benchmark cache")
    data.add_argument("--cache", help="cache folder (default $RANKLIST_CACHE/emoji or ~/.cache/ranklist/emoji)")
    return parser


def _dataset(args: argparse.Namespace, model, split: str):
    from ranklist.data import build_dataset, build_transform

    transform = build_transform(False, image_size=model.default_image_size, normalization=model.normalization)
    options = {"allow_partial": True} if args.allow_partial else {}
    return build_dataset(args.dataset, split, root=args.root, transform=transform, **options)


def _train(args: argparse.Namespace, config, out: Path, resume: bool = False) -> None:
    from ranklist.training import Trainer

    summary = Trainer(config, out, progress=not args.no_progress, log=lambda m: print(m, file=sys.stderr)).run(
        resume=resume, overwrite=args.overwrite)
    if summary is None:  # a torchrun process other than rank 0: rank 0 reports
        return
    final = summary["test"].get("concat") or next(iter(summary["test"].values()))
    print(f"{out}: test recall@1 {100 * final['recall@1']:.1f} % ({summary['wall_time_s']} s); see {out / 'summary.md'}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ranklist.training.config import ConfigError
    from ranklist.training.trainer import RunFolderError

    try:
        if args.command == "train":
            from ranklist.training import load_config

            config = load_config(args.config, args.overrides)
            _train(args, config, Path(args.out or Path("runs") / config.name), resume=args.resume)
        elif args.command == "demo":
            from ranklist.training.demo import demo_config

            _train(args, demo_config(args.overrides), Path(args.out))
        elif args.command == "evaluate":
            from ranklist.evaluation import Evaluator
            from ranklist.models import load_model

            model = load_model(args.checkpoint)
            evaluator = Evaluator(batch_size=args.batch_size, progress=not args.no_progress, ks=tuple(args.ks))
            gallery = _dataset(args, model, args.gallery_split) if args.gallery_split else None
            metrics = evaluator.evaluate(model, _dataset(args, model, args.split), gallery, levels=args.levels)
            text = json.dumps(metrics, indent=2)
            if args.out:
                from ranklist.atomic import atomic_write_text

                atomic_write_text(args.out, text)
            print(text)
        elif args.command == "embed":
            from ranklist.atomic import atomic_path
            from ranklist.evaluation import embed_dataset
            from ranklist.models import evaluation_embedding, load_model

            model = load_model(args.checkpoint)
            dataset = _dataset(args, model, args.split)
            outputs, labels = embed_dataset(model, dataset, batch_size=args.batch_size, progress=not args.no_progress)
            arrays = {"embedding": evaluation_embedding(outputs).numpy(), "labels": labels.numpy(),
                      **{f"level_{k}": v.numpy() for k, v in outputs.items()}}
            if hasattr(dataset, "paths"):
                arrays["paths"] = np.array([str(p) for p in dataset.paths])
            out = Path(args.out)
            if out.suffix != ".npz":
                raise ValueError(f"--out must end in .npz, got {out}")
            with atomic_path(out) as tmp:
                with open(tmp, "wb") as handle:
                    np.savez(handle, **arrays)
            print(f"{out}: {len(labels)} embeddings of dimension {arrays['embedding'].shape[1]}")
        elif args.command in ("compare", "ablate"):
            from ranklist.losses import LOSS_NAMES
            from ranklist.training.study import ABLATIONS, PAPER_SOP_RECALL1, comparison_variants, run_study

            if args.command == "compare":
                key, title, variants = "compare", "loss comparison", comparison_variants(args.losses or list(LOSS_NAMES))
            else:
                if args.study not in ABLATIONS:
                    raise ValueError(f"unknown ablation {args.study!r}; choose one of {sorted(ABLATIONS)}")
                key, title, variants = args.study, f"ablation: {args.study}", ABLATIONS[args.study]
            result = run_study(title, args.config, variants, args.seeds, Path(args.out), overrides=args.overrides,
                               progress=not args.no_progress, log=lambda m: print(m, file=sys.stderr), paper=PAPER_SOP_RECALL1.get(key))
            print(Path(args.out) / "study.md")
            print(json.dumps({k: round(v.get("recall@1", {}).get("mean", float("nan")), 4) for k, v in result["table"].items()}))
        elif args.command in ("index", "search"):
            from ranklist.retrieval import build_index, load_index, save_index, search

            source = np.load(args.embeddings if args.command == "index" else args.queries, allow_pickle=False)
            if "embedding" not in source:
                raise ValueError(f"{args.embeddings if args.command == 'index' else args.queries} has no 'embedding' array (write it with ranklist embed)")
            ids = source["paths"] if "paths" in source else np.arange(len(source["embedding"]))
            if args.command == "index":
                built = build_index(source["embedding"], ids, kind=args.kind, labels=source["labels"] if "labels" in source else None)
                save_index(built, args.out)
                print(f"{args.out}: {len(built)} items, {built.meta['kind']}, dimension {built.dim}")
            else:
                scores, found = search(load_index(args.index), source["embedding"], args.k)
                for query, row, score in zip(ids, found, scores):
                    print(json.dumps({"query": str(query), "neighbours": [str(x) for x in row], "scores": [round(float(v), 4) for v in score]}))
        elif args.command == "data":
            from ranklist.data.emoji import ensure_emoji, load_emoji

            data = load_emoji(ensure_emoji(args.cache))
            print(f"emoji benchmark: {len(data.class_names)} classes, {len(data.images)} images")
    except (ConfigError, RunFolderError, FileNotFoundError, ValueError, RuntimeError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"ranklist: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
