"""`ranklist index` and `ranklist search`: a faiss index of embeddings, and its nearest items."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    index = subparsers.add_parser("index", help="build a faiss index from an embeddings file (ranklist embed)")
    index.add_argument("embeddings", help=".npz written by `ranklist embed`")
    index.add_argument("--out", required=True, help="index folder")
    index.add_argument("--kind", default="flat", help="flat (exact) | ivf | ivfpq")
    index.set_defaults(run=index_command)
    search = subparsers.add_parser("search", help="nearest indexed items of each embedding in a file")
    search.add_argument("index", help="index folder (ranklist index)")
    search.add_argument("queries", help=".npz written by `ranklist embed`")
    search.add_argument("--k", type=int, default=10)
    search.set_defaults(run=search_command)


def index_command(args: argparse.Namespace) -> None:
    from ranklist.retrieval import build_index, save_index
    from ranklist.retrieval.embeddings_file import read_embeddings

    source = read_embeddings(args.embeddings)
    built = build_index(source.embedding, source.ids(), kind=args.kind, labels=source.labels)
    save_index(built, args.out)
    print(f"{args.out}: {len(built)} items, {built.meta['kind']}, dimension {built.dim}")


def search_command(args: argparse.Namespace) -> None:
    from ranklist.retrieval import load_index, search
    from ranklist.retrieval.embeddings_file import read_embeddings

    source = read_embeddings(args.queries)
    scores, found = search(load_index(args.index), source.embedding, args.k)
    for query, row, score in zip(source.ids(), found, scores):
        print(json.dumps({"query": str(query), "neighbours": [str(x) for x in row], "scores": [round(float(v), 4) for v in score]}))
