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


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `ranklist index` and `ranklist search`."""
    from ranklist.cli.evaluate import add_precision_option

    index = subparsers.add_parser(
        "index",
        help="build (or `index add` to) a faiss index from a model and a dataset, or an embeddings file",
        usage=USAGE,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    index.add_argument(
        "words",
        nargs="*",
        metavar="EMBEDDINGS | add DIR [EMBEDDINGS]",
        help="an .npz from `ranklist embed`, or `add` and an index folder",
    )
    index.add_argument("--out", help="index folder to write (refused if it exists and is not an index)")
    index.add_argument("--replace", action="store_true", help="replace an existing index at --out")
    index.add_argument("--kind", default="flat", help="flat (exact) | ivf | ivfpq")
    index.add_argument("--nlist", type=int, help="ivf/ivfpq: inverted lists (default ~4 sqrt(N))")
    index.add_argument("--nprobe", type=int, default=16, help="ivf/ivfpq: lists searched per query")
    index.add_argument("--checkpoint", help="embed a dataset split with this checkpoint (its own preprocessing)")
    index.add_argument(
        "--dataset", help="a dataset name (cub200, cars196, sop, inshop, folder, csv, emoji, fashion_mnist)"
    )
    index.add_argument("--root", help="the dataset's folder (or CSV file)")
    index.add_argument("--split", help="default: the dataset's gallery split if it declares one, else its test split")
    index.add_argument("--allow-partial", action="store_true", help="accept an incomplete copy of a benchmark")
    index.add_argument("--batch-size", type=int, default=64)
    index.add_argument("--device", default="cpu", help="--checkpoint: where the model embeds (cpu, cuda, cuda:1, mps)")
    add_precision_option(index)
    index.add_argument("--no-progress", action="store_true")
    index.set_defaults(run=index_command)
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


def _build(args: argparse.Namespace) -> None:
    from ranklist.retrieval import Items, build_index, save_index
    from ranklist.retrieval.embeddings_file import read_embeddings
    from ranklist.retrieval.from_model import index_from_model
    from ranklist.retrieval.storage import check_target

    if not args.out:
        raise ValueError("--out (the index folder) is required")
    check_target(Path(args.out), args.replace)  # before any embedding work
    options = {"kind": args.kind, "nlist": args.nlist, "nprobe": args.nprobe}
    if args.checkpoint:
        if args.words:
            raise ValueError(f"give an embeddings file or --checkpoint, not both (got {args.words[0]!r})")
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
    elif len(args.words) == 1:
        source = read_embeddings(args.words[0])
        items = Items(source.ids(), source.labels, source.paths)  # ids: the paths when known (as before), else rows
        built = build_index(
            source.embedding,
            items,
            model=source.model,
            meta={"sources": [{"embeddings": str(args.words[0])}]},
            **options,
        )
    else:
        raise ValueError(f"nothing to index; usage: {USAGE}")
    save_index(built, args.out, replace=args.replace)
    print(f"{args.out}: {len(built)} items, {built.meta['kind']}, dimension {built.dim}")


def _add(args: argparse.Namespace) -> None:
    from ranklist.retrieval import Items, add_to_index, load_index, next_ids, save_index
    from ranklist.retrieval.embeddings_file import read_embeddings
    from ranklist.retrieval.from_model import add_from_model

    if len(args.words) not in (2, 3):
        raise ValueError(
            f"usage: ranklist index add DIR (EMBEDDINGS.npz | --checkpoint CKPT --dataset NAME), got {args.words[1:]}"
        )
    folder = Path(args.words[1])
    index = load_index(folder)
    before = len(index)
    if args.checkpoint and len(args.words) == 2:
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
    elif len(args.words) == 3 and not args.checkpoint:
        source = read_embeddings(args.words[2])
        ids = next_ids(index, len(source.embedding)) if index.ids.dtype.kind in "iu" else source.ids()
        paths = source.paths if index.items.paths is not None else None
        add_to_index(
            index,
            source.embedding,
            Items(ids, source.labels if index.labels is not None else None, paths),
            source.model,
        )
    else:
        raise ValueError("index add takes an embeddings file or --checkpoint with --dataset, one of the two")
    save_index(index, folder, replace=True)
    print(f"{folder}: {len(index) - before} items added, {len(index)} in all")


def index_command(args: argparse.Namespace) -> None:
    """Build an index, or with `add`, add items to an existing one."""
    if args.words[:1] == ["add"]:
        _add(args)
    else:
        _build(args)


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
