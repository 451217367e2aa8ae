"""`ranklist index` and `ranklist search`: a faiss index of embeddings, and its nearest items.

ranklist index EMBEDDINGS.npz --out DIR                                   # from `ranklist embed`
ranklist index --checkpoint CKPT --dataset NAME --root ROOT [--split S] --out DIR
ranklist index add DIR (--checkpoint CKPT --dataset NAME --root ROOT [--split S] | EMBEDDINGS.npz)
ranklist search DIR QUERIES.npz [--k 10]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

USAGE = (
    "ranklist index EMBEDDINGS.npz --out DIR | ranklist index --checkpoint CKPT --dataset NAME --out DIR"
    " | ranklist index add DIR (EMBEDDINGS.npz | --checkpoint CKPT --dataset NAME)"
)


class _AddOrEmbeddings(argparse._SubParsersAction):
    """`add` is a subcommand with its own parser; any other first word is the embeddings file of a
    build, whose options are the `index` parser's own (`ranklist index EMBEDDINGS.npz --out DIR`)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.choices = None  # any first word is accepted: `add`, or an embeddings file

    def __call__(self, parser, namespace, values, option_string=None):
        if values[0] in self._name_parser_map:
            return super().__call__(parser, namespace, values, option_string)
        if namespace.embeddings is not None:
            parser.error(f"one embeddings file to index, got {namespace.embeddings!r} and {values[0]!r}")
        namespace.embeddings = values[0]
        parser.parse_args(values[1:], namespace)  # the options after it, into the same namespace


def _add_model_data_options(parser: argparse.ArgumentParser) -> None:
    """The options that embed a dataset split with a checkpoint (building or adding)."""
    from ranklist.cli.evaluate import add_precision_option, dataset_help

    parser.add_argument("--checkpoint", help="embed a dataset split with this checkpoint (its own preprocessing)")
    parser.add_argument("--dataset", help=dataset_help())
    parser.add_argument("--root", help="the dataset's folder (or CSV file)")
    parser.add_argument("--split", help="default: the dataset's gallery split if it declares one, else its test split")
    parser.add_argument("--allow-partial", action="store_true", help="accept an incomplete copy of a benchmark")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu", help="--checkpoint: where the model embeds (cpu, cuda, cuda:1, mps)")
    add_precision_option(parser)
    parser.add_argument("--no-progress", action="store_true")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `ranklist index` (with its subcommand `index add`) and `ranklist search`."""
    index = subparsers.add_parser(
        "index",
        help="build (or `index add` to) a faiss index from a model and a dataset, or an embeddings file",
        usage=USAGE,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = index.add_subparsers(
        action=_AddOrEmbeddings,
        prog="ranklist index",
        metavar="EMBEDDINGS | add",
        help="an .npz from `ranklist embed` to index, or `add` to append to an index (ranklist index add -h)",
    )
    index.add_argument("--out", help="index folder to write (refused if it exists and is not an index)")
    index.add_argument("--replace", action="store_true", help="replace an existing index at --out")
    index.add_argument("--kind", default="flat", help="flat (exact) | ivf | ivfpq")
    index.add_argument("--nlist", type=int, help="ivf/ivfpq: inverted lists (default ~4 sqrt(N))")
    index.add_argument("--nprobe", type=int, default=16, help="ivf/ivfpq: lists searched per query")
    _add_model_data_options(index)
    index.set_defaults(run=build_command, embeddings=None)
    add = actions.add_parser(
        "add",
        help="append a dataset split (--checkpoint) or an embeddings file to an existing index",
        description="Append to the index in DIR: a dataset split embedded with --checkpoint (the model "
        "that built the index), or an embeddings file.",
    )
    add.add_argument("index", metavar="DIR", help="the index folder (ranklist index)")
    add.add_argument("embeddings", nargs="?", metavar="EMBEDDINGS", help="an .npz from `ranklist embed`")
    _add_model_data_options(add)
    add.set_defaults(run=add_command)
    search = subparsers.add_parser("search", help="nearest indexed items of each embedding in a file")
    search.add_argument("index", help="index folder (ranklist index)")
    search.add_argument("queries", help=".npz written by `ranklist embed`")
    search.add_argument("--k", type=int, default=10)
    search.set_defaults(run=search_command)


def _model_dataset(args: argparse.Namespace):
    """(model, dataset split read through the model's own preprocessing, a note of where it came from)."""
    from ranklist.cli.evaluate import load_for_embedding
    from ranklist.data import build_dataset, evaluation_splits

    if not args.dataset:
        raise ValueError("--checkpoint needs --dataset (and --root) naming the images to index")
    model, args.device = load_for_embedding(args)
    if args.split is None:
        declared = evaluation_splits(args.dataset, args.root)
        args.split = declared.gallery or declared.queries
    options = {"allow_partial": True} if args.allow_partial else {}
    dataset = build_dataset(
        args.dataset, args.split, root=args.root, transform=model.preprocessing.transform(train=False), **options
    )
    source = {
        "dataset": args.dataset,
        "root": None if args.root is None else str(Path(args.root).resolve()),
        "split": args.split,
        "checkpoint": str(args.checkpoint),
        "precision": model.inference.precision,
    }
    return model, dataset, source


def build_command(args: argparse.Namespace) -> None:
    """Build an index from an embeddings file or a checkpoint and a dataset split."""
    from ranklist.retrieval import Items, build_index, save_index
    from ranklist.retrieval.embeddings_file import read_embeddings
    from ranklist.retrieval.from_model import index_from_model
    from ranklist.retrieval.storage import check_target

    if not args.out:
        raise ValueError("--out (the index folder) is required")
    check_target(Path(args.out), args.replace)  # before any embedding work
    options = {"kind": args.kind, "nlist": args.nlist, "nprobe": args.nprobe}
    if args.checkpoint:
        if args.embeddings:
            raise ValueError(f"give an embeddings file or --checkpoint, not both (got {args.embeddings!r})")
        model, dataset, source = _model_dataset(args)
        built = index_from_model(
            model,
            dataset,
            source=source,
            batch_size=args.batch_size,
            progress=not args.no_progress,
            device=args.device,
            **options,
        )
    elif args.embeddings:
        source = read_embeddings(args.embeddings)
        items = Items(source.ids(), source.labels, source.paths)  # ids: the paths when known (as before), else rows
        built = build_index(
            source.embedding,
            items,
            model=source.model,
            meta={"sources": [{"embeddings": str(args.embeddings)}]},
            **options,
        )
    else:
        raise ValueError(f"nothing to index; usage: {USAGE}")
    save_index(built, args.out, replace=args.replace)
    print(f"{args.out}: {len(built)} items, {built.meta['kind']}, dimension {built.dim}")


def add_command(args: argparse.Namespace) -> None:
    """Add a dataset split or an embeddings file to an existing index."""
    from ranklist.retrieval import Items, add_to_index, load_index, next_ids, save_index
    from ranklist.retrieval.embeddings_file import read_embeddings
    from ranklist.retrieval.from_model import add_from_model

    if bool(args.checkpoint) == bool(args.embeddings):
        raise ValueError("index add takes an embeddings file or --checkpoint with --dataset, one of the two")
    folder = Path(args.index)
    index = load_index(folder)
    before = len(index)
    if args.checkpoint:
        model, dataset, source = _model_dataset(args)
        add_from_model(
            index,
            model,
            dataset,
            source=source,
            batch_size=args.batch_size,
            progress=not args.no_progress,
            device=args.device,
        )
    else:
        source = read_embeddings(args.embeddings)
        ids = next_ids(index, len(source.embedding)) if index.ids.dtype.kind in "iu" else source.ids()
        paths = source.paths if index.items.paths is not None else None
        add_to_index(
            index,
            source.embedding,
            Items(ids, source.labels if index.labels is not None else None, paths),
            source.model,
        )
    save_index(index, folder, replace=True)
    print(f"{folder}: {len(index) - before} items added, {len(index)} in all")


def search_command(args: argparse.Namespace) -> None:
    """Print each query's nearest neighbours in an index."""
    from ranklist.retrieval import load_index, search
    from ranklist.retrieval.embeddings_file import read_embeddings

    source = read_embeddings(args.queries)
    scores, found = search(load_index(args.index), source.embedding, args.k, model=source.model)
    for query, row, score in zip(source.ids(), found, scores):
        print(
            json.dumps(
                {
                    "query": str(query),
                    "neighbours": [str(x) for x in row],
                    "scores": [round(float(v), 4) for v in score],
                }
            )
        )
