"""Datasets by name: build_dataset(name, split, root=..., transform=..., **options).

Each dataset is a DatasetSpec: its reader, whether it needs a root, which reader options a run
may pass, and its evaluation protocol (EvaluationSplits): the unseen-class queries search each
other ("test", self-retrieval) or a separate gallery ("query" -> "gallery", the In-shop shape).
The protocol of a folder or CSV depends on the data, so it is a function of the root.

Split names (ranklist.data.splits): "trainval" = the training classes, "val" = a seeded
class-disjoint carve of them (or the data's own val split), "train" = the rest, "test" = the
unseen classes, or "query" and "gallery". See docs/data.md for every layout and its options.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from ranklist.data.benchmarks import read_benchmark
from ranklist.data.datasets import Transform
from ranklist.data.fashion_mnist import read_fashion_mnist
from ranklist.data.generic import csv_evaluation_splits, folder_evaluation_splits, read_csv, read_folder
from ranklist.data.splits import EvaluationSplits


def read_emoji(root: Path | None, split: str, transform: Transform | None = None, **options: Any) -> Dataset:
    """ranklist.data.emoji.read_emoji, imported on use (keeps `python -m ranklist.data.emoji` clean)."""
    from ranklist.data.emoji import read_emoji as read

    return read(root, split, transform, **options)


SELF_RETRIEVAL = EvaluationSplits("test")
QUERY_GALLERY = EvaluationSplits("query", "gallery")


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: its reader, its declared evaluation protocol and the options it takes."""

    read: Callable[..., Dataset]  # (root, split, transform, **options) -> dataset
    evaluation: Callable[[Path | None], EvaluationSplits] = lambda root: SELF_RETRIEVAL
    needs_root: bool = True
    run_options: tuple[str, ...] = ()  # DataConfig fields the reader takes (beyond val_fraction)


def _benchmark(name: str, evaluation: EvaluationSplits = SELF_RETRIEVAL) -> DatasetSpec:
    return DatasetSpec(partial(read_benchmark, name), lambda root: evaluation, run_options=("allow_partial",))


DATASETS: dict[str, DatasetSpec] = {
    "cub200": _benchmark("cub200"),
    "cars196": _benchmark("cars196"),
    "sop": _benchmark("sop"),
    "inshop": _benchmark("inshop", QUERY_GALLERY),
    "folder": DatasetSpec(read_folder, folder_evaluation_splits),
    "csv": DatasetSpec(read_csv, csv_evaluation_splits),
    # root: the cache folder, default ~/.cache/ranklist/emoji (built on first use)
    "emoji": DatasetSpec(read_emoji, needs_root=False),
    "fashion_mnist": DatasetSpec(
        read_fashion_mnist, needs_root=False
    ),  # root default: /usr/share/datasets/fashion-mnist
}


def dataset_spec(name: str) -> DatasetSpec:
    """The registered dataset `name`; a ValueError naming the choices otherwise."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


def _root(name: str, root: str | Path | None) -> Path | None:
    if root is None and dataset_spec(name).needs_root:
        raise ValueError(f"dataset {name!r} needs a root folder (its files' location)")
    return Path(root) if root is not None else None


def evaluation_splits(name: str, root: str | Path | None = None) -> EvaluationSplits:
    """The splits dataset `name` (at `root`) is evaluated on: self-retrieval or query vs gallery."""
    return dataset_spec(name).evaluation(_root(name, root))


def build_dataset(
    name: str, split: str, *, root: str | Path | None = None, transform: Transform | None = None, **options: Any
) -> Dataset:
    """Split `split` of dataset `name` (a key of DATASETS) read from `root`; options go to its reader
    (allow_partial, val_fraction, seed, test_fraction, ... as docs/data.md lists)."""
    return dataset_spec(name).read(_root(name, root), split, transform, **options)
