"""Readers of a user's own images: a folder per class, or a CSV listing (path,label[,split]).

Without a split given by the data, classes are split class-disjointly and seeded: test_fraction
of them for "test", and val_fraction of the rest for "val" (ranklist.data.splits). With splits
given (a CSV's split column, or split folders root/train, root/query, root/gallery, ...), the
data's own protocol is followed: "query" + "gallery" means the queries search the gallery.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import numpy as np

from ranklist.data.datasets import ImageFileDataset, Transform
from ranklist.data.splits import (
    SPLITS,
    TRAIN_SPLITS,
    EvaluationSplits,
    carve_classes,
    check_split,
    dense_labels,
    training_mask,
)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
CSV_SPLITS = ("train", "val", "test", "query", "gallery")
SPLIT_FOLDERS = CSV_SPLITS  # root/<split>/<class>/... when root/train exists


def declared_protocol(splits: set[str], where: str) -> EvaluationSplits:
    """The evaluation protocol the data's own split names declare."""
    if {"query", "gallery"} <= splits:
        return EvaluationSplits("query", "gallery")
    if "query" in splits or "gallery" in splits:
        raise ValueError(
            f"{where}: a query/gallery protocol needs both 'query' and 'gallery' items, "
            f"found only {sorted(splits & {'query', 'gallery'})}"
        )
    if "test" not in splits:
        raise ValueError(
            f"{where}: no evaluation items: expected a 'test' split or 'query' and 'gallery' splits, "
            f"found {sorted(splits)}"
        )
    return EvaluationSplits("test")


def class_disjoint_mask(
    labels: np.ndarray, split: str, test_fraction: float, val_fraction: float, seed: int
) -> np.ndarray:
    """Items of `split` when the data name no split: test classes first, then the val carve."""
    check_split(split, "a dataset without a split column", SPLITS)
    trainval, test = carve_classes(labels, test_fraction, seed)
    if split == "test":
        return np.isin(labels, test)
    mask = np.isin(labels, trainval)
    mask[mask] = training_mask(labels[mask], split, val_fraction, seed + 1)
    return mask


def _files_dataset(
    paths: list[Path], labels: np.ndarray, keep: np.ndarray, transform: Transform | None
) -> ImageFileDataset:
    dense, names, ids = dense_labels(labels[keep])
    return ImageFileDataset([p for p, k in zip(paths, keep) if k], dense, names, ids, transform)


def _class_folders(root: Path) -> tuple[list[Path], np.ndarray]:
    """Images of root/<class name>/**/ and their class names."""
    paths, labels = [], []
    for folder in sorted(d for d in root.iterdir() if d.is_dir()):
        images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        paths += images
        labels += [folder.name] * len(images)
    if not paths:
        raise ValueError(
            f"no images ({' '.join(IMAGE_SUFFIXES)}) in sub-folders of {root} (expected one sub-folder per class)"
        )
    return paths, np.array(labels)


def _split_folders(root: Path) -> set[str]:
    """The split folders of the split layout (root/train plus root/test or root/query + root/gallery), else none."""
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root} (expected one sub-folder of images per class)")
    present = {name for name in SPLIT_FOLDERS if (root / name).is_dir()}
    return present if "train" in present else set()


def folder_evaluation_splits(root: Path) -> EvaluationSplits:
    """The evaluation protocol of an image folder: from its split folders, else a seeded test split."""
    splits = _split_folders(root)
    return declared_protocol(splits, str(root)) if splits else EvaluationSplits("test")


def read_folder(
    root: Path,
    split: str,
    transform: Transform | None = None,
    *,
    test_fraction: float = 0.5,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> ImageFileDataset:
    """root/<class name>/**/<image>: one sub-folder per class (its images may sit in sub-folders),
    classes split by the seeded carve; or the split layout root/<split>/<class name>/**/<image> with
    split folders train (required), val (optional), and test or query + gallery."""
    root = Path(root)
    splits = _split_folders(root)
    if not splits:
        paths, labels = _class_folders(root)
        return _files_dataset(
            paths, labels, class_disjoint_mask(labels, split, test_fraction, val_fraction, seed), transform
        )
    declared_protocol(splits, str(root))
    check_split(split, f"split folders of {root}", TRAIN_SPLITS + tuple(sorted(splits - {"train", "val"})))
    sources = {"trainval": ["train", "val"], "train": ["train"], "val": ["val"]}.get(split, [split])
    if split in ("train", "val") and "val" not in splits:
        paths, labels = _class_folders(root / "train")
        return _files_dataset(paths, labels, training_mask(labels, split, val_fraction, seed), transform)
    found = [_class_folders(root / name) for name in sources if name in splits]
    paths = [p for part, _ in found for p in part]
    labels = np.concatenate([labels for _, labels in found])
    return _files_dataset(paths, labels, np.ones(len(paths), dtype=bool), transform)


def _csv_rows(path: Path) -> list[list[str]]:
    # utf-8-sig: spreadsheet programs save a byte-order mark, which would otherwise glue onto the header's "path"
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = [[field.strip() for field in row] for row in csv.reader(handle) if any(f.strip() for f in row)]
    if rows and rows[0][0].lower() == "path":
        rows = rows[1:]
    if not rows:
        raise ValueError(f"{path}: no rows (expected path,label[,split])")
    widths = {len(r) for r in rows}
    if not widths <= {2, 3} or len(widths) > 1:
        raise ValueError(
            f"{path}: every row must be path,label or every row path,label,split; found rows of {sorted(widths)} fields"
        )
    _check_repeats(path, rows)
    return rows


def _check_repeats(path: Path, rows: list[list[str]]) -> None:
    """An image listed twice in one split would be its own nearest neighbour (Recall@1 of 100 %): refused.
    One image in two splits (a gallery that also holds the queries) may be meant: warned about."""
    seen: dict[tuple[str, str], int] = {}
    across: dict[str, set[str]] = {}
    for number, row in enumerate(rows, start=1):
        image, split = os.path.normpath(row[0]), row[2] if len(row) == 3 else ""
        if (image, split) in seen:
            where = f" in split {split!r}" if split else ""
            raise ValueError(
                f"{path}: image {row[0]!r} is listed twice{where} (data rows {seen[image, split]} and {number}); "
                "a repeated image finds itself and inflates the metrics: remove the repeat"
            )
        seen[image, split] = number
        across.setdefault(image, set()).add(split)
    shared = [image for image, splits in across.items() if len(splits) > 1]
    if shared:
        print(
            f"ranklist: warning: {path}: {len(shared)} images are listed in more than one split (e.g. {shared[0]!r} in "
            f"{sorted(across[shared[0]])}); a query that is also in the gallery finds itself",
            file=sys.stderr,
        )


def _csv_labels(values: list[str]) -> np.ndarray:
    """Integer labels if every label is one (numbered numerically), else class names as strings."""
    try:
        return np.array([int(v) for v in values], dtype=np.int64)
    except ValueError:
        return np.array(values)


def _csv_split_mask(
    path: Path, given: np.ndarray, labels: np.ndarray, split: str, val_fraction: float, seed: int
) -> np.ndarray:
    """Items of `split` from the CSV's split column; "trainval" = its train and val rows, and
    without val rows, "train"/"val" are carved from its train rows."""
    unknown = sorted(set(given.tolist()) - set(CSV_SPLITS))
    if unknown:
        raise ValueError(f"{path}: unknown split values {unknown}; expected some of {CSV_SPLITS}")
    check_split(split, f"CSV {path}", TRAIN_SPLITS + ("test", "query", "gallery"))
    if split == "trainval":
        mask = np.isin(given, ("train", "val"))
    elif split in ("train", "val") and "val" not in given:
        mask = given == "train"
        if mask.any():
            mask[mask] = training_mask(labels[mask], split, val_fraction, seed)
    else:
        mask = given == split
    if not mask.any():
        raise ValueError(f"{path}: no row is in split {split!r}; split values present: {sorted(set(given.tolist()))}")
    return mask


def csv_evaluation_splits(root: Path) -> EvaluationSplits:
    """The evaluation protocol of a CSV listing: from its split column, else a seeded test split."""
    path = Path(root)
    if not path.is_file():
        raise FileNotFoundError(f"CSV file not found: {path} (expected rows path,label[,split])")
    rows = _csv_rows(path)  # without a split column: the seeded carve's "test"
    return declared_protocol({r[2] for r in rows}, str(path)) if len(rows[0]) == 3 else EvaluationSplits("test")


def read_csv(
    root: Path,
    split: str,
    transform: Transform | None = None,
    *,
    test_fraction: float = 0.5,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> ImageFileDataset:
    """A CSV file of path,label[,split] rows (a first row starting with "path" is a header; paths
    relative to the CSV's folder). Labels: integers or class names."""
    path = Path(root)
    if not path.is_file():
        raise FileNotFoundError(f"CSV file not found: {path} (expected rows path,label[,split])")
    rows = _csv_rows(path)
    paths = [path.parent / r[0] for r in rows]
    labels = _csv_labels([r[1] for r in rows])
    if len(rows[0]) == 3:
        keep = _csv_split_mask(path, np.array([r[2] for r in rows]), labels, split, val_fraction, seed)
    else:
        keep = class_disjoint_mask(labels, split, test_fraction, val_fraction, seed)
    missing = [p for p, k in zip(paths, keep) if k and not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(
            f"{path}: {len(missing)} listed images are missing, e.g. {', '.join(map(str, missing[:3]))}"
        )
    return _files_dataset(paths, labels, keep, transform)
