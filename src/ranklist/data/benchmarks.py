"""Readers of the paper's four benchmarks in their standard on-disk layouts (docs/data.md#layouts).

Each returns one split as an ImageFileDataset: "trainval" / "test" are the literature's
class-disjoint halves (In-shop: "trainval" / "query" / "gallery"), "train" / "val" a seeded carve of
the training classes (ranklist.data.splits). On a complete copy the listed images and classes must
match the published counts and every listed image must exist, else a ValueError names the file and
the counts; allow_partial=True accepts a partial copy (listed images absent from disk are dropped).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ranklist.data.datasets import ImageFileDataset, Transform
from ranklist.data.splits import (
    SPLITS,
    TRAIN_SPLITS,
    check_split,
    dense_labels,
    training_mask,
)

# Published sizes (docs/data.md): dataset -> listed split -> (images, classes or None).
PUBLISHED: dict[str, dict[str, tuple[int, int | None]]] = {
    "cub200": {"trainval": (5864, 100), "test": (5924, 100)},
    "cars196": {"trainval": (8054, 98), "test": (8131, 98)},
    "sop": {"trainval": (59551, 11318), "test": (60502, 11316)},
    "inshop": {"trainval": (25882, 3997), "query": (14218, None), "gallery": (12612, None)},
}
INSHOP_SPLITS = TRAIN_SPLITS + ("query", "gallery")


@dataclass
class Listing:
    """One published split as listed by the dataset's files: image paths and the dataset's labels."""

    source: Path  # the file the listing came from (named in errors)
    paths: list[Path]
    labels: np.ndarray
    names: dict | None = None  # label -> class name, where the dataset names its classes
    classes: np.ndarray | None = None  # ids to number labels over (default: the labels present)


def require_files(root: Path, files: list[str], dataset: str) -> None:
    """A missing folder or file is an error naming the path and what is expected there."""
    if not root.is_dir():
        raise FileNotFoundError(f"{dataset} folder not found: {root} (expected there: {', '.join(files)})")
    missing = [f for f in files if not (root / f).exists()]
    if missing:
        raise FileNotFoundError(
            f"{dataset} folder {root} lacks {', '.join(missing)} (expected there: {', '.join(files)})"
        )


def _read_rows(path: Path, skip: int = 0, min_fields: int = 2) -> list[list[str]]:
    rows = [line.split() for line in path.read_text().splitlines()[skip:] if line.strip()]
    for number, row in enumerate(rows, start=skip + 1):
        if len(row) < min_fields:
            raise ValueError(f"{path}: line {number} has {len(row)} fields, expected at least {min_fields}")
    return rows


def check_listing(dataset: str, split: str, listing: Listing, allow_partial: bool) -> Listing:
    """Published counts and image presence on a complete copy; a partial one only drops absent files."""
    if allow_partial:
        present = np.array([os.path.exists(p) for p in listing.paths], dtype=bool)
        if not present.any():
            raise ValueError(
                f"{listing.source}: none of the {len(listing.paths)} images it lists for {dataset} "
                f"split {split!r} exists (e.g. {listing.paths[0] if listing.paths else 'none listed'})"
            )
        return Listing(
            listing.source,
            [p for p, ok in zip(listing.paths, present) if ok],
            listing.labels[present],
            listing.names,
            listing.classes,
        )
    images, classes = PUBLISHED[dataset][split]
    got = (len(listing.paths), len(np.unique(listing.labels)))
    if got[0] != images or (classes is not None and got[1] != classes):
        raise ValueError(
            f"{listing.source}: {dataset} split {split!r} lists {got[0]} images of {got[1]} classes, the "
            f"published copy has {images}"
            + (f" of {classes}" if classes is not None else "")
            + " (pass allow_partial=True to use a partial copy)"
        )
    missing = [p for p in listing.paths if not os.path.exists(p)]
    if missing:
        raise ValueError(
            f"{listing.source}: {len(missing)} of {len(listing.paths)} listed images are missing, e.g. "
            f"{', '.join(map(str, missing[:3]))} (pass allow_partial=True to use a partial copy)"
        )
    return listing


def listing_dataset(
    dataset: str,
    split: str,
    listing: Listing,
    transform: Transform | None,
    allow_partial: bool,
    val_fraction: float,
    seed: int,
) -> ImageFileDataset:
    """Check the published split the listing holds, carve train/val from it, number the labels."""
    published = "trainval" if split in TRAIN_SPLITS else split
    listing = check_listing(dataset, published, listing, allow_partial)
    keep = (
        training_mask(listing.labels, split, val_fraction, seed)
        if split in TRAIN_SPLITS
        else np.ones(len(listing.labels), dtype=bool)
    )
    labels, names, ids = dense_labels(listing.labels[keep], listing.names, listing.classes)
    return ImageFileDataset([p for p, k in zip(listing.paths, keep) if k], labels, names, ids, transform)


def list_cub200(root: Path, split: str) -> Listing:
    """CUB-200-2011: images.txt (id path), image_class_labels.txt (id class), classes.txt (class
    name), images/; classes 1-100 train, 101-200 test."""
    require_files(root, ["images.txt", "image_class_labels.txt", "classes.txt", "images"], "CUB-200-2011")
    paths = {r[0]: r[1] for r in _read_rows(root / "images.txt")}
    classes = {r[0]: int(r[1]) for r in _read_rows(root / "image_class_labels.txt")}
    names = {int(r[0]): r[1] for r in _read_rows(root / "classes.txt")}
    if set(paths) != set(classes):
        raise ValueError(f"{root}: images.txt and image_class_labels.txt list different image ids")
    ids = [i for i in sorted(paths, key=int) if (classes[i] <= 100) == (split != "test")]
    return Listing(
        root / "image_class_labels.txt",
        [root / "images" / paths[i] for i in ids],
        np.array([classes[i] for i in ids], dtype=np.int64),
        names,
    )


def list_cars196(root: Path, split: str) -> Listing:
    """CARS196: cars_annos.mat (struct array `annotations` with relative_im_path, bbox_*, class,
    test; cell array `class_names`) and car_ims/; classes 1-98 train, 99-196 test. The file's own
    `test` flag (a per-image split for classification) is not used: the DML split is by class."""
    from scipy.io import loadmat

    require_files(root, ["cars_annos.mat", "car_ims"], "CARS196")
    mat = loadmat(root / "cars_annos.mat")
    if "annotations" not in mat:
        raise ValueError(f"{root / 'cars_annos.mat'} has no 'annotations' struct array")
    annotations = mat["annotations"].reshape(-1)
    paths = [root / str(a["relative_im_path"].item()) for a in annotations]
    labels = np.array([int(a["class"].item()) for a in annotations], dtype=np.int64)
    names = (
        {i + 1: str(n.item()) for i, n in enumerate(mat["class_names"].reshape(-1))} if "class_names" in mat else None
    )
    keep = labels <= 98 if split != "test" else labels > 98
    return Listing(root / "cars_annos.mat", [p for p, k in zip(paths, keep) if k], labels[keep], names)


def list_sop(root: Path, split: str) -> Listing:
    """Stanford Online Products: Ebay_train.txt / Ebay_test.txt, a header line then
    `image_id class_id super_class_id path` (paths relative to the root)."""
    require_files(root, ["Ebay_train.txt", "Ebay_test.txt"], "Stanford Online Products")
    source = root / ("Ebay_test.txt" if split == "test" else "Ebay_train.txt")
    rows = _read_rows(source, skip=1, min_fields=4)
    return Listing(source, [root / r[3] for r in rows], np.array([int(r[1]) for r in rows], dtype=np.int64))


def list_inshop(root: Path, split: str) -> Listing:
    """In-shop Clothes: list_eval_partition.txt (a count line, a header line, then
    `image_name item_id evaluation_status`) and img/. Class = item id. Query and gallery are
    numbered over their common test items, so one label is one item in both."""
    require_files(root, ["list_eval_partition.txt", "img"], "In-shop Clothes")
    source = root / "list_eval_partition.txt"
    rows = _read_rows(source, skip=2, min_fields=3)
    status = "train" if split in TRAIN_SPLITS else split
    chosen = [r for r in rows if r[2] == status]
    test_items = None if status == "train" else np.array(sorted({r[1] for r in rows if r[2] in ("query", "gallery")}))
    return Listing(source, [root / r[0] for r in chosen], np.array([r[1] for r in chosen]), classes=test_items)


LISTINGS = {
    "cub200": (list_cub200, SPLITS),
    "cars196": (list_cars196, SPLITS),
    "sop": (list_sop, SPLITS),
    "inshop": (list_inshop, INSHOP_SPLITS),
}


def read_benchmark(
    dataset: str,
    root: Path,
    split: str,
    transform: Transform | None = None,
    *,
    allow_partial: bool = False,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> ImageFileDataset:
    """Split `split` of benchmark `dataset` ("cub200", "cars196", "sop", "inshop") read from `root`.

    seed and val_fraction choose the validation carve; the train/test halves are the published ones.
    """
    list_split, valid = LISTINGS[dataset]
    check_split(split, dataset, valid)
    listing = list_split(Path(root), split)
    return listing_dataset(dataset, split, listing, transform, allow_partial, val_fraction, seed)
