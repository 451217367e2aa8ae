"""`ranklist evaluate` and `ranklist embed`: a checkpoint on a dataset split, prepared as its run prepared images."""

from __future__ import annotations

import argparse
import json
import sys

from ranklist.evaluation.metric_names import DEFAULT_KS


def dataset_help() -> str:
    """--dataset's help, naming the registered datasets (data/readers.py DATASETS)."""
    from ranklist.data.readers import DATASETS

    return f"a dataset name ({', '.join(DATASETS)})"


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help=dataset_help())
    parser.add_argument("--root", help="the dataset's folder (or CSV file)")
    parser.add_argument(
        "--split", help="default: the dataset's evaluation queries (test, or query for a query/gallery protocol)"
    )
    parser.add_argument("--allow-partial", action="store_true", help="accept an incomplete copy of a benchmark")
    parser.add_argument("--batch-size", type=int, default=128)
    add_precision_option(parser)
    parser.add_argument(
        "--device",
        default="cpu",
        help="where the model embeds and, on a GPU, the metrics are scored (cpu, cuda, cuda:1, mps)",
    )
    parser.add_argument("--no-progress", action="store_true")


def add_precision_option(parser: argparse.ArgumentParser) -> None:
    """Add --precision (the forward's; default: the one the checkpoint records)."""
    from ranklist.models.inference import PRECISIONS

    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="of the forward; default: the one the checkpoint's run "
        "evaluated with (its precision.eval as resolved then; fp32 for checkpoints that record none)",
    )


def load_for_embedding(args: argparse.Namespace):
    """(the checkpoint's model on --device, set to embed as its run did or in --precision; the device)."""
    import dataclasses

    from ranklist.models import load_model
    from ranklist.training.preflight import resolve_device

    device = resolve_device(args.device, "--device")
    model = load_model(args.checkpoint, map_location=device)
    if args.precision is not None:
        model.inference = dataclasses.replace(model.inference, precision=args.precision)
    return model, device


def precision_note(model, args: argparse.Namespace) -> str:
    """Which precision embedded, and why: "bf16 forward (the run's)"."""
    origin = "--precision" if args.precision is not None else "the run's"
    return f"{model.inference.precision} forward ({origin})"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `ranklist evaluate` and `ranklist embed`."""
    evaluate = subparsers.add_parser("evaluate", help="metrics of a checkpoint on a dataset split")
    evaluate.add_argument("checkpoint")
    _add_data_options(evaluate)
    evaluate.add_argument(
        "--gallery-split",
        help="search this split with the queries (default: the dataset's gallery, if it declares one)",
    )
    evaluate.add_argument("--ks", type=int, nargs="+", default=list(DEFAULT_KS))
    evaluate.add_argument("--levels", nargs="+", help="levels to score (default all, plus their concatenation)")
    evaluate.add_argument("--out", help="also write the metrics to this JSON file")
    evaluate.set_defaults(run=evaluate_command)
    embed = subparsers.add_parser("embed", help="embed a dataset split with a checkpoint into an .npz file")
    embed.add_argument("checkpoint")
    _add_data_options(embed)
    embed.add_argument("--out", required=True, help="output .npz (embedding = evaluation embedding; raw levels too)")
    embed.set_defaults(run=embed_command)


def _dataset(args: argparse.Namespace, model, split: str):
    """The split, transformed by the checkpoint's own preprocessing record."""
    from ranklist.data import build_dataset

    options = {"allow_partial": True} if args.allow_partial else {}
    return build_dataset(
        args.dataset, split, root=args.root, transform=model.preprocessing.transform(train=False), **options
    )


def _splits(args: argparse.Namespace) -> tuple[str, str | None]:
    """--split / --gallery-split, defaulting to the dataset's declared evaluation protocol."""
    from ranklist.data import evaluation_splits

    if args.split is not None:
        return args.split, args.gallery_split
    declared = evaluation_splits(args.dataset, args.root)
    return declared.queries, args.gallery_split or declared.gallery


def evaluate_command(args: argparse.Namespace) -> None:
    """Print (and with --out, write as JSON) a checkpoint's metrics on a dataset split."""
    from ranklist.atomic import atomic_write_text
    from ranklist.evaluation import Evaluator

    if args.out and not args.out.endswith(".json"):
        raise ValueError(f"--out must name a .json file, got {args.out}")
    model, device = load_for_embedding(args)
    evaluator = Evaluator(
        batch_size=args.batch_size, device=str(device), progress=not args.no_progress, ks=tuple(args.ks)
    )
    queries, gallery = _splits(args)
    metrics = evaluator.evaluate(
        model, _dataset(args, model, queries), _dataset(args, model, gallery) if gallery else None, levels=args.levels
    )
    text = json.dumps(metrics, indent=2)
    if args.out:
        atomic_write_text(args.out, text)
    print(text)
    print(f"ranklist evaluate: {precision_note(model, args)}", file=sys.stderr)


def embed_command(args: argparse.Namespace) -> None:
    """Write a checkpoint's embeddings of a dataset split to an .npz embeddings file."""
    from ranklist.data import evaluation_splits
    from ranklist.evaluation import embed_dataset
    from ranklist.models.fingerprint import model_fingerprint
    from ranklist.retrieval.embeddings_file import EmbeddingsFile, write_embeddings

    if not args.out.endswith(".npz"):
        raise ValueError(f"--out must end in .npz, got {args.out}")
    model, device = load_for_embedding(args)
    dataset = _dataset(args, model, args.split or evaluation_splits(args.dataset, args.root).queries)
    outputs, labels = embed_dataset(
        model, dataset, batch_size=args.batch_size, device=device, progress=not args.no_progress
    )
    record = EmbeddingsFile.from_outputs(
        outputs,
        labels.numpy(),
        getattr(dataset, "paths", None),
        model=model_fingerprint(model),
        precision=model.inference.precision,
    )
    write_embeddings(record, args.out)
    print(
        f"{args.out}: {len(labels)} embeddings of dimension {record.embedding.shape[1]}, {precision_note(model, args)}"
    )
