"""Datasets by name: build_dataset(name, split, root=..., transform=..., **options).

Split names (ranklist.data.splits): "trainval" = the training classes, "val" = a seeded
class-disjoint carve of them, "train" = the rest, "test" = the unseen classes; In-shop has "query"
and "gallery" instead of "test". Labels are 0..C-1 within each split (query and gallery share one
numbering). See docs/data.md for every layout and its options.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from ranklist.data.benchmarks import read_benchmark
from ranklist.data.datasets import Transform
from ranklist.data.fashion_mnist import read_fashion_mnist
from ranklist.data.generic import read_csv, read_folder


def read_emoji(root: Path | None, split: str, transform: Transform | None = None, **options: Any) -> Dataset:
    """ranklist.data.emoji.read_emoji, imported on use (keeps `python -m ranklist.data.emoji` clean)."""
    from ranklist.data.emoji import read_emoji as read

    return read(root, split, transform, **options)


READERS: dict[str, Callable[..., Dataset]] = {
    "cub200": partial(read_benchmark, "cub200"),
    "cars196": partial(read_benchmark, "cars196"),
    "sop": partial(read_benchmark, "sop"),
    "inshop": partial(read_benchmark, "inshop"),
    "folder": read_folder,
    "csv": read_csv,
    "emoji": read_emoji,  # root: the cache folder, default ~/.cache/ranklist/emoji (built on first use)
    "fashion_mnist": read_fashion_mnist,  # root default: /usr/share/datasets/fashion-mnist
}
OPTIONAL_ROOT = ("emoji", "fashion_mnist")


def build_dataset(name: str, split: str, *, root: str | Path | None = None, transform: Transform | None = None,
                  **options: Any) -> Dataset:
    """Split `split` of dataset `name` (a key of READERS) read from `root`; options go to its reader
    (allow_partial, val_fraction, seed, test_fraction, ... as docs/data.md lists)."""
    if name not in READERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(READERS)}")
    if root is None and name not in OPTIONAL_ROOT:
        raise ValueError(f"dataset {name!r} needs a root folder (its files' location)")
    return READERS[name](Path(root) if root is not None else None, split, transform, **options)
