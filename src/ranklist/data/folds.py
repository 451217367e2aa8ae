"""K class-disjoint folds of the training classes (cross-validation for `ranklist tune`).

    train, val = fold_splits(trainval, folds=5, fold=2, train_transform=..., val_transform=...)

Fold f's classes validate; the other folds' classes train. The folds partition the training
classes (every class in exactly one fold), seeded by FOLD_SEED so every trial of a study sees the
same folds. Only the training classes are involved: the test split is never built.
"""

from __future__ import annotations

import numpy as np

from ranklist.data.datasets import LabelledDataset, Transform
from ranklist.data.splits import MIN_CLASSES, remap_labels

FOLD_SEED = 0  # fixed: a study's trials must be compared on the same folds


def class_folds(classes: np.ndarray, folds: int, seed: int = FOLD_SEED) -> list[np.ndarray]:
    """The unique `classes` dealt into `folds` class-disjoint groups of near-equal size, each sorted.

    Every fold must hold MIN_CLASSES classes (retrieval among fewer is trivial); a ValueError says
    when the classes are too few.
    """
    classes = np.unique(classes)
    if folds < 2:
        raise ValueError(f"need at least 2 folds, got {folds}")
    if len(classes) < folds * MIN_CLASSES:
        raise ValueError(
            f"{len(classes)} training classes cannot make {folds} folds of at least {MIN_CLASSES} classes each"
        )
    shuffled = classes[np.random.default_rng(seed).permutation(len(classes))]
    return [np.sort(part) for part in np.array_split(shuffled, folds)]


class ClassSubset(LabelledDataset):
    """The items of some classes of a dataset, numbered 0..C-1 on their own, with their own transform.

    Images come from the parent's load_image (files are read on access; arrays are shared, not copied).
    """

    def __init__(self, parent: LabelledDataset, classes: np.ndarray, transform: Transform | None) -> None:
        mask = np.isin(parent.labels, classes)
        self.parent, self.index = parent, np.flatnonzero(mask)
        labels, kept = remap_labels(parent.labels[mask])
        if hasattr(parent, "paths"):  # the preflight opens every image header of a file dataset
            self.paths = [parent.paths[i] for i in self.index]
        super().__init__(
            len(self.index),
            labels,
            [parent.class_names[k] for k in kept],
            [parent.class_ids[k] for k in kept],
            transform,
        )

    def load_image(self, index: int):
        return self.parent.load_image(int(self.index[index]))

    def __getitem__(self, index: int):
        return self.transform(self.load_image(index)), int(self.labels[index])


def fold_splits(
    trainval: LabelledDataset, folds: int, fold: int, *, train_transform: Transform, val_transform: Transform
) -> tuple[ClassSubset, ClassSubset]:
    """(train, val) of fold `fold` of `folds` over the classes of `trainval` (dense labels 0..C-1)."""
    if not 0 <= fold < folds:
        raise ValueError(f"fold {fold} is not one of 0..{folds - 1}")
    parts = class_folds(np.unique(trainval.labels), folds)
    rest = np.concatenate([part for f, part in enumerate(parts) if f != fold])
    return ClassSubset(trainval, rest, train_transform), ClassSubset(trainval, parts[fold], val_transform)
