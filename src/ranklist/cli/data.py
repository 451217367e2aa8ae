"""`ranklist data`: prepare datasets."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="prepare datasets")
    data.add_argument("what", choices=["emoji"], help="emoji: fetch and build the offline benchmark cache")
    data.add_argument("--cache", help="cache folder (default $RANKLIST_CACHE/emoji or ~/.cache/ranklist/emoji)")
    data.set_defaults(run=data_command)


def data_command(args: argparse.Namespace) -> None:
    from ranklist.data.emoji import ensure_emoji, load_emoji

    data = load_emoji(ensure_emoji(args.cache))
    print(f"emoji benchmark: {len(data.class_names)} classes, {len(data.images)} images")
