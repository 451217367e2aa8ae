"""Class-disjoint splits: the benchmarks' train/test classes, and a validation carve of the former."""

from __future__ import annotations

import numpy as np

TRAIN_SPLITS = ("train", "val", "trainval")


def carve_classes(classes: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split sorted unique `classes` into (kept, carved) with round(fraction * C) carved, seeded."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    classes = np.unique(classes)
    order = np.random.default_rng(seed).permutation(len(classes))
    n_carved = int(round(fraction * len(classes)))
    carved = np.sort(classes[order[:n_carved]])
    kept = np.sort(classes[order[n_carved:]])
    return kept, carved


def select_training_split(labels: np.ndarray, split: str, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the items of "train" / "val" / "trainval" among the training classes."""
    if split == "trainval":
        return np.ones(len(labels), dtype=bool)
    kept, carved = carve_classes(labels, val_fraction, seed)
    return np.isin(labels, kept if split == "train" else carved)


def remap_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels as 0..C-1 in sorted order of the original ids; returns (new labels, original ids)."""
    original, remapped = np.unique(labels, return_inverse=True)
    return remapped.astype(np.int64), original
