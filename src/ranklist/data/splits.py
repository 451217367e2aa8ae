"""Class-disjoint splits (docs/data.md): the benchmarks' train/test classes, a seeded validation
carve of the training classes, and per-split label numbering.

Split names: "trainval" = all training classes, "val" = a seeded carve of them (for model
selection; the paper selected checkpoints on the test set, this project must not), "train" = the
rest, "test" = the unseen classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TRAIN_SPLITS = ("train", "val", "trainval")
SPLITS = TRAIN_SPLITS + ("test",)
MIN_CLASSES = 2  # retrieval among fewer than two classes is trivially perfect


@dataclass(frozen=True)
class EvaluationSplits:
    """The evaluation protocol: `queries` search each other (gallery None) or the `gallery` split."""

    queries: str
    gallery: str | None = None


def check_split(split: str, dataset: str, valid: Sequence[str] = SPLITS) -> None:
    """Refuse a split name that `dataset` does not have, naming the valid ones."""
    if split not in valid:
        raise ValueError(f"unknown split {split!r} for {dataset}; choose one of {tuple(valid)}")


def carve_classes(classes: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split the unique `classes` into (kept, carved), seeded; both sorted.

    round(fraction * C) classes are carved, but at least MIN_CLASSES when fraction > 0, and at least
    MIN_CLASSES must be kept: a ValueError says so when the classes are too few.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"class fraction must be in [0, 1), got {fraction}")
    classes = np.unique(classes)
    n_carved = max(round(fraction * len(classes)), MIN_CLASSES) if fraction > 0 else 0
    if fraction > 0 and len(classes) - n_carved < MIN_CLASSES:
        raise ValueError(
            f"cannot carve {n_carved} of {len(classes)} classes (fraction {fraction}) and keep "
            f"{MIN_CLASSES}: need at least {n_carved + MIN_CLASSES} classes"
        )
    order = np.random.default_rng(seed).permutation(len(classes))
    return np.sort(classes[order[n_carved:]]), np.sort(classes[order[:n_carved]])


def training_mask(labels: np.ndarray, split: str, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the items of "train" / "val" / "trainval" among training-class `labels`."""
    check_split(split, "the training classes", TRAIN_SPLITS)
    if split == "trainval":
        return np.ones(len(labels), dtype=bool)
    kept, carved = carve_classes(labels, val_fraction, seed)
    return np.isin(labels, kept if split == "train" else carved)


def remap_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels as 0..C-1 in sorted order of the original ids; returns (new labels, original ids).

    Training needs them dense (proxy losses index a C-row table); each split is numbered on its own.
    """
    original, remapped = np.unique(np.asarray(labels), return_inverse=True)
    return remapped.astype(np.int64).reshape(-1), original


def dense_labels(
    raw_labels: np.ndarray, names: dict | None = None, classes: np.ndarray | None = None
) -> tuple[np.ndarray, list[str], list[object]]:
    """(labels 0..C-1, class names, original class ids) for a split's raw labels.

    classes: the ids to number (default: those present); query and gallery sets pass their common
    ids so that one label means one class in both. names: id -> name (default: the id itself).
    """
    raw_labels = np.asarray(raw_labels)
    if classes is None:
        labels, classes = remap_labels(raw_labels)
    else:
        classes = np.unique(classes)
        labels = np.searchsorted(classes, raw_labels).astype(np.int64)
        if len(raw_labels) and not np.array_equal(classes[np.minimum(labels, len(classes) - 1)], raw_labels):
            raise ValueError("some labels are not among the classes to number")
    ids = [c.item() if hasattr(c, "item") else c for c in classes]
    return labels, [str(names[c]) if names else str(c) for c in ids], ids


def class_keys(dataset) -> list[str] | None:
    """Each label's class identity (its id in the data), comparable across splits numbered apart;
    None for a dataset that names no classes (plain tensors: its labels are the identities)."""
    ids = getattr(dataset, "class_ids", None)
    return None if ids is None else [str(c) for c in ids]


def shared_labels(queries, gallery) -> tuple[np.ndarray, np.ndarray] | None:
    """Query and gallery labels numbered by class identity, so one label is one class in both.

    Splits are numbered 0..C-1 each on its own; comparing those numbers across splits would
    match unrelated classes. None when a dataset names no classes (its labels are the
    identities). A ValueError when the two splits share no class at all.
    """
    query_keys, gallery_keys = class_keys(queries), class_keys(gallery)
    if query_keys is None or gallery_keys is None:
        return None
    if not set(query_keys) & set(gallery_keys):
        raise ValueError(
            f"no query class has an item in the gallery (query classes e.g. {query_keys[:3]}, "
            f"gallery classes e.g. {gallery_keys[:3]})"
        )
    number = {key: i for i, key in enumerate(sorted(set(query_keys) | set(gallery_keys)))}

    def renumber(keys: list[str], labels: np.ndarray) -> np.ndarray:
        return np.array([number[k] for k in keys], dtype=np.int64)[labels]

    return renumber(query_keys, queries.labels), renumber(gallery_keys, gallery.labels)
