"""`ranklist export CHECKPOINT --out model.onnx`: the model for production runtimes (ONNX)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `ranklist export`."""
    export = subparsers.add_parser(
        "export",
        help="export a checkpoint as ONNX (evaluation embedding and each level; preprocessing in the metadata)",
    )
    export.add_argument("checkpoint")
    export.add_argument("--out", required=True, help="the .onnx file to write")
    export.add_argument(
        "--opset", type=int, default=18, help="ONNX opset (>= 18 for the antialiased resize some ViTs use)"
    )
    export.add_argument("--replace", action="store_true", help="replace an existing file at --out")
    export.set_defaults(run=export_command)


def export_command(args: argparse.Namespace) -> None:
    """Export a checkpoint as ONNX and print its outputs and preprocessing."""
    from ranklist.export import export_onnx
    from ranklist.models import load_model

    info = export_onnx(load_model(args.checkpoint), args.out, opset=args.opset, replace=args.replace)
    p = info.preprocessing
    print(
        f"{args.out}: outputs embedding [B, {info.dim}] and levels {list(info.levels)}; input images [B, 3, "
        f"{p.image_size}, {p.image_size}] ({p.recipe}, resize {p.resize}, normalisation in the metadata)"
    )
