"""`ranklist data`: prepare datasets (the emoji benchmark; `fetch`: the paper's datasets and weights)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `ranklist data` (build the emoji benchmark, or fetch a benchmark or weights)."""
    from ranklist.data.sources import SOURCES

    data = subparsers.add_parser(
        "data", help="prepare datasets: the emoji benchmark, or fetch the paper's datasets and weights"
    )
    data.add_argument(
        "what",
        choices=["emoji", "fetch"],
        help="emoji: fetch and build the offline benchmark cache; fetch: download and verify SOURCE",
    )
    data.add_argument(
        "source",
        nargs="?",
        choices=sorted(SOURCES),
        help="with fetch: what to fetch (docs/data.md#fetching-the-benchmarks)",
    )
    data.add_argument("--cache", help="emoji: cache folder (default $RANKLIST_CACHE/emoji or ~/.cache/ranklist/emoji)")
    data.add_argument("--root", help="fetch: the folder to fetch into (default data/, weights/ for bn_inception)")
    data.add_argument(
        "--sha256",
        action="append",
        default=[],
        metavar="[FILE=]HEX",
        help="fetch: check FILE against this SHA-256 (needed where no checksum is published or recorded)",
    )
    data.add_argument(
        "--unverified",
        action="store_true",
        help="fetch: accept files without a known checksum (recorded as unverified)",
    )
    data.set_defaults(run=data_command)


def parse_sha256(values: list[str], files: list[str]) -> dict[str, str]:
    """--sha256 FILE=HEX (or HEX alone for a source of one file) as {file: hex}."""
    given = {}
    for value in values:
        file, _, digest = value.rpartition("=")
        if not file:
            if len(files) != 1:
                raise ValueError(f"--sha256 {value}: this source has several files ({', '.join(files)}); give FILE=HEX")
            file = files[0]
        if len(digest) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digest):
            raise ValueError(f"--sha256 {value}: a SHA-256 is 64 hex digits")
        given[file] = digest.lower()
    return given


def data_command(args: argparse.Namespace) -> None:
    """Build and load the emoji benchmark, or fetch a source; print what is there."""
    if args.what == "fetch":
        return fetch_command(args)
    from ranklist.data.emoji import ensure_emoji, load_emoji

    data = load_emoji(ensure_emoji(args.cache))
    print(f"emoji benchmark: {len(data.class_names)} classes, {len(data.images)} images")


def fetch_command(args: argparse.Namespace) -> None:
    """Fetch and check the archives of one source (`ranklist data fetch NAME`)."""
    from ranklist.data.fetch import fetch
    from ranklist.data.sources import SOURCES
    from ranklist.models.backbones import check_weights

    if args.source is None:
        raise ValueError(f"ranklist data fetch needs what to fetch: one of {sorted(SOURCES)}")
    files = [a.file for a in SOURCES[args.source].archives]
    sha256 = parse_sha256(args.sha256, files)
    fetch(args.source, args.root, sha256=sha256, unverified=args.unverified, check_weights=check_weights)
