"""`ranklist serve --index DIR (--checkpoint CKPT | --onnx model.onnx)`: the search API and page."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `ranklist serve`."""
    serve = subparsers.add_parser(
        "serve", help="serve an index over HTTP: search by image, browse neighbours (FastAPI + uvicorn)"
    )
    serve.add_argument("--index", required=True, help="index folder (ranklist index)")
    model = serve.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="embed queries with this checkpoint (PyTorch)")
    model.add_argument("--onnx", help="embed queries with this exported model (ONNX Runtime)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-upload-mb", type=float, default=10.0, help="largest image accepted")
    serve.add_argument("--max-files", type=int, default=16, help="most images in one request")
    serve.add_argument("--max-k", type=int, default=100, help="most neighbours one request may ask for")
    serve.add_argument(
        "--max-request-megapixels",
        type=float,
        default=64.0,
        help="most pixels decoded for one request, all its images together (read from their headers first)",
    )
    serve.add_argument(
        "--max-batch",
        type=int,
        default=32,
        help="most images in one forward: requests arriving while a forward runs share the next one",
    )
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests whose Host header is NAME (repeatable; '*' for any). By default only the "
        "bound address and loopback names (and this machine's names when bound to 0.0.0.0)",
    )
    serve.add_argument(
        "--expose-paths",
        action="store_true",
        help="show items' absolute image paths (default: relative to their common folder)",
    )
    serve.set_defaults(run=serve_command)


def serve_command(args: argparse.Namespace) -> None:
    """Serve an index over HTTP with a checkpoint's or an ONNX model's embedder."""
    from ranklist.retrieval import load_index
    from ranklist.serving.app import run_server
    from ranklist.serving.embedders import load_embedder
    from ranklist.serving.service import SearchService
    from ranklist.serving.uploads import ServeLimits

    limits = ServeLimits(
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_files=args.max_files,
        max_k=args.max_k,
        max_request_pixels=int(args.max_request_megapixels * 1e6),
        max_batch=args.max_batch,
    )
    service = SearchService(
        load_index(args.index), load_embedder(args.checkpoint, args.onnx), limits, args.expose_paths
    )
    run_server(service, args.host, args.port, args.allow_host)
